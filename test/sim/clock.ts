import { CLOCK_RATE_BOUND } from '../../src/server/lease-keeper.js';
import type { CoreClock } from '../../src/server/ports.js';

/**
 * The stated bound on clock rates: every simulated node's monotonic clock runs
 * at a rate within [1 − CLOCK_RATE_BOUND, 1 + CLOCK_RATE_BOUND] of true time
 * (±1 %; quartz oscillators are specified at ±0.01 %, so this is generous).
 * It is the lease keeper's own bound (src/server/lease-keeper.ts): its margin
 * holds exactly under it.
 */
export { CLOCK_RATE_BOUND };
export const MIN_CLOCK_RATE = 1 - CLOCK_RATE_BOUND;
export const MAX_CLOCK_RATE = 1 + CLOCK_RATE_BOUND;

/** Where the simulated wall clocks start (a fixed date, so runs are reproducible). */
const WALL_EPOCH_MS = Date.UTC(2026, 0, 1);

interface Timer {
  /** True time (ms) it fires at. */
  at: number;
  /** Tie-breaker: events at the same time fire in the order they were scheduled. */
  seq: number;
  fn: () => void;
  /** The process it runs in; none for the world's own events (network, disk hardware). */
  owner: NodeClock | undefined;
  /**
   * Where it comes from (one peer's connection, one client's request); none for the
   * process's own timers. A resumed process keeps each source's order, not the order
   * across sources.
   */
  source: string | undefined;
  cancelled: boolean;
}

