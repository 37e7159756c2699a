/**
 * raftkv as real child processes (`node --import tsx cmd/raftkv.ts ...`), for
 * the tests that need SIGKILL, restart and the command line itself.
 *
 * Every child's stdout and stderr are kept (the last 64 KiB of each
 * incarnation) so a failing test can print them; only the pids started here
 * (or, for a child started in its own process group, that group) are ever
 * signalled. kvctl runs the same way (startKvctl), in its own group so that a
 * test can SIGSTOP/SIGCONT it together with the command it runs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kvctlBundle } from '../support/kvctl-bundle.js';
import { freePort } from './helpers.js';
import { type NodeStatus, status, waitUntil } from './http-ops.js';
import {
  clientScheme,
  enableTestAuth,
  makePeerCerts,
  PEER_TLS,
  peerScheme,
  peerTlsArgs,
} from './peer-tls.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RAFTKV_CMD = join(REPO_ROOT, 'cmd', 'raftkv.ts');
/** Absolute, so a child started in another cwd still finds tsx. */
const TSX_LOADER = import.meta.resolve('tsx');
const OUTPUT_KEEP_BYTES = 64 * 1024;

/** Children still running, so that they never outlive the test process (see the exit hook below). */
const liveChildren = new Set<RaftkvProcess>();
process.once('exit', () => {
  for (const proc of liveChildren) proc.signal('SIGKILL');
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One raftkv (or other script's) child process. */
export class RaftkvProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  private out = '';
  private err = '';

  /** Started as the leader of its own process group: signals go to the whole group. */
  readonly group: boolean;

  constructor(
    readonly args: string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv; script?: string; group?: boolean } = {},
  ) {
    this.group = options.group ?? false;
    const script = options.script ?? RAFTKV_CMD;
    // A bundled script (.mjs) runs on plain node; TypeScript sources under the tsx loader.
    const loader = script.endsWith('.mjs') ? [] : ['--import', TSX_LOADER];
    this.child = spawn(process.execPath, [...loader, script, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: options.env ?? cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: this.group,
    });
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => {
      this.out = (this.out + s).slice(-OUTPUT_KEEP_BYTES);
    });
    this.child.stderr!.on('data', (s: string) => {
      this.err = (this.err + s).slice(-OUTPUT_KEEP_BYTES);
    });
    liveChildren.add(this);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        liveChildren.delete(this);
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.child.once('error', (error) => {
        liveChildren.delete(this);
        this.err += `\n[spawn error] ${String(error)}`;
        this.exit = { code: -1, signal: null };
        resolve(this.exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /**
   * Sends `signal` to this child's pid (its group's, when started as a group) and returns at
   * once: no waiting and no escalation, so SIGSTOP and SIGCONT can be sent too. A group is
   * signalled even after its leader exited, so no grandchild outlives the test; a lone
   * child only while it runs. False if nothing was signalled.
   */
  signal(signal: NodeJS.Signals): boolean {
    const pid = this.child.pid;
    if (pid === undefined || (!this.group && !this.running)) return false;
    try {
      process.kill(this.group ? -pid : pid, signal);
      return true;
    } catch {
      return false; // Already gone.
    }
  }

  /** Signals this child (and its group) and waits for it to exit, bounded; escalates to SIGKILL. */
  async kill(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 10_000): Promise<Exit> {
    this.signal(signal);
    // A stopped process acts on nothing but SIGKILL until it is continued.
    if (signal !== 'SIGKILL') this.signal('SIGCONT');
    const exit = await withTimeout(this.exited, timeoutMs);
    if (exit) return exit;
    if (signal !== 'SIGKILL') return this.kill('SIGKILL', 5_000);
    throw new Error(`raftkv pid ${this.child.pid} did not exit after ${signal}`);
  }

  /** Waits for the process to exit on its own, bounded. */
  async waitExit(timeoutMs: number): Promise<Exit> {
    const exit = await withTimeout(this.exited, timeoutMs);
    if (exit) return exit;
    throw new Error(`raftkv ${this.args.join(' ')} still running after ${timeoutMs} ms`);
  }
}

/**
 * `kvctl ARGS` as a child in its own process group (so SIGSTOP/SIGCONT reach the command
 * it runs too), against `endpoints`, without tap's coverage.
 */
export function startKvctl(endpoints: string[], args: string[]): RaftkvProcess {
  const env = { ...cleanEnv({ coverage: false }), KVCTL_ENDPOINTS: endpoints.join(',') };
  return new RaftkvProcess(args, { script: kvctlBundle(), env, group: true });
}

/** `promise`'s value, or undefined after `timeoutMs`; the timer never outlives the race. */
async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The parent's environment without RAFTKV_* variables, so only the flags given here apply.
 * Under tap, a child also records coverage unless `coverage` is false: worth it for
 * short-lived processes, but it costs a busy cluster CPU (and a SIGKILLed process never
 * writes its coverage anyway).
 */
export function cleanEnv(options: { coverage?: boolean } = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RAFTKV_')) env[k] = v;
  if (options.coverage === false) env._TAPJS_PROCESSINFO_COVERAGE_ = '0';
  return env;
}

/** A cluster of raftkv processes on fresh 127.0.0.1 ports and a fresh temp dir. */
/** The flags of a one-node `raftkv` on 127.0.0.1 with fast ticks, as the single-process tests start it. */
export function singleNodeArgs(
  name: string,
  dataDir: string,
  clientPort: number,
  peerPort: number,
): string[] {
  return [
    '--name',
    name,
    '--data-dir',
    dataDir,
    '--listen-client',
    `127.0.0.1:${clientPort}`,
    '--listen-peer',
    `127.0.0.1:${peerPort}`,
    '--tick-ms',
    '20',
    '--log-level',
    'warn',
  ];
}

export class ProcessCluster {
  readonly names: string[];
  readonly procs: (RaftkvProcess | undefined)[];
  /** Every incarnation ever started, for diagnostics. */
  readonly history: { name: string; proc: RaftkvProcess }[] = [];

  private constructor(
    readonly dir: string,
    private readonly clientPorts: number[],
    private readonly peerPorts: number[],
    private readonly extraArgs: string[],
    /** With RAFTKV_TEST_PEER_TLS=1: the certificates of the peer links (see peer-tls.ts). */
    readonly peerCerts?: string,
    /** What each member runs: cmd/raftkv.ts under tsx unless a bundle is given. */
    private readonly script?: string,
  ) {
    this.names = clientPorts.map((_, i) => `n${i + 1}`);
    this.procs = this.names.map(() => undefined);
  }

  /**
   * `options.script`: a bundled raftkv (test/support/raftkv-bundle.ts) for tests
   * that restart members often: it starts without compiling the sources again.
   */
  static async create(
    n: number,
    extraArgs: string[] = [],
    options: { script?: string } = {},
  ): Promise<ProcessCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-proc-'));
    const clientPorts: number[] = [];
    const peerPorts: number[] = [];
    for (let i = 0; i < n; i++) {
      clientPorts.push(await freePort());
      peerPorts.push(await freePort());
    }
    const names = clientPorts.map((_, i) => `n${i + 1}`);
    const certs = PEER_TLS ? await makePeerCerts(dir, names) : undefined;
    return new ProcessCluster(dir, clientPorts, peerPorts, extraArgs, certs, options.script);
  }

  url(i: number): string {
    return `${clientScheme()}://127.0.0.1:${this.clientPorts[i]}`;
  }

  args(i: number): string[] {
    const initialCluster = this.names
      .map((name, j) => `${name}=${peerScheme()}://127.0.0.1:${this.peerPorts[j]}`)
      .join(',');
    return [
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
      '--log-level',
      'warn',
      ...(this.peerCerts ? peerTlsArgs(this.peerCerts, this.names[i]!) : []),
      ...this.extraArgs,
    ];
  }

  /** Starts node i (its data dir is kept across restarts) and waits until it answers /v1/status. */
  async start(i: number, readyTimeoutMs = 30_000): Promise<RaftkvProcess> {
    if (this.procs[i]?.running) throw new Error(`${this.names[i]} is already running`);
    const proc = new RaftkvProcess(this.args(i), {
      env: cleanEnv({ coverage: false }),
      ...(this.script !== undefined ? { script: this.script } : {}),
    });
    this.procs[i] = proc;
    this.history.push({ name: this.names[i]!, proc });
    const ready = await waitUntil(
      `${this.names[i]} to serve /v1/status`,
      async () => (proc.running ? status(this.url(i), 500) : 'exited'),
      readyTimeoutMs,
      50,
    ).catch((err) => String(err));
    if (typeof ready === 'string') {
      throw new Error(
        `${this.names[i]} did not start (${ready}, exit ${JSON.stringify(proc.exit)})\n` +
          `stderr:\n${proc.stderr}`,
      );
    }
    return proc;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.names.map((_, i) => this.start(i)));
  }

  /** SIGKILLs node i (if it runs) and waits for it to be gone. */
  async kill(i: number): Promise<void> {
    await this.procs[i]?.kill('SIGKILL');
  }

  running(i: number): boolean {
    return this.procs[i]?.running === true;
  }

  /** Waits until the running nodes agree on one leader; returns its index. */
  async waitForLeader(timeoutMs = 20_000): Promise<number> {
    const leader = await waitUntil(
      'a leader that every running node follows',
      async () => {
        const live = this.names.map((_, i) => i).filter((i) => this.running(i));
        const sts = await Promise.all(live.map((i) => status(this.url(i), 500)));
        if (sts.some((s) => s === undefined)) return undefined;
        const leaderIdx = live.find((_, k) => sts[k]!.role === 'leader');
        if (leaderIdx === undefined) return undefined;
        const leaderId = sts[live.indexOf(leaderIdx)]!.id;
        return sts.every((s) => s!.leader === leaderId) ? leaderIdx : undefined;
      },
      timeoutMs,
      50,
    );
    await enableTestAuth(this.url(leader));
    return leader;
  }

  async statuses(): Promise<(NodeStatus | undefined)[]> {
    return Promise.all(
      this.names.map((_, i) => (this.running(i) ? status(this.url(i), 1_000) : undefined)),
    );
  }

  /** The captured output of every incarnation, for a failing test's log. */
  diagnostics(): string {
    return this.history
      .map(
        ({ name, proc }, k) =>
          `--- ${name} #${k} pid ${proc.pid} exit ${JSON.stringify(proc.exit ?? 'running')}\n` +
          `stderr:\n${proc.stderr.slice(-8_000)}\nstdout:\n${proc.stdout.slice(-4_000)}`,
      )
      .join('\n');
  }

  /** SIGKILLs every child still running and removes the temp dir. */
  async close(): Promise<void> {
    await Promise.all(this.history.map(({ proc }) => proc.kill('SIGKILL').catch(() => {})));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
