/**
 * kvctl's --command-timeout: one deadline over a command's exchanges with
 * the cluster, every retry and failover of the client library included
 * (the Client is built with `signal`, so a call it cuts short rejects with a
 * `timeout` RaftkvError that says what the last attempt met).
 *
 * What it bounds:
 * 1. A one-shot command (get, put, txn, status, member add, snapshot, ...):
 *    all of it, from its first request to its answer.
 * 2. A long-running one (watch, lease keepalive, registry register, lock,
 *    elect): its start, up to the point where it watches, holds or waits in
 *    line, and its clean-up at the end (unlock, resign, revoke), each with
 *    the whole timeout; not its normal life in between, which has its own
 *    limits (lease TTL, lock --timeout, the watch's reconnection budget).
 * Input (stdin, files, a password prompt) is read before the clock starts.
 * Once the deadline has passed, the client is done for: the command ends.
 */
import { RaftkvError } from '../../src/client/index.js';

export class CommandDeadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  /** `timeoutMs` 0: no deadline (the signal never aborts). */
  constructor(readonly timeoutMs: number) {}

  /** Aborts (with a `timeout` RaftkvError) once the deadline passes while armed. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get expired(): boolean {
    return this.controller.signal.aborted;
  }

  /** Starts the clock, unless it is running: the whole timeout from now (again, after disarm()). */
  arm(): void {
    if (this.timer !== undefined || this.timeoutMs === 0 || this.expired) return;
    this.timer = setTimeout(() => {
      this.controller.abort(
        new RaftkvError(
          'timeout',
          `gave up after the command timeout of ${formatDuration(this.timeoutMs)} (--command-timeout)`,
        ),
      );
    }, this.timeoutMs);
  }

  /** Runs `read` (a password prompt, stdin) with the clock stopped, then restarts it afresh. */
  async outside<T>(read: () => Promise<T>): Promise<T> {
    this.disarm();
    try {
      return await read();
    } finally {
      this.arm();
    }
  }

  /** Stops the clock: a long-running command entered its normal life. */
  disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** setTimeout's limit. */
const DURATION_MAX_MS = 2 ** 31 - 1;

/**
 * `5s`, `1.5s`, `500ms`, `2m`, `1h`, or a bare number of milliseconds (`5000`);
 * 0 means none. Throws Error with a one-line reason otherwise.
 */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new Error(`not a duration: "${text}" (e.g. 5s, 500ms, 2m, or milliseconds)`);
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!);
  if (!Number.isSafeInteger(ms) || ms > DURATION_MAX_MS)
    throw new Error(`too long: "${text}" (at most ${DURATION_MAX_MS} ms)`);
  return ms;
}

/** 5000 → "5 s", 1500 → "1.5 s", 250 → "250 ms". */
export function formatDuration(ms: number): string {
  return ms >= 1000 && ms % 100 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
