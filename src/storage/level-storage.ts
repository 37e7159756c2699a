import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  assert,
  bootstrapSnapshot,
  type ConfState,
  cloneConfState,
  type Entry,
  type HardState,
  type InitialState,
  NONE,
  RaftError,
  type RaftStorage,
  type Snapshot,
  type SnapshotMetadata,
} from '../raft/index.js';
import {
  type CreatedWith,
  cloneMember,
  corruptRecord,
  encodeConfState,
  encodeCreatedWith,
  encodeEntry,
  encodeHardState,
  encodeIndex,
  encodeLogPosition,
  encodeMember,
  encodeRemovedMembers,
  encodeSnapshotMetadata,
  encodeText,
  type LogPosition,
  type MemberRecord,
  sealKvValue,
  showKvKey,
  unsealKvValue,
} from './codec.js';
import { ioError, StorageError } from './errors.js';
import { encodeLogKey, META_KEY, RAFT_KEY } from './keys.js';
import {
  type Db,
  FORMAT_VERSION,
  type LoadedState,
  loadState,
  openDatabase,
  openSublevels,
  type StorageIdentity,
  type Sublevels,
  type UpgradeOptions,
} from './load.js';
import type { LogCache } from './log-cache.js';
import { SublevelKeys } from './sublevel-keys.js';

/** The part of a Ready that goes to stable storage (a Ready is assignable to it). */
export interface PersistableReady {
  hardState?: HardState;
  entries: readonly Entry[];
  snapshot?: Snapshot;
}

export type KvMutation =
  | { type: 'put'; key: string; value: Uint8Array }
  | { type: 'del'; key: string };

/** The state machine's changes up to `appliedIndex`, with the membership if it changed. */
export interface AppliedWrite {
  readonly appliedIndex: number;
  readonly confState: ConfState | undefined;
  readonly kvMutations: readonly KvMutation[];
}

export interface LevelStorageOptions extends UpgradeOptions {
  /**
   * replaceKv writes at most this many bytes per batch; a larger state is
   * written in chunks between an 'installing' marker and its removal.
   */
  kvBatchMaxBytes?: number;
}

const DEFAULT_KV_BATCH_MAX_BYTES = 32 * 1024 * 1024;
/** Per-record overhead assumed when sizing replaceKv batches. */
const RECORD_OVERHEAD_BYTES = 16;

type Batch = ReturnType<Db['batch']>;

/**
 * Raft storage in one LevelDB database per node (layout in keys.ts).
 *
 * The core reads synchronously, so the log (bounded by compaction) and the
 * hard state live in an in-memory LogCache that every write goes
 * through: each write is one atomic LevelDB batch, and the cache changes only
 * after the batch is written, so the core never sees state that is not on disk.
 * Writes run one at a time in call order.
 *
 * Log bounds: entries (firstIndex() - 1, lastIndex()] are stored; the position
 * firstIndex() - 1 (`logStart`) keeps only its term. It is the snapshot index
 * after a snapshot install, and `snapshotIndex - keepEntries` after compact().
 *
 * How a node uses it:
 * 1. open(); if identity() is undefined, initialize() (first start only).
 * 2. Rebuild the state machine from kvRecords() and members(); start the core
 *    with this storage and `applied: appliedIndex()`.
 * 3. Per Ready: `await persistReady(rd, rd.mustSync)`, send the messages, then
 *    replaceKv() if it carried a snapshot, then advance(). The state machine's
 *    changes from applying committed entries go with persistApplied(), or
 *    ride along with a later persistReady() (`applied`), one batch fewer.
 * 4. Now and then: compact(applied, term(applied), confState, keepEntries).
 * 5. snapshot() is metadata only: to send one, the server reads the data
 *    from the state machine.
 */
export class LevelRaftStorage implements RaftStorage {
  readonly dataDir: string;
  private readonly db: Db;
  private readonly sub: Sublevels;
  /** Prefixed keys for the hot path's batches (see SublevelKeys). */
  private readonly keys: { log: SublevelKeys; raft: SublevelKeys; kv: SublevelKeys };
  private readonly kvBatchMaxBytes: number;
  private ident: StorageIdentity | undefined;
  private readonly cache: LogCache;
  private applied: number;
  private readonly memberRecords: Map<string, MemberRecord>;
  private removedMemberIds: Set<string>;
  /** The last queued write; the next one starts after it settles. */
  private writeTail: Promise<unknown> = Promise.resolve();
  /**
   * The first failed disk write. Every later write is refused with it
   * (fail-stop, as etcd does): after a failed write or fsync nobody knows what
   * of it reached the disk, and LevelDB itself refuses writes after one anyway.
   */
  private failure: StorageError | undefined;
  private closed = false;

