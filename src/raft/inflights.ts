import { assert } from './errors.js';

/**
 * The last indexes of appends sent to one follower and not yet acknowledged,
 * bounded so that a slow follower cannot make the leader buffer without limit.
 */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  readonly capacity: number;

  constructor(capacity: number) {
    assert(capacity > 0, 'inflight capacity must be positive');
    this.capacity = capacity;
  }

  add(lastIndex: number): void {
    assert(!this.full(), 'inflights full');
    this.lastIndexes.push(lastIndex);
  }

  /** Frees every append whose last index is ≤ `index` (acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.lastIndexes.length && this.lastIndexes[n]! <= index) n++;
    if (n > 0) this.lastIndexes.splice(0, n);
  }

  /** Frees the oldest slot: lets a heartbeat response unstick a window whose appends were lost. */
  freeFirstOne(): void {
    this.lastIndexes.shift();
  }

  full(): boolean {
    return this.lastIndexes.length >= this.capacity;
  }

  count(): number {
    return this.lastIndexes.length;
  }

  reset(): void {
    this.lastIndexes.length = 0;
  }
}
