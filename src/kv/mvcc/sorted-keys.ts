import { assert } from '../errors.js';
import { compareKeys } from '../key-order.js';

/** Chunks split beyond this size: inserts and removals move at most this many elements. */
const CHUNK_SIZE_MAX = 512;

/**
 * A sorted set of keys (compareKeys order) for ordered range scans. A list of
 * sorted chunks, so inserting a new key into 100k keys costs a binary search
 * and a splice of at most CHUNK_SIZE_MAX, not a move of the whole array.
 *
 * Invariant: chunks are non-empty, each is sorted, and the last key of chunk i
 * sorts before the first key of chunk i + 1.
 */
export class SortedKeys {
  private chunks: string[][] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Fills an empty set at once (faster than inserting one by one when loading). */
  bulkLoad(keys: string[]): void {
    assert(this.count === 0, 'sorted keys: bulk load into a non-empty set');
    const sorted = [...keys].sort(compareKeys);
    for (let i = 0; i < sorted.length; i += CHUNK_SIZE_MAX / 2) {
      this.chunks.push(sorted.slice(i, i + CHUNK_SIZE_MAX / 2));
    }
    for (let i = 1; i < sorted.length; i++) {
      assert(compareKeys(sorted[i - 1]!, sorted[i]!) < 0, 'sorted keys: duplicate in bulk load');
    }
    this.count = sorted.length;
  }

  /** Adds a key that is not yet present (the caller knows: it owns the key → history map). */
  insert(key: string): void {
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      this.count = 1;
      return;
    }
    const c = Math.min(this.chunkIndexFor(key), this.chunks.length - 1);
    const chunk = this.chunks[c]!;
    const i = lowerBound(chunk, key);
    assert(chunk[i] !== key, `sorted keys: duplicate insert of ${JSON.stringify(key)}`);
    chunk.splice(i, 0, key);
    this.count++;
    if (chunk.length > CHUNK_SIZE_MAX) {
      this.chunks.splice(c + 1, 0, chunk.splice(chunk.length >> 1));
    }
  }

  /** Removes a key; returns whether it was present. */
  remove(key: string): boolean {
    const c = this.chunkIndexFor(key);
    const chunk = this.chunks[c];
    if (chunk === undefined) return false;
    const i = lowerBound(chunk, key);
    if (chunk[i] !== key) return false;
    chunk.splice(i, 1);
    this.count--;
    if (chunk.length === 0) this.chunks.splice(c, 1);
    return true;
  }

  /** Keys in order starting at the first key ≥ `start` (or > `start` when `exclusive`). */
  *from(start: string, exclusive = false): Generator<string, void, undefined> {
    let c = this.chunkIndexFor(start);
    if (c >= this.chunks.length) return;
    let i = lowerBound(this.chunks[c]!, start);
    if (exclusive && this.chunks[c]![i] === start) i++;
    for (; c < this.chunks.length; c++, i = 0) {
      const chunk = this.chunks[c]!;
      for (; i < chunk.length; i++) yield chunk[i]!;
    }
  }

  /** Index of the first chunk whose last key is ≥ key (chunks.length if none). */
  private chunkIndexFor(key: string): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const chunk = this.chunks[mid]!;
      if (compareKeys(chunk[chunk.length - 1]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Index of the first element ≥ key. */
function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareKeys(sorted[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
