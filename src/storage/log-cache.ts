import {
  assert,
  type ConfState,
  cloneConfState,
  type Entry,
  type HardState,
  type InitialState,
  limitSize,
  NONE,
  RaftError,
  type RaftStorage,
  type Snapshot,
  type SnapshotMetadata,
} from '../raft/index.js';

const EMPTY = new Uint8Array();

/**
 * The in-memory copy of what LevelRaftStorage holds on disk, serving the
 * core's synchronous reads. Same semantics as MemoryRaftStorage (the storage
 * contract suite checks both), but appends in place — O(entries appended),
 * not O(log length) — since an append happens on every Ready.
 *
 * Invariant: ents[0] is the placeholder at the log start (index and term of
 * the position before firstIndex()); ents[i] has index ents[0].index + i.
 */
export class LogCache implements RaftStorage {
  hardState: HardState = { term: 0, vote: NONE, commit: 0 };
  confState: ConfState = { voters: [], learners: [] };
  private snap: Snapshot = {
    metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
    data: EMPTY,
  };
  private ents: Entry[] = [placeholder(0, 0)];

  /** A cache loaded from disk: the log start, the entries after it, and the snapshot (within the log). */
  static restore(
    start: { index: number; term: number },
    entries: Entry[],
    snapshot: SnapshotMetadata,
    hardState: HardState,
    confState: ConfState,
  ): LogCache {
    const cache = new LogCache();
    cache.ents = [placeholder(start.index, start.term), ...entries];
    cache.snap = { metadata: cloneMetadata(snapshot), data: EMPTY };
    cache.hardState = { ...hardState };
    cache.confState = cloneConfState(confState);
    return cache;
  }

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.confState) };
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  term(index: number): number {
    const offset = this.ents[0]!.index;
    if (index < offset) throw new RaftError('compacted', `index ${index} is compacted`);
    if (index - offset >= this.ents.length) {
      throw new RaftError('unavailable', `index ${index} is unavailable`);
    }
    return this.ents[index - offset]!.term;
  }

  entries(lo: number, hi: number, maxSizeBytes?: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new RaftError('compacted', `entries from ${lo} are compacted`);
    assert(hi <= this.lastIndex() + 1, `entries(${lo}, ${hi}) past lastIndex ${this.lastIndex()}`);
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSizeBytes);
  }

  /** Metadata only: `data` is always empty. */
  snapshot(): Snapshot {
    return this.snap;
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  setConfState(cs: ConfState): void {
    this.confState = cloneConfState(cs);
  }

  /** Replaces the whole log with the snapshot's position (InstallSnapshot). */
  applySnapshot(meta: SnapshotMetadata): void {
    this.snap = { metadata: cloneMetadata(meta), data: EMPTY };
    this.ents = [placeholder(meta.index, meta.term)];
    this.confState = cloneConfState(meta.confState);
  }

  /** Records snapshot metadata at `index`, which must be in the log; compaction is separate. */
  createSnapshot(index: number, confState: ConfState): void {
    this.snap = {
      metadata: { index, term: this.term(index), confState: cloneConfState(confState) },
      data: EMPTY,
    };
  }

  /** Drops entries up to `compactIndex`, which becomes the placeholder. */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index;
    if (compactIndex <= offset) return;
    const kept = this.ents.slice(compactIndex - offset + 1);
    kept.unshift(placeholder(compactIndex, this.term(compactIndex)));
    this.ents = kept;
  }

  /**
   * Appends contiguous entries after the log start, truncating any suffix
   * from the first one's index. The caller has dropped entries at or before
   * the log start and checked for gaps.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const at = entries[0]!.index - this.ents[0]!.index;
    assert(at >= 1 && at <= this.ents.length, `append at ${entries[0]!.index} out of range`);
    this.ents.length = at;
    for (const e of entries) this.ents.push(e);
  }
}

function placeholder(index: number, term: number): Entry {
  return { index, term, type: 'normal', data: EMPTY };
}

function cloneMetadata(meta: SnapshotMetadata): SnapshotMetadata {
  return { index: meta.index, term: meta.term, confState: cloneConfState(meta.confState) };
}
