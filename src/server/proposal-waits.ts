import { ServerError } from './errors.js';

interface Waiter<T> {
  term: number;
  resolve: (result: T) => void;
  reject: (err: ServerError) => void;
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

  /** `onFailed` counts the proposals whose outcome could not be told (metrics). */
  constructor(private readonly onFailed: (count: number) => void = () => {}) {}

  get size(): number {
    return this.waiters.size;
  }

  register(index: number, term: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiters.set(index, { term, resolve, reject });
    });
  }

  /** The entry at `index` of `term` was applied with `result`. */
  applied(index: number, term: number, result: T): void {
    const w = this.waiters.get(index);
    if (!w) return;
    this.waiters.delete(index);
    if (w.term === term) w.resolve(result);
    else {
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
