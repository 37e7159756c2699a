import { ServerError } from './errors.js';
import type { CoreTiming } from './ports.js';
import type { WriteStamps } from './write-accounting.js';

interface Waiter<T> {
  term: number;
  resolve: (result: T) => void;
  reject: (err: ServerError) => void;
  // Latency accounting (write-accounting.ts), clock milliseconds; NaN until reached.
  /** When the command was handed to the core. */
  proposedMs: number;
  /** When its entry was handed to storage in a Ready. */
  storedMs: number;
  /** When the commit index passed it. */
  committedMs: number;
  /** The caller's stamps: proposed and applied are copied there once applied. */
  stamps: WriteStamps | undefined;
}

/**
 * Proposals waiting for their entry to be applied, keyed by log index. The
 * Raft core tells us at propose time the (index, term) each payload got; when
 * the entry at that index is applied, the waiter is resolved if the terms
 * match, and told "not applied" otherwise (a different entry won the index,
 * so ours can never be applied). Bounded by the caller's backpressure.
 */
export class ProposalWaits<T> {
  private readonly waiters = new Map<number, Waiter<T>>();

  /**
   * `onFailed` counts the proposals whose outcome could not be told (metrics);
   * `timing`, with the clock `now`, receives each applied proposal's stamps.
   */
  constructor(
    private readonly onFailed: (count: number) => void = () => {},
    private readonly now: () => number = () => Number.NaN,
    private readonly timing?: Pick<CoreTiming, 'proposalApplied'>,
  ) {}

  get size(): number {
    return this.waiters.size;
  }

  /** Waits for the entry at `index` of `term`, proposed at `proposedMs`. */
  register(
    index: number,
    term: number,
    proposedMs = Number.NaN,
    stamps: WriteStamps | undefined = undefined,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiters.set(index, {
        term,
        resolve,
        reject,
        proposedMs,
        storedMs: Number.NaN,
        committedMs: Number.NaN,
        stamps,
      });
    });
  }

  /** These entries were handed to storage at `nowMs`; returns how many are waited for here. */
  stored(entries: readonly { index: number }[], nowMs: number): number {
    if (this.waiters.size === 0) return 0;
    let count = 0;
    for (const e of entries) {
      const w = this.waiters.get(e.index);
      if (w === undefined) continue;
      w.storedMs = nowMs;
      count++;
    }
    return count;
  }

  /** The commit index moved from `from` to `to` at `nowMs`. */
  committed(from: number, to: number, nowMs: number): void {
    if (this.waiters.size === 0) return;
    if (to - from <= this.waiters.size) {
      for (let i = from + 1; i <= to; i++) {
        const w = this.waiters.get(i);
        if (w !== undefined && Number.isNaN(w.committedMs)) w.committedMs = nowMs;
      }
      return;
    }
    // A long stretch (a member catching up): walk the waits rather than the indexes.
    for (const [i, w] of this.waiters)
      if (i > from && i <= to && Number.isNaN(w.committedMs)) w.committedMs = nowMs;
  }

  /**
   * The entry at `index` of `term` was applied with `result`, in a batch that
   * started applying at `applyingMs`.
   */
  applied(index: number, term: number, result: T, applyingMs = Number.NaN): void {
    const w = this.waiters.get(index);
    if (!w) return;
    this.waiters.delete(index);
    if (w.term === term) {
      if (this.timing !== undefined || w.stamps !== undefined) {
        const appliedMs = this.now();
        this.timing?.proposalApplied(
          w.proposedMs,
          w.storedMs,
          w.committedMs,
          applyingMs,
          appliedMs,
        );
        if (w.stamps !== undefined) {
          w.stamps.proposedMs = w.proposedMs;
          w.stamps.appliedMs = appliedMs;
        }
      }
      w.resolve(result);
    } else {
      // Our entry lost its index to another leader's: it was never applied, and never will be.
      this.onFailed(1);
      w.reject(
        new ServerError(
          'timeout',
          'the proposal was superseded by a new leader before it committed',
        ),
      );
    }
  }

  /** A snapshot jumped past these indexes: their outcome cannot be known from here. */
  skippedTo(index: number): void {
    for (const [i, w] of this.waiters) {
      if (i <= index) {
        this.waiters.delete(i);
        this.onFailed(1);
        w.reject(
          new ServerError(
            'timeout',
            'the outcome of the write is unknown (the node caught up by snapshot)',
          ),
        );
      }
    }
  }

  rejectAll(err: ServerError): void {
    if (this.waiters.size > 0) this.onFailed(this.waiters.size);
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
  }
}
