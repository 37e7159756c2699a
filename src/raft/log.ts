import { assert, RaftError } from './errors.js';
import { UnstableLog } from './log-unstable.js';
import type { Entry, Snapshot } from './messages.js';
import { limitSize, type RaftStorage } from './storage.js';

/**
 * The Raft log as the core sees it: stable storage followed by unstable entries.
 * Invariants: applied ≤ committed ≤ lastIndex(); firstIndex() - 1 ≤ applied.
 */
export class RaftLog {
  readonly storage: RaftStorage;
  readonly unstable: UnstableLog;
  /** Highest index known to be committed (Raft §5.3). */
  committed: number;
  /** Highest index handed to the application to apply. */
  applied: number;

  constructor(storage: RaftStorage) {
    this.storage = storage;
    const first = storage.firstIndex();
    this.unstable = new UnstableLog(storage.lastIndex() + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, 'term of lastIndex unavailable');
    return t;
  }

  /** The term of the entry at `index`, or undefined if it is compacted or past the end. */
  term(index: number): number | undefined {
    const dummy = this.firstIndex() - 1;
    if (index < dummy || index > this.lastIndex()) return undefined;
    const t = this.unstable.maybeTerm(index);
    if (t !== undefined) return t;
    try {
      return this.storage.term(index);
    } catch (err) {
      if (err instanceof RaftError && (err.code === 'compacted' || err.code === 'unavailable'))
        return undefined;
      throw err;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a candidate's log (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Follower side of AppendEntries (Raft §5.3): if our log has (index, logTerm),
   * append what is new, truncating conflicts, and commit up to min(committed,
   * last new index). Returns the last new index, or undefined on a mismatch.
   */
  maybeAppend(
    index: number,
    logTerm: number,
    committed: number,
    ents: Entry[],
  ): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNewIndex = index + ents.length;
    const conflictIndex = this.findConflict(ents);
    if (conflictIndex !== 0) {
      assert(
        conflictIndex > this.committed,
        `entry ${conflictIndex} conflicts with committed entry ${this.committed}`,
      );
      this.append(ents.slice(conflictIndex - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNewIndex));
    return lastNewIndex;
  }

  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    assert(
      ents[0]!.index - 1 >= this.committed,
      `append at ${ents[0]!.index} would overwrite committed ${this.committed}`,
    );
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** The index of the first entry whose term differs from ours, or of the first new entry; 0 if none. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast backtracking: the largest index ≤ `index` whose term is ≤ `term`, with
   * that term. Entries above it cannot match a log whose entry at `index` has `term`.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; ; i--) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries;
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** Committed entries not yet handed to the application (none while a snapshot is pending). */
  nextCommittedEntries(maxSizeBytes?: number): Entry[] {
    if (this.hasPendingSnapshot()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed < lo) return [];
    return this.slice(lo, this.committed + 1, maxSizeBytes);
  }

  hasNextCommittedEntries(): boolean {
    if (this.hasPendingSnapshot()) return false;
    return this.committed > Math.max(this.applied, this.firstIndex() - 1);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Entries from `index` to the end, bounded in size; throws RaftError 'compacted'. */
  entriesFrom(index: number, maxSizeBytes?: number): Entry[] {
    if (index > this.lastIndex()) return [];
    return this.slice(index, this.lastIndex() + 1, maxSizeBytes);
  }

  /** Entries in [lo, hi) from storage and unstable together. Throws RaftError 'compacted' if lo is gone. */
  slice(lo: number, hi: number, maxSizeBytes?: number): Entry[] {
    assert(lo <= hi, `slice(${lo}, ${hi}) inverted`);
    if (lo < this.firstIndex())
      throw new RaftError('compacted', `entries from ${lo} are compacted`);
    assert(hi <= this.lastIndex() + 1, `slice(${lo}, ${hi}) past lastIndex ${this.lastIndex()}`);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    const offset = this.unstable.offset;
    if (lo < offset) {
      ents = this.storage.entries(lo, Math.min(hi, offset), maxSizeBytes);
      // Storage stopped early (size bound): do not add unstable entries after a gap.
      if (ents.length < Math.min(hi, offset) - lo) return ents;
    }
    if (hi > offset) {
      const fromUnstable = this.unstable.slice(Math.max(lo, offset), hi);
      ents = ents.length > 0 ? ents.concat(fromUnstable) : fromUnstable;
    }
    return limitSize(ents, maxSizeBytes);
  }

  /** Leader: commit `maxIndex` if a quorum has it and it is from the current term (Raft §5.4.2). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  commitTo(toCommit: number): void {
    if (this.committed >= toCommit) return; // never decrease commit
    assert(toCommit <= this.lastIndex(), `commit ${toCommit} past lastIndex ${this.lastIndex()}`);
    this.committed = toCommit;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    assert(
      index <= this.committed && index >= this.applied,
      `applied ${index} outside [${this.applied}, ${this.committed}]`,
    );
    this.applied = index;
  }

  /** The last index known to be on disk (entries past it are still in `unstable`). */
  lastStableIndex(): number {
    return this.unstable.snapshot ? 0 : this.unstable.offset - 1;
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index);
  }

  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }
}
