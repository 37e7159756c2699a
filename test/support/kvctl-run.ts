/**
 * kvctl as a child process for the kvctl tests: the bundled command
 * (kvctl-bundle.ts) run against `endpoints`, without tap's process tracking
 * and coverage (inherited through NODE_OPTIONS and TAP_* variables, they make
 * each start about twice as slow), nor the caller's KVCTL_* settings.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { kvctlBundle } from './kvctl-bundle.js';

const root = join(import.meta.dirname, '..', '..');

const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([name]) => !/^(NODE_OPTIONS|NODE_V8_COVERAGE|TAP|_TAPJS_|KVCTL_)/.test(name),
  ),
);

export interface KvctlRun {
  code: number | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** Starts and runs kvctl children; killAll() (a teardown) ends any still running. */
export function kvctlRunner(endpoints: () => string, killAfterMs: number) {
  const children = new Set<ChildProcess>();

  function start(args: string[], env: Record<string, string> = {}): ChildProcess {
    const child = spawn(process.execPath, [kvctlBundle(), ...args], {
      cwd: root,
      env: { ...baseEnv, KVCTL_ENDPOINTS: endpoints(), ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  }

  /** Runs kvctl to completion (killed after killAfterMs), feeding `stdin`. */
  function run(
    args: string[],
    opts: { stdin?: string | Uint8Array; env?: Record<string, string> } = {},
  ): Promise<KvctlRun> {
    return new Promise<KvctlRun>((resolve, reject) => {
      const started = Date.now();
      const child = start(args, opts.env);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => {
        stdout += d.toString('utf8');
      });
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString('utf8');
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr, elapsedMs: Date.now() - started });
      });
      child.stdin!.end(opts.stdin ?? '');
    });
  }

  return {
    start,
    run,
    killAll() {
      for (const c of children) c.kill('SIGKILL');
    },
  };
}
