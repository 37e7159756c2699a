/**
 * Three raftkv members as child processes on 127.0.0.1, with fast Raft
 * timing (20 ms ticks: an election in a few hundred ms) and the whole MVCC
 * history kept (--auto-compaction-revisions 0), because the final check
 * reads every revision back.
 */
import { join } from 'node:path';
import { freePort } from './ports.js';
import { Child } from './processes.js';
import { getJson, waitFor } from './wait.js';

interface Status {
  id: string;
  role: string;
  leader: string | null;
}

export class RaftkvCluster {
  readonly names = ['n1', 'n2', 'n3'];
  readonly members: (Child | undefined)[] = [undefined, undefined, undefined];
  /** Every incarnation, for a failure's report. */
  readonly incarnations: Child[] = [];

  private constructor(
    private readonly script: string,
    private readonly dir: string,
    private readonly clientPorts: number[],
    private readonly peerPorts: number[],
  ) {}

  static async create(script: string, dir: string): Promise<RaftkvCluster> {
    const clientPorts = [await freePort(), await freePort(), await freePort()];
    const peerPorts = [await freePort(), await freePort(), await freePort()];
    return new RaftkvCluster(script, dir, clientPorts, peerPorts);
  }

  get urls(): string[] {
    return this.clientPorts.map((port) => `http://127.0.0.1:${port}`);
  }

  running(i: number): boolean {
    return this.members[i]?.running === true;
  }

  async start(i: number): Promise<void> {
    const initialCluster = this.names
      .map((name, j) => `${name}=http://127.0.0.1:${this.peerPorts[j]}`)
      .join(',');
    const child = new Child(`raftkv ${this.names[i]}`, this.script, [
      '--name',
      this.names[i]!,
      '--data-dir',
      join(this.dir, this.names[i]!),
      '--listen-client',
      `127.0.0.1:${this.clientPorts[i]}`,
      '--listen-peer',
      `127.0.0.1:${this.peerPorts[i]}`,
      '--initial-cluster',
      initialCluster,
      '--tick-ms',
      '20',
      '--request-timeout-ms',
      '3000',
      '--auto-compaction-revisions',
      '0',
      '--log-level',
      'warn',
    ]);
    this.members[i] = child;
    this.incarnations.push(child);
    await waitFor(
      `${this.names[i]} to answer /v1/status`,
      async () => {
        if (!child.running) throw new Error(`exited ${JSON.stringify(child.exit)}\n${child.tail}`);
        return getJson<Status>(`${this.urls[i]}/v1/status`, 500);
      },
      30_000,
    );
  }

  async kill(i: number): Promise<void> {
    await this.members[i]?.kill();
  }

  /** The index of the member every running member agrees leads, once they do. */
  async waitForLeader(timeoutMs = 20_000): Promise<number> {
    return waitFor(
      'a raftkv leader that every running member follows',
      async () => {
        const live = [0, 1, 2].filter((i) => this.running(i));
        const statuses = await Promise.all(
          live.map((i) => getJson<Status>(`${this.urls[i]}/v1/status`, 500)),
        );
        if (statuses.some((s) => s === undefined)) return undefined;
        const k = statuses.findIndex((s) => s!.role === 'leader');
        if (k < 0) return undefined;
        const id = statuses[k]!.id;
        return statuses.every((s) => s!.leader === id) ? live[k] : undefined;
      },
      timeoutMs,
    );
  }
}