  private constructor(
    dataDir: string,
    db: Db,
    sub: Sublevels,
    state: LoadedState,
    options: LevelStorageOptions,
  ) {
    this.dataDir = dataDir;
    this.db = db;
    this.sub = sub;
    this.keys = {
      log: new SublevelKeys(sub.log),
      raft: new SublevelKeys(sub.raft),
      kv: new SublevelKeys(sub.kv),
    };
    this.ident = state.identity;
    this.cache = state.cache;
    this.applied = state.appliedIndex;
    this.memberRecords = state.members;
    this.removedMemberIds = state.removedMembers;
    this.kvBatchMaxBytes = options.kvBatchMaxBytes ?? DEFAULT_KV_BATCH_MAX_BYTES;
  }

  /**
   * Opens the data dir, creating it if missing, and loads everything the core
   * reads into memory, validating as it goes. Throws StorageError; never
   * starts empty on a directory that holds anything.
   */
  static async open(dataDir: string, options: LevelStorageOptions = {}): Promise<LevelRaftStorage> {
    const dir = path.resolve(dataDir);
    const db = await openDatabase(dir);
    const sub = openSublevels(db);
    try {
      const state = await loadState(dir, db, sub, options);
      return new LevelRaftStorage(dir, db, sub, state, options);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err instanceof StorageError ? err : ioError(dir, 'reading the database', err);
    }
  }

  /** Undefined for a brand-new data dir: call initialize(). */
  identity(): StorageIdentity | undefined {
    return this.ident === undefined ? undefined : { ...this.ident };
  }

  /**
   * First start only. Founding members (`bootstrapVoters` given) start from
   * the bootstrap snapshot (index 1, term 1, commit 1, applied 1); a joining
   * member starts empty and receives a snapshot from the leader.
   */
  async initialize(
    id: { clusterId: string; nodeId: string; nodeName: string },
    bootstrapVoters: string[] | undefined,
    createdWith?: CreatedWith,
  ): Promise<void> {
    await this.serialize(async () => {
      assert(this.ident === undefined, `data dir ${this.dataDir} is already initialized`);
      assert(id.clusterId !== '' && id.nodeId !== '', 'cluster id and node id must not be empty');
      assert(
        bootstrapVoters === undefined || bootstrapVoters.length > 0,
        'a founding member needs at least one bootstrap voter',
      );
      const ident: StorageIdentity = {
        formatVersion: FORMAT_VERSION,
        clusterId: id.clusterId,
        nodeId: id.nodeId,
        nodeName: id.nodeName,
        createdAt: new Date().toISOString(),
        ...(createdWith
          ? { createdWith: { how: createdWith.how, members: { ...createdWith.members } } }
          : {}),
      };
      const snap = bootstrapVoters === undefined ? undefined : bootstrapSnapshot(bootstrapVoters);
      const meta: SnapshotMetadata = snap?.metadata ?? {
        index: 0,
        term: 0,
        confState: { voters: [], learners: [] },
      };
      const hs: HardState = { term: meta.term, vote: NONE, commit: meta.index };
      const batch = this.db.batch();
      const m = { sublevel: this.sub.meta };
      batch.put(META_KEY.formatVersion, encodeText(String(FORMAT_VERSION)), m);
      batch.put(META_KEY.clusterId, encodeText(ident.clusterId), m);
      batch.put(META_KEY.nodeId, encodeText(ident.nodeId), m);
      batch.put(META_KEY.nodeName, encodeText(ident.nodeName), m);
      batch.put(META_KEY.createdAt, encodeText(ident.createdAt), m);
      if (ident.createdWith)
        batch.put(META_KEY.createdWith, encodeCreatedWith(ident.createdWith), m);
      const r = { sublevel: this.sub.raft };
      batch.put(RAFT_KEY.hardState, encodeHardState(hs), r);
      batch.put(RAFT_KEY.confState, encodeConfState(meta.confState), r);
      batch.put(RAFT_KEY.snapshot, encodeSnapshotMetadata(meta), r);
      batch.put(RAFT_KEY.logStart, encodeLogPosition({ index: meta.index, term: meta.term }), r);
      batch.put(RAFT_KEY.applied, encodeIndex(meta.index), r);
      await this.writeBatch(batch, true, 'initializing');
      this.ident = ident;
      if (snap) this.cache.applySnapshot(snap.metadata);
      this.cache.setHardState(hs);
      this.cache.setConfState(meta.confState);
      this.applied = meta.index;
    }, false);
  }

