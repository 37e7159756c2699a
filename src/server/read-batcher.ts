import type { ReadState } from '../raft/index.js';
import { ServerError } from './errors.js';

interface Batch {
  waiters: { resolve: () => void; reject: (err: ServerError) => void }[];
  requestedAtTick: number;
}

/**
 * Linearizable reads: every read that arrives in one turn of the event loop
 * shares one ReadIndex request (and the Raft core shares heartbeat rounds
 * between requests). A batch is answered once its read index is applied
 * locally, so any node, follower or leader, serves it from its own state.
 */
export class ReadBatcher {
  private queued: Batch['waiters'] = [];
  private readonly inFlight = new Map<string, Batch>();
  private seq = 0;
  private flushScheduled = false;
  private tick = 0;

  constructor(
    private readonly nodeId: string,
    /** Asks Raft for a read index; false when there is no leader to ask. */
    private readonly requestReadIndex: (ctx: string) => boolean,
    private readonly waitApplied: (index: number) => Promise<void>,
    /** Re-ask after this many ticks without an answer (the request or its answer was lost). */
    private readonly retryTicks: number,
    /** Runs a function after the current turn (the core's clock; setImmediate by default). */
    private readonly soon: (fn: () => void) => void = (fn) => setImmediate(fn),
  ) {}

  /** Resolves when a read started now may be served from local state. */
  read(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queued.push({ resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        this.soon(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.queued.length === 0) return;
    const waiters = this.queued;
    this.queued = [];
    const ctx = `${this.nodeId}:${++this.seq}`;
    if (!this.requestReadIndex(ctx)) {
      const err = new ServerError('unavailable', 'no leader to confirm a linearizable read', {
        retryAfterSeconds: 1,
      });
      for (const w of waiters) w.reject(err);
      return;
    }
    this.inFlight.set(ctx, { waiters, requestedAtTick: this.tick });
  }

  /** Raft answered: once `index` is applied, the batch's reads are linearizable. */
  onReadState(rs: ReadState): void {
    const batch = this.inFlight.get(rs.ctx);
    if (!batch) return;
    this.inFlight.delete(rs.ctx);
    void this.waitApplied(rs.index).then(() => {
      for (const w of batch.waiters) w.resolve();
    });
  }

  /** Called every Raft tick: re-asks for batches whose answer never came (e.g. a leader change dropped them). */
  onTick(): void {
    this.tick++;
    for (const [ctx, batch] of this.inFlight) {
      if (this.tick - batch.requestedAtTick < this.retryTicks) continue;
      this.inFlight.delete(ctx);
      this.queued.push(...batch.waiters);
    }
    if (this.queued.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      this.soon(() => this.flush());
    }
  }

  rejectAll(err: ServerError): void {
    for (const batch of this.inFlight.values()) for (const w of batch.waiters) w.reject(err);
    for (const w of this.queued) w.reject(err);
    this.inFlight.clear();
    this.queued = [];
  }
}