/** A binary min-heap on (at, seq). */
class TimerHeap {
  private items: Timer[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Timer | undefined {
    return this.items[0];
  }

  push(t: Timer): void {
    const a = this.items;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): Timer | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** A random interleaving of `timers` that keeps the order of the timers of each source. */
export function interleaveBySource<T extends { source: string | undefined }>(
  timers: readonly T[],
  pick: (n: number) => number,
): T[] {
  const queues = new Map<string | undefined, T[]>();
  for (const t of timers) {
    const q = queues.get(t.source);
    if (q) q.push(t);
    else queues.set(t.source, [t]);
  }
  const open = [...queues.values()];
  const out: T[] = [];
  while (open.length > 0) {
    const i = pick(open.length);
    const q = open[i]!;
    out.push(q.shift()!);
    if (q.length === 0) open.splice(i, 1);
  }
  return out;
}

/** Lets every promise chain started by the last event run to completion (nothing does real I/O). */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Virtual time for a whole simulated cluster: one event queue ordered by
 * (true time, sequence number) drives every node's clock, the network and the
 * disks. After each event the microtasks it started are drained, so a run is
 * deterministic: the same seed gives the same interleaving.
 */
export class SimScheduler {
  /** True time in ms. */
  private nowMs = 0;
  private seq = 0;
  private readonly heap = new TimerHeap();
  /** Events run so far (for the runs' cost figures). */
  eventsRun = 0;

  now(): number {
    return this.nowMs;
  }

  /** Schedules `fn` at true time `at` (not before now); returns a cancel function. */
  at(at: number, fn: () => void, owner?: NodeClock, source?: string): () => void {
    const timer: Timer = {
      at: Math.max(at, this.nowMs),
      seq: this.seq++,
      fn,
      owner,
      source,
      cancelled: false,
    };
    this.heap.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  after(delayMs: number, fn: () => void, owner?: NodeClock, source?: string): () => void {
    return this.at(this.nowMs + delayMs, fn, owner, source);
  }

  /**
   * Runs every event due up to true time `until` (inclusive), then sets the
   * time to `until`. Stops early (returning false) when `stop()` says so after
   * an event — the world checks its invariants there.
   */
  async runUntil(until: number, afterEach?: () => boolean | undefined): Promise<boolean> {
    for (;;) {
      const next = this.heap.peek();
      if (!next || next.at > until) break;
      this.heap.pop();
      if (next.cancelled) continue;
      this.nowMs = next.at;
      const owner = next.owner;
      if (owner) {
        if (owner.killed) continue;
        if (owner.paused) {
          // A frozen process: the callback waits until it is resumed.
          owner.held.push(next);
          continue;
        }
      }
      this.eventsRun++;
      if (owner?.onUncaught) {
        try {
          next.fn();
        } catch (err) {
          // An uncaught exception ends that process, not the simulation.
          owner.onUncaught(err);
        }
      } else {
        next.fn();
      }
      await drainMicrotasks();
      if (afterEach?.() === false) return false;
    }
    this.nowMs = Math.max(this.nowMs, until);
    return true;
  }

  /** Re-queues held callbacks at the current time, in the given order. */
  requeue(timers: Timer[]): void {
    for (const t of timers) {
      t.at = this.nowMs;
      t.seq = this.seq++;
      this.heap.push(t);
    }
  }

  pendingEvents(): number {
    return this.heap.size;
  }
}

/**
 * One process's view of time (a CoreClock). Its monotonic clock runs at
 * `rate` × true time (within the stated bound); its wall clock is offset by a
 * skew. A paused process (SIGSTOP, a long GC pause) runs none of its callbacks
 * but its clock keeps running; killing it drops every callback for good.
 */
export class NodeClock implements CoreClock {
  readonly rate: number;
  paused = false;
  killed = false;
  /** Callbacks that came due while paused. */
  held: Timer[] = [];
  /** What an exception thrown by one of this process's callbacks does (the process dies). */
  onUncaught: ((err: unknown) => void) | undefined;
  private readonly startTrueMs: number;
  private readonly startLocalMs: number;
  private readonly wallSkewMs: number;

  constructor(
    private readonly scheduler: SimScheduler,
    options: { rate: number; startLocalMs?: number; wallSkewMs?: number },
  ) {
    if (options.rate < MIN_CLOCK_RATE || options.rate > MAX_CLOCK_RATE) {
      throw new RangeError(
        `clock rate ${options.rate} is outside the stated bound ±${CLOCK_RATE_BOUND}`,
      );
    }
    this.rate = options.rate;
    this.startTrueMs = scheduler.now();
    this.startLocalMs = options.startLocalMs ?? 0;
    this.wallSkewMs = options.wallSkewMs ?? 0;
  }

  now(): number {
    return this.startLocalMs + (this.scheduler.now() - this.startTrueMs) * this.rate;
  }

  wallNow(): number {
    // Wall clocks agree with true time within the skew (NTP), whatever the monotonic origin.
    const elapsed = (this.scheduler.now() - this.startTrueMs) * this.rate;
    return Math.floor(WALL_EPOCH_MS + this.wallSkewMs + this.startTrueMs + elapsed);
  }

  /** True-time delay for `localMs` of this clock. */
  private trueDelay(localMs: number): number {
    return Math.max(0, localMs) / this.rate;
  }

  after(ms: number, fn: () => void): () => void {
    return this.scheduler.after(this.trueDelay(ms), fn, this);
  }

  every(ms: number, fn: () => void): () => void {
    let cancelled = false;
    let cancelNext: () => void = () => {};
    // Like setInterval: the next firing is scheduled from the planned time, not from when it ran.
    let plannedLocal = this.now() + ms;
    const arm = () => {
      cancelNext = this.scheduler.after(
        this.trueDelay(plannedLocal - this.now()),
        () => {
          if (cancelled) return;
          plannedLocal = Math.max(plannedLocal + ms, this.now());
          arm();
          fn();
        },
        this,
      );
    };
    arm();
    return () => {
      cancelled = true;
      cancelNext();
    };
  }

  /** True time: for the world's records, never for the node. */
  trueNow(): number {
    return this.scheduler.now();
  }

  soon(fn: () => void): void {
    this.scheduler.after(0, fn, this);
  }

  /**
   * Schedules `fn` after `ms` of TRUE time in this process (a disk completion, a delivery,
   * a client's request); `source` names the connection it came in on.
   */
  afterTrue(ms: number, fn: () => void, source?: string): () => void {
    return this.scheduler.after(ms, fn, this, source);
  }

  pause(): void {
    if (!this.killed) this.paused = true;
  }

  /**
   * Runs what came due while paused. A real process finds its sockets all readable at
   * once and reads them in whatever order its event loop polls them, so only each
   * source's own order is kept: `pick(n)` (a seeded random index below n) chooses
   * which source goes next. Without it, everything runs in arrival order.
   */
  resume(pick?: (n: number) => number): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = [];
    this.scheduler.requeue(pick ? interleaveBySource(held, pick) : held);
  }

  /** The process is gone: nothing it scheduled will ever run. */
  kill(): void {
    this.killed = true;
    this.paused = false;
    this.held = [];
  }
}