  // RaftStorage: synchronous reads of the cache.

  initialState(): InitialState {
    return this.cache.initialState();
  }

  entries(lo: number, hi: number, maxSizeBytes?: number): Entry[] {
    return this.cache.entries(lo, hi, maxSizeBytes);
  }

  term(index: number): number {
    return this.cache.term(index);
  }

  firstIndex(): number {
    return this.cache.firstIndex();
  }

  lastIndex(): number {
    return this.cache.lastIndex();
  }

  /** Metadata only (`data` is empty): the server produces the data from the state machine. */
  snapshot(): Snapshot {
    return this.cache.snapshot();
  }

  /** The index the kv sublevel reflects. */
  appliedIndex(): number {
    return this.applied;
  }

  /**
   * Step 1 of the Ready contract, as one batch: the snapshot (replacing the
   * whole log), the entries (truncating any conflicting suffix) and the hard
   * state. Await it before sending the Ready's messages; `sync` is the
   * Ready's mustSync.
   */
  persistReady(
    rd: PersistableReady,
    sync: boolean,
    extra: {
      /**
       * With a snapshot: the state machine records it holds. They replace the kv
       * sublevel, with the applied index, in the same atomic batch as the
       * snapshot, so a crash cannot leave the log cut without the state behind it.
       */
      installRecords?: Iterable<readonly [string, Uint8Array]>;
      /** Without a snapshot: applied state, as persistApplied() would write it, in the same batch. */
      applied?: AppliedWrite;
    } = {},
  ): Promise<void> {
    const { installRecords, applied } = extra;
    return this.serialize(async () => {
      const snap = rd.snapshot?.metadata;
      if (snap && snap.index <= this.cache.snapshot().metadata.index) {
        throw new RaftError('snapshot_out_of_date', 'snapshot is older than the current one');
      }
      // Check everything before building the batch, so a refused Ready writes nothing.
      const oldFirst = this.cache.firstIndex();
      const oldLast = this.cache.lastIndex();
      const logEnd = snap ? snap.index : oldLast;
      const ents = entriesAfter(rd.entries, snap ? snap.index : oldFirst - 1);
      const newLast = ents.length > 0 ? ents[ents.length - 1]!.index : logEnd;
      if (ents.length > 0) {
        assert(
          ents[0]!.index <= logEnd + 1,
          `gap appending at ${ents[0]!.index}, lastIndex ${logEnd}`,
        );
      }
      const hs = rd.hardState;
      if (hs)
        assert(hs.commit <= newLast, `hard state commit ${hs.commit} beyond lastIndex ${newLast}`);
      if (applied) {
        assert(!snap, 'applied state goes with a snapshot through installRecords');
        this.checkApplied(applied.appliedIndex, hs?.commit ?? this.cache.hardState.commit);
      }
      if (!snap && ents.length === 0 && !hs && !applied) return;

      const { log, raft } = this.keys;
      const r = { sublevel: this.sub.raft };
      const batch = this.db.batch();
      // A snapshot replaces the whole log; otherwise a conflicting suffix goes (Raft §5.3).
      // Deletes come first: a later put of the same key in the batch wins.
      for (let i = snap ? oldFirst : newLast + 1; i <= oldLast; i++) {
        batch.del(log.ofBytes(encodeLogKey(i)));
      }
      if (snap) {
        batch.put(RAFT_KEY.snapshot, encodeSnapshotMetadata(snap), r);
        batch.put(RAFT_KEY.logStart, encodeLogPosition({ index: snap.index, term: snap.term }), r);
        batch.put(RAFT_KEY.confState, encodeConfState(snap.confState), r);
      }
      for (const e of ents) batch.put(log.ofBytes(encodeLogKey(e.index)), encodeEntry(e));
      if (hs) batch.put(raft.ofText(RAFT_KEY.hardState), encodeHardState(hs));
      const install = snap && installRecords;
      if (install) {
        const kv = { sublevel: this.sub.kv };
        try {
          for await (const key of this.sub.kv.keys()) batch.del(key, kv);
        } catch (err) {
          await batch.close();
          throw ioError(this.dataDir, 'reading the kv state', err);
        }
        for (const [key, value] of installRecords) batch.put(key, sealKvValue(key, value), kv);
        batch.put(RAFT_KEY.applied, encodeIndex(snap.index), r);
      }
      if (applied) this.addApplied(batch, applied);
      await this.writeBatch(
        batch,
        sync || Boolean(install),
        'persisting log entries and hard state',
      );
      if (install) this.applied = snap.index;
      if (snap) this.cache.applySnapshot(snap);
      if (ents.length > 0) this.cache.append(ents);
      if (hs) this.cache.setHardState(hs);
      if (applied) this.appliedWritten(applied);
    });
  }

