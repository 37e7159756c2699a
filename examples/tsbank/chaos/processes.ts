/**
 * Child processes of the chaos run. Each child leads its own process group
 * (spawned detached), so a signal reaches it and anything it started, and
 * only groups started here are ever signalled. Every group still alive when
 * this process exits — normally, on an error, or on SIGINT/SIGTERM — is
 * SIGKILLed, so a failed run leaves no orphans.
 */
import { type ChildProcess, spawn } from 'node:child_process';

const OUTPUT_KEEP_BYTES = 32 * 1024;

const live = new Set<Child>();
process.once('exit', () => {
  for (const child of live) child.signal('SIGKILL');
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Child {
  readonly process: ChildProcess;
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  stopped = false;
  private output = '';

  constructor(
    readonly label: string,
    script: string,
    args: string[],
  ) {
    this.process = spawn(process.execPath, [script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: childEnv(),
    });
    for (const stream of [this.process.stdout!, this.process.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (s: string) => {
        this.output = (this.output + s).slice(-OUTPUT_KEEP_BYTES);
      });
    }
    live.add(this);
    this.exited = new Promise((resolve) => {
      const done = (exit: Exit) => {
        live.delete(this);
        this.exit ??= exit;
        resolve(this.exit);
      };
      this.process.once('exit', (code, signal) => done({ code, signal }));
      this.process.once('error', (err) => {
        this.output += `\n[spawn error] ${String(err)}`;
        done({ code: -1, signal: null });
      });
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** The last lines it wrote (stdout and stderr together), for a failure's report. */
  get tail(): string {
    return this.output;
  }

  /** Signals the child's process group; false if it is gone. */
  signal(signal: NodeJS.Signals): boolean {
    const pid = this.process.pid;
    if (pid === undefined) return false;
    try {
      process.kill(-pid, signal);
      if (signal === 'SIGSTOP') this.stopped = true;
      if (signal === 'SIGCONT') this.stopped = false;
      return true;
    } catch {
      return false;
    }
  }

  /** SIGKILL and wait (bounded) until it is reaped. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.signal('SIGKILL');
    await Promise.race([this.exited, delay(10_000)]);
  }
}

/** Every child still alive is SIGKILLed (the end of a run, or a failure). */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.kill()));
}

/** The parent's environment without raftkv's settings, so only the flags given apply. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RAFTKV_')) env[k] = v;
  // Under tap, children would otherwise record coverage, which costs the cluster CPU.
  env._TAPJS_PROCESSINFO_COVERAGE_ = '0';
  return env;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
