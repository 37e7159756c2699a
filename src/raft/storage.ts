import { assert, RaftError } from './errors.js';
import type { ConfState, Entry, HardState, Snapshot } from './messages.js';
import { entrySizeBytes, NONE } from './messages.js';

export interface InitialState {
  hardState: HardState;
  /** Membership as of the application's applied index (persisted with it). */
  confState: ConfState;
}

/**
 * The core's read-only view of stable storage. Synchronous on purpose: an
 * implementation keeps the (snapshot-bounded) log in memory and writes through
 * to disk, as etcd does with its WAL and MemoryStorage.
 *
 * Index bounds: entries exist in [firstIndex(), lastIndex()]; term(firstIndex() - 1)
 * is the snapshot's term and must be answered.
 */
export interface RaftStorage {
  initialState(): InitialState;
  /** Entries in [lo, hi), at least one if any exist, stopping before maxSizeBytes is exceeded. */
  entries(lo: number, hi: number, maxSizeBytes?: number): Entry[];
  /** Throws RaftError 'compacted' or 'unavailable' outside [firstIndex() - 1, lastIndex()]. */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

export function emptySnapshot(): Snapshot {
  return {
    metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
    data: new Uint8Array(),
  };
}

/**
 * The snapshot every founding member starts from: index 1, term 1, the initial
 * membership and an empty application state. Members added later start empty
 * and receive a snapshot first, so every member learns the configuration the
 * same way.
 */
export function bootstrapSnapshot(voters: string[]): Snapshot {
  return {
    metadata: { index: 1, term: 1, confState: { voters: [...voters].sort(), learners: [] } },
    data: new Uint8Array(),
  };
}

export function cloneConfState(cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] };
}

export function limitSize(entries: Entry[], maxSizeBytes: number | undefined): Entry[] {
  if (maxSizeBytes === undefined || entries.length === 0) return entries;
  let sizeBytes = entrySizeBytes(entries[0]!);
  let n = 1;
  for (; n < entries.length; n++) {
    sizeBytes += entrySizeBytes(entries[n]!);
    if (sizeBytes > maxSizeBytes) break;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

/**
 * In-memory storage: the reference implementation for tests and the simulator,
 * and the in-memory cache behind the LevelDB storage.
 */
export class MemoryRaftStorage implements RaftStorage {
  hardState: HardState = { term: 0, vote: NONE, commit: 0 };
  confState: ConfState = { voters: [], learners: [] };
  private snap: Snapshot = emptySnapshot();
  /** entries[0] is a placeholder at the snapshot's index and term. */
  private ents: Entry[] = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array() }];

  /** A founding member's storage (see bootstrapSnapshot). */
  static bootstrap(voters: string[]): MemoryRaftStorage {
    const storage = new MemoryRaftStorage();
    storage.applySnapshot(bootstrapSnapshot(voters));
    storage.hardState = { term: 1, vote: NONE, commit: 1 };
    return storage;
  }

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.confState) };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  setConfState(cs: ConfState): void {
    this.confState = cloneConfState(cs);
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
    if (index - offset >= this.ents.length)
      throw new RaftError('unavailable', `index ${index} is unavailable`);
    return this.ents[index - offset]!.term;
  }

  entries(lo: number, hi: number, maxSizeBytes?: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new RaftError('compacted', `entries from ${lo} are compacted`);
    assert(hi <= this.lastIndex() + 1, `entries(${lo}, ${hi}) past lastIndex ${this.lastIndex()}`);
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSizeBytes);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces everything with the snapshot (a follower catching up by InstallSnapshot). */
  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.metadata.index <= this.snap.metadata.index) {
      throw new RaftError('snapshot_out_of_date', 'snapshot is older than the current one');
    }
    this.snap = snapshot;
    this.ents = [
      {
        term: snapshot.metadata.term,
        index: snapshot.metadata.index,
        type: 'normal',
        data: new Uint8Array(),
      },
    ];
    this.confState = cloneConfState(snapshot.metadata.confState);
  }

  /** Records a snapshot of the application's state at `index` (≤ applied); compaction is separate. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) {
      throw new RaftError('snapshot_out_of_date', 'snapshot is older than the current one');
    }
    assert(index <= this.lastIndex(), `snapshot index ${index} past lastIndex ${this.lastIndex()}`);
    this.snap = {
      metadata: { index, term: this.term(index), confState: cloneConfState(confState) },
      data,
    };
    return this.snap;
  }

  /** Drops entries before `compactIndex`; the entry at compactIndex becomes the placeholder. */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index;
    if (compactIndex <= offset) return;
    assert(
      compactIndex <= this.lastIndex(),
      `compact ${compactIndex} past lastIndex ${this.lastIndex()}`,
    );
    const placeholder = this.ents[compactIndex - offset]!;
    this.ents = [
      { term: placeholder.term, index: placeholder.index, type: 'normal', data: new Uint8Array() },
      ...this.ents.slice(compactIndex - offset + 1),
    ];
  }

  /** Appends entries, truncating any conflicting suffix first. Entries must be contiguous. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    let ents = entries;
    // Entries already covered by the snapshot are dropped.
    if (ents[ents.length - 1]!.index < first) return;
    if (ents[0]!.index < first) ents = ents.slice(first - ents[0]!.index);
    const offset = ents[0]!.index - this.ents[0]!.index;
    assert(
      offset <= this.ents.length,
      `gap appending at ${ents[0]!.index}, lastIndex ${this.lastIndex()}`,
    );
    this.ents = this.ents.slice(0, offset).concat(ents);
  }
}