  /**
   * Step 3 of the Ready contract: the state machine's changes from applying
   * entries up to `appliedIndex`, with that index (and the membership when it
   * changed), as one batch — so a restart resumes from here without replaying.
   */
  persistApplied(
    appliedIndex: number,
    confState: ConfState | undefined,
    kvMutations: readonly KvMutation[],
    sync = false,
  ): Promise<void> {
    return this.serialize(async () => {
      const applied: AppliedWrite = { appliedIndex, confState, kvMutations };
      this.checkApplied(appliedIndex, this.cache.hardState.commit);
      const batch = this.db.batch();
      this.addApplied(batch, applied);
      await this.writeBatch(batch, sync, 'persisting applied state');
      this.appliedWritten(applied);
    });
  }

  /** An applied state may only move forward, and only over committed entries. */
  private checkApplied(appliedIndex: number, commit: number): void {
    this.assertApplicable(appliedIndex, commit);
    assert(appliedIndex >= this.applied, `applied index ${appliedIndex} is behind ${this.applied}`);
  }

  private addApplied(batch: Batch, applied: AppliedWrite): void {
    const { kv, raft } = this.keys;
    for (const m of applied.kvMutations) {
      if (m.type === 'put') batch.put(kv.ofText(m.key), sealKvValue(m.key, m.value));
      else batch.del(kv.ofText(m.key));
    }
    batch.put(raft.ofText(RAFT_KEY.applied), encodeIndex(applied.appliedIndex));
    if (applied.confState)
      batch.put(raft.ofText(RAFT_KEY.confState), encodeConfState(applied.confState));
  }

  private appliedWritten(applied: AppliedWrite): void {
    this.applied = applied.appliedIndex;
    if (applied.confState) this.cache.setConfState(applied.confState);
  }

  /**
   * Replaces the whole kv sublevel (after InstallSnapshot) and sets the
   * applied index and membership. One batch when it fits in kvBatchMaxBytes;
   * otherwise chunks between an 'installing' marker (synced first) and its
   * removal (with the applied index, last), so open() detects a crash in
   * between as 'install_incomplete'.
   */
  replaceKv(
    records: Iterable<[string, Uint8Array]> | AsyncIterable<[string, Uint8Array]>,
    appliedIndex: number,
    confState: ConfState,
  ): Promise<void> {
    return this.serialize(async () => {
      this.assertApplicable(appliedIndex);
      const kv = { sublevel: this.sub.kv };
      const r = { sublevel: this.sub.raft };
      let batch: Batch = this.db.batch();
      let pendingBytes = 0;
      let chunked = false;
      const add = async (sizeBytes: number): Promise<void> => {
        pendingBytes += sizeBytes + RECORD_OVERHEAD_BYTES;
        if (pendingBytes < this.kvBatchMaxBytes) return;
        if (!chunked) {
          chunked = true;
          const marker = this.db.batch();
          marker.put(RAFT_KEY.installing, encodeIndex(appliedIndex, RAFT_KEY.installing), r);
          await this.writeBatch(marker, true, 'installing a snapshot');
        }
        await this.writeBatch(batch, false, 'installing a snapshot');
        batch = this.db.batch();
        pendingBytes = 0;
      };
      try {
        // The iterator reads a snapshot of the sublevel, so chunks written meanwhile do not disturb it.
        try {
          for await (const key of this.sub.kv.keys()) {
            batch.del(key, kv);
            await add(key.length);
          }
        } catch (err) {
          throw err instanceof StorageError
            ? err
            : ioError(this.dataDir, 'reading the kv state', err);
        }
        // Errors of the caller's records (a broken snapshot stream) pass through as they are.
        for await (const [key, value] of records) {
          batch.put(key, sealKvValue(key, value), kv);
          await add(key.length + value.byteLength);
        }
      } catch (err) {
        await batch.close();
        throw err;
      }
      batch.put(RAFT_KEY.applied, encodeIndex(appliedIndex), r);
      batch.put(RAFT_KEY.confState, encodeConfState(confState), r);
      if (chunked) batch.del(RAFT_KEY.installing, r);
      await this.writeBatch(batch, true, 'installing a snapshot');
      this.applied = appliedIndex;
      this.cache.setConfState(confState);
    });
  }

