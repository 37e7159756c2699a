/**
 * Three TSBank instances as child processes, each a client of all three
 * raftkv members. Nights are short (the interest job runs many times in a
 * run) and session leases are short (a frozen instance loses its place in
 * a couple of seconds).
 */

import { freePort } from './ports.js';
import { Child } from './processes.js';
import { getJson, waitFor } from './wait.js';

export const NIGHT_MS = 1_500;
export const INTEREST_BP = 10;
export const SESSION_TTL_S = 2;

export class BankFleet {
  readonly names = ['bank-a', 'bank-b', 'bank-c'];
  readonly instances: (Child | undefined)[] = [undefined, undefined, undefined];
  readonly incarnations: Child[] = [];

  private constructor(
    private readonly script: string,
    private readonly endpoints: string[],
    private readonly ports: number[],
  ) {}

  static async create(script: string, endpoints: string[]): Promise<BankFleet> {
    const ports = [await freePort(), await freePort(), await freePort()];
    return new BankFleet(script, endpoints, ports);
  }

  get urls(): string[] {
    return this.ports.map((port) => `http://127.0.0.1:${port}`);
  }

  /** Running and not frozen: worth sending a request to first. */
  serving(i: number): boolean {
    const child = this.instances[i];
    return child?.running === true && !child.stopped;
  }

  indexOf(name: string): number {
    return this.names.indexOf(name);
  }

  async start(i: number): Promise<void> {
    const child = new Child(this.names[i]!, this.script, [
      '--instance',
      this.names[i]!,
      '--listen',
      `127.0.0.1:${this.ports[i]}`,
      '--endpoints',
      this.endpoints.join(','),
      '--night-ms',
      String(NIGHT_MS),
      '--interest-bp',
      String(INTEREST_BP),
      '--session-ttl',
      String(SESSION_TTL_S),
      '--log-level',
      'warn',
    ]);
    this.instances[i] = child;
    this.incarnations.push(child);
    await waitFor(
      `${this.names[i]} to answer /health`,
      async () => {
        if (!child.running) throw new Error(`exited ${JSON.stringify(child.exit)}\n${child.tail}`);
        return getJson(`${this.urls[i]}/health`, 500);
      },
      30_000,
    );
  }

  async kill(i: number): Promise<void> {
    await this.instances[i]?.kill();
  }
}