  /**
   * Records a snapshot of the state machine at `snapshotIndex` (≤ applied;
   * metadata only) and drops the log up to `snapshotIndex - keepEntries`, so
   * that `keepEntries` entries up to the snapshot stay for slow followers.
   * One batch. Returns the new snapshot (empty data).
   */
  compact(
    snapshotIndex: number,
    snapshotTerm: number,
    confState: ConfState,
    keepEntries: number,
  ): Promise<Snapshot> {
    return this.serialize(async () => {
      if (snapshotIndex <= this.cache.snapshot().metadata.index) {
        throw new RaftError('snapshot_out_of_date', 'snapshot is older than the current one');
      }
      assert(
        Number.isSafeInteger(keepEntries) && keepEntries >= 0,
        `keepEntries ${keepEntries} must be a non-negative integer`,
      );
      assert(
        snapshotIndex <= this.applied,
        `snapshot index ${snapshotIndex} beyond applied index ${this.applied}`,
      );
      const term = this.cache.term(snapshotIndex);
      assert(
        term === snapshotTerm,
        `snapshot term ${snapshotTerm} but entry ${snapshotIndex} has term ${term}`,
      );
      const offset = this.cache.firstIndex() - 1;
      const compactIndex = snapshotIndex - keepEntries;
      const meta: SnapshotMetadata = {
        index: snapshotIndex,
        term,
        confState: cloneConfState(confState),
      };
      const r = { sublevel: this.sub.raft };
      const batch = this.db.batch();
      batch.put(RAFT_KEY.snapshot, encodeSnapshotMetadata(meta), r);
      if (compactIndex > offset) {
        const start: LogPosition = { index: compactIndex, term: this.cache.term(compactIndex) };
        batch.put(RAFT_KEY.logStart, encodeLogPosition(start), r);
      }
      // Not synced: losing it in a crash just keeps more log; a later synced write covers it.
      await this.writeBatch(batch, false, 'compacting the log');
      if (compactIndex > offset) {
        // Then the entries, by one range delete that LevelDB runs off the event loop (thousands
        // of single deletes took tens of ms of it). A crash in between leaves entries below the
        // log start, which open() skips and this deletes next time (no lower bound).
        try {
          await this.sub.log.clear({ lte: encodeLogKey(compactIndex) });
        } catch (err) {
          throw this.writeFailed('compacting the log', err);
        }
      }
      this.cache.createSnapshot(snapshotIndex, meta.confState);
      if (compactIndex > offset) this.cache.compact(compactIndex);
      return this.cache.snapshot();
    });
  }

  /**
   * The kv sublevel in key order, each value checked against its checksum
   * and handed out bare (as the state machine wrote it). A mismatch throws
   * StorageError 'corrupt' naming the key: the record is never handed out, so
   * never applied nor sent. Read to rebuild the state machine on start.
   */
  async *kvRecords(): AsyncGenerator<[string, Uint8Array]> {
    try {
      for await (const [key, value] of this.sub.kv.iterator()) {
        let bare: Uint8Array;
        try {
          bare = unsealKvValue(key, value);
        } catch (err) {
          throw corruptRecord(this.dataDir, `sublevel kv, key ${showKvKey(key)}`, err);
        }
        yield [key, bare];
      }
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw ioError(this.dataDir, 'reading the key-value state', err);
    }
  }

  /** The application's member records, sorted by id. */
  members(): MemberRecord[] {
    return [...this.memberRecords.values()]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map(cloneMember);
  }

  /** Ids of the members removed from the cluster, as last saved. */
  removedMembers(): string[] {
    return [...this.removedMemberIds].sort();
  }

  /**
   * Replaces all member records (ids not in `records` are removed), and with
   * `removed` the list of removed member ids, synced.
   */
  saveMembers(records: readonly MemberRecord[], removed?: readonly string[]): Promise<void> {
    return this.serialize(async () => {
      const next = new Map(records.map((m) => [m.id, cloneMember(m)]));
      const batch = this.db.batch();
      const opts = { sublevel: this.sub.members };
      for (const id of this.memberRecords.keys()) if (!next.has(id)) batch.del(id, opts);
      for (const m of next.values()) batch.put(m.id, encodeMember(m), opts);
      if (removed) {
        batch.put(META_KEY.removedMembers, encodeRemovedMembers(removed), {
          sublevel: this.sub.meta,
        });
      }
      await this.writeBatch(batch, true, 'saving member records');
      this.memberRecords.clear();
      for (const [id, m] of next) this.memberRecords.set(id, m);
      if (removed) this.removedMemberIds = new Set(removed);
    });
  }

  /** Bytes of all files in the data dir (LevelDB tables, write-ahead log, manifest). */
  async sizeBytes(): Promise<number> {
    let total = 0;
    try {
      for (const name of await readdir(this.dataDir)) {
        const st = await stat(path.join(this.dataDir, name)).catch(() => undefined);
        if (st?.isFile()) total += st.size;
      }
    } catch (err) {
      throw ioError(this.dataDir, 'measuring the database', err);
    }
    return total;
  }

  /** Waits for queued writes, then closes the database. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writeTail.catch(() => undefined);
    await this.db.close();
  }

  /**
   * Runs writes one at a time in call order. A refused write (a failed check)
   * does not block the next; a failed disk write fails every write after it.
   */
  private serialize<T>(write: () => Promise<T>, needsIdentity = true): Promise<T> {
    if (this.closed) {
      return Promise.reject(new RaftError('invariant', 'storage used after close()'));
    }
    // Raft records without identity would make the dir look foreign on the next open.
    if (needsIdentity && this.ident === undefined) {
      return Promise.reject(new RaftError('invariant', 'initialize() the storage before writing'));
    }
    const guarded = () => (this.failure ? Promise.reject(this.failure) : write());
    const run = this.writeTail.then(guarded, guarded);
    this.writeTail = run.catch(() => undefined);
    return run;
  }

  private async writeBatch(batch: Batch, sync: boolean, doing: string): Promise<void> {
    try {
      await batch.write({ sync });
    } catch (err) {
      throw this.writeFailed(doing, err);
    }
  }

  /** Records the first failed disk write (see `failure`) and returns the error to throw. */
  private writeFailed(doing: string, err: unknown): StorageError {
    const failure = ioError(this.dataDir, doing, err);
    this.failure ??= failure;
    return failure;
  }

  /** The failed disk write that stopped this storage, if one did. */
  writeFailure(): StorageError | undefined {
    return this.failure;
  }

  /** The state machine may only reflect committed entries (`commit`: the one written with it). */
  private assertApplicable(appliedIndex: number, commit = this.cache.hardState.commit): void {
    assert(
      Number.isSafeInteger(appliedIndex) && appliedIndex >= 0,
      `bad applied index ${appliedIndex}`,
    );
    assert(appliedIndex <= commit, `applied index ${appliedIndex} beyond commit ${commit}`);
  }
}

/** Entries after `offset`, checked to be contiguous (those at or before it are in the snapshot). */
function entriesAfter(entries: readonly Entry[], offset: number): readonly Entry[] {
  for (let i = 1; i < entries.length; i++) {
    assert(
      entries[i]!.index === entries[i - 1]!.index + 1,
      'entries to persist are not contiguous',
    );
  }
  if (entries.length === 0 || entries[entries.length - 1]!.index <= offset) return [];
  const first = entries[0]!.index;
  return first > offset ? entries : entries.slice(offset + 1 - first);
}
