import { crc32 } from '../../src/kv/crc32.js';
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
  type SeededRandom,
  type Snapshot,
  type SnapshotMetadata,
} from '../../src/raft/index.js';
import type { CoreStorage } from '../../src/server/ports.js';
import {
  cloneMember,
  DecodeError,
  decodeConfState,
  decodeEntry,
  decodeHardState,
  decodeIndex,
  decodeLogPosition,
  decodeMember,
  decodeRemovedMembers,
  decodeSnapshotMetadata,
  encodeConfState,
  encodeEntry,
  encodeHardState,
  encodeIndex,
  encodeLogPosition,
  encodeMember,
  encodeRemovedMembers,
  encodeSnapshotMetadata,
  type LogPosition,
  type MemberRecord,
} from '../../src/storage/codec.js';
import { corruptError, ioError, StorageError } from '../../src/storage/errors.js';
import type { AppliedWrite, PersistableReady } from '../../src/storage/index.js';
import { LogCache } from '../../src/storage/log-cache.js';
import type { NodeClock } from './clock.js';
import type { DurableLog } from './invariants.js';

/*
 * SimDisk: an honest disk for the simulator, modelled on LevelDB over a file
 * system, not on a Map.
 * - Every write is one batch, encoded to bytes with a checksum (LevelDB's WAL
 *   record). An unsynced batch sits in the page cache: reads see it, a power
 *   loss may lose it. A synced write makes it and every earlier batch durable.
 * - crash('process') (SIGKILL) keeps the page cache; crash('power') keeps a
 *   random prefix of the unsynced batches and may tear the last one kept; the
 *   torn batch fails its checksum at replay and is dropped whole (LevelDB
 *   batches are atomic), never half-applied.
 * - Records are the REAL codec's bytes (src/storage/codec.ts); opening decodes
 *   what is there and runs the checks LevelRaftStorage's open runs, so a
 *   corrupted record is found at open (StorageError 'corrupt').
 * - Faults the world arms: the next write fails, the next sync fails (the batch
 *   reached the page cache but is not durable, as with fsync's EIO), an entry
 *   is corrupted on disk, or is corrupted when the running node next reads it.
 * - Writes of an incarnation that crashed are ignored, and their promises never
 *   settle: that process is gone.
 */

const LOG_PREFIX = 'log/';
const KV_PREFIX = 'kv/';
const MEMBER_PREFIX = 'member/';
const KEY = {
  hardState: 'raft/hardState',
  confState: 'raft/confState',
  snapshot: 'raft/snapshot',
  logStart: 'raft/logStart',
  applied: 'raft/applied',
  removed: 'meta/removed',
} as const;

/** Log keys sort by index as strings (LevelDB orders them as bytes). */
export function logKey(index: number): string {
  return LOG_PREFIX + String(index).padStart(16, '0');
}

export type DiskOp =
  | { op: 'put'; key: string; value: Uint8Array }
  | { op: 'del'; key: string }
  /** Every key with `prefix` up to and including `lastKey` (LevelDB's range clear). */
  | { op: 'clear'; prefix: string; lastKey: string };

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });
const OP_CODE = { put: 1, del: 2, clear: 3 } as const;

/** [count u32] then per op [code u8][len u32][key][len u32][value] …, then [crc32 u32]. */
export function encodeBatch(ops: readonly DiskOp[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 4 + 4;
  for (const o of ops) {
    const a = utf8.encode(o.op === 'clear' ? o.prefix : o.key);
    const b =
      o.op === 'put' ? o.value : o.op === 'clear' ? utf8.encode(o.lastKey) : new Uint8Array();
    parts.push(a, b);
    size += 1 + 4 + a.byteLength + 4 + b.byteLength;
  }
  const buf = new Uint8Array(size);
  const view = new DataView(buf.buffer);
  view.setUint32(0, ops.length);
  let pos = 4;
  ops.forEach((o, i) => {
    buf[pos++] = OP_CODE[o.op];
    for (const part of [parts[2 * i]!, parts[2 * i + 1]!]) {
      view.setUint32(pos, part.byteLength);
      buf.set(part, pos + 4);
      pos += 4 + part.byteLength;
    }
  });
  view.setUint32(pos, crc32(buf, pos));
  return buf;
}

/** The ops of a batch record, or undefined when it is torn or damaged (checksum mismatch). */
export function decodeBatch(buf: Uint8Array): DiskOp[] | undefined {
  if (buf.byteLength < 8) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const end = buf.byteLength - 4;
  if (view.getUint32(end) !== crc32(buf, end)) return undefined;
  const count = view.getUint32(0);
  const ops: DiskOp[] = [];
  let pos = 4;
  const chunk = (): Uint8Array => {
    const len = view.getUint32(pos);
    const out = buf.slice(pos + 4, pos + 4 + len);
    pos += 4 + len;
    return out;
  };
  for (let i = 0; i < count; i++) {
    const code = buf[pos++];
    const key = fromUtf8.decode(chunk());
    const value = chunk();
    if (code === OP_CODE.put) ops.push({ op: 'put', key, value });
    else if (code === OP_CODE.del) ops.push({ op: 'del', key });
    else ops.push({ op: 'clear', prefix: key, lastKey: fromUtf8.decode(value) });
  }
  return pos === end ? ops : undefined;
}

function applyOps(state: Map<string, Uint8Array>, ops: readonly DiskOp[]): void {
  for (const o of ops) {
    if (o.op === 'put') state.set(o.key, o.value);
    else if (o.op === 'del') state.delete(o.key);
    else {
      for (const key of [...state.keys()]) {
        if (key.startsWith(o.prefix) && key <= o.lastKey) state.delete(key);
      }
    }
  }
}

export type CrashKind = 'process' | 'power';

export interface DiskLatency {
  /** A write reaches the page cache after [minMs, maxMs] of true time… */
  minMs: number;
  maxMs: number;
  /** …and a synced one takes this much longer (the fsync). */
  syncMs: number;
}

export interface DiskStats {
  batches: number;
  syncs: number;
  /** Unsynced batches lost to power losses (torn ones included). */
  lostBatches: number;
  /** Batches torn by a power loss, detected by their checksum and dropped. */
  tornBatches: number;
  failedWrites: number;
  failedSyncs: number;
  corruptions: number;
}

/** What a failed write tells the world: the node must not acknowledge anything after it. */
export interface DiskFault {
  kind: 'write' | 'sync';
  /** Log indexes in the failed batch. */
  entries: number[];
  trueMs: number;
}

/** The hardware: survives crashes of the process that uses it. */
export class SimDisk {
  /** What survives a power loss. */
  private durable = new Map<string, Uint8Array>();
  /** The page cache: durable state plus every unsynced batch. */
  private cache = new Map<string, Uint8Array>();
  /** Unsynced batch records, oldest first. */
  private unsynced: Uint8Array[] = [];
  /** Bumped by each crash: writes of an older process are ignored. */
  private incarnation = 0;
  private armed: { write: boolean; sync: boolean } = { write: false, sync: false };
  private readonly corruptOnRead = new Set<number>();
  readonly stats: DiskStats = {
    batches: 0,
    syncs: 0,
    lostBatches: 0,
    tornBatches: 0,
    failedWrites: 0,
    failedSyncs: 0,
    corruptions: 0,
  };
  /** Called when an armed fault fires. */
  onFault: ((fault: DiskFault) => void) | undefined;

  constructor(
    readonly name: string,
    private readonly rng: SeededRandom,
    public latency: DiskLatency = { minMs: 0, maxMs: 2, syncMs: 2 },
  ) {}

  /** A founding member's disk: the bootstrap snapshot (index 1, term 1), as initialize() writes it. */
  static founding(
    name: string,
    voters: string[],
    rng: SeededRandom,
    latency?: DiskLatency,
    members: readonly MemberRecord[] = [],
  ): SimDisk {
    const disk = new SimDisk(name, rng, latency);
    disk.initialize(bootstrapSnapshot(voters).metadata);
    if (members.length > 0) {
      const ops: DiskOp[] = members.map((m) => ({
        op: 'put',
        key: MEMBER_PREFIX + m.id,
        value: encodeMember(m),
      }));
      disk.commit(encodeBatch(ops), true);
    }
    return disk;
  }

  /** A joining member's disk: empty; the leader sends it a snapshot. */
  static joining(name: string, rng: SeededRandom, latency?: DiskLatency): SimDisk {
    const disk = new SimDisk(name, rng, latency);
    disk.initialize({ index: 0, term: 0, confState: { voters: [], learners: [] } });
    return disk;
  }

  private initialize(meta: SnapshotMetadata): void {
    const ops: DiskOp[] = [
      {
        op: 'put',
        key: KEY.hardState,
        value: encodeHardState({ term: meta.term, vote: NONE, commit: meta.index }),
      },
      { op: 'put', key: KEY.confState, value: encodeConfState(meta.confState) },
      { op: 'put', key: KEY.snapshot, value: encodeSnapshotMetadata(meta) },
      {
        op: 'put',
        key: KEY.logStart,
        value: encodeLogPosition({ index: meta.index, term: meta.term }),
      },
      { op: 'put', key: KEY.applied, value: encodeIndex(meta.index) },
    ];
    this.commit(encodeBatch(ops), true);
  }

  /** Clears armed faults (the liveness phase: the faults are over). */
  disarm(): void {
    this.armed = { write: false, sync: false };
  }

  /** Arms a fault for the next write (any) or the next synced write. */
  arm(kind: 'write' | 'sync'): void {
    this.armed[kind] = true;
  }

  /** The process is gone (SIGKILL) or the machine lost power. */
  crash(kind: CrashKind): void {
    this.incarnation++;
    this.corruptOnRead.clear();
    this.armed = { write: false, sync: false };
    if (kind === 'process') return;
    const keep = this.rng.nextInt(this.unsynced.length + 1);
    const kept = this.unsynced.slice(0, keep);
    this.stats.lostBatches += this.unsynced.length - keep;
    if (kept.length > 0 && this.rng.nextFloat() < 0.5) {
      // The last batch kept was being written when the power went: a prefix of its bytes.
      const last = kept[kept.length - 1]!;
      kept[kept.length - 1] = last.slice(0, this.rng.nextInt(last.byteLength));
    }
    for (const record of kept) {
      const ops = decodeBatch(record);
      if (!ops) {
        // LevelDB's WAL replay drops a record whose checksum fails, and what follows it.
        this.stats.tornBatches++;
        this.stats.lostBatches++;
        break;
      }
      applyOps(this.durable, ops);
    }
    this.unsynced = [];
    this.cache = new Map(this.durable);
    this.durableView = undefined;
  }

  /** Flips a byte of the stored log entry at `index` (page cache and platter); false if absent. */
  corruptEntry(index: number, options: { whenRead?: boolean } = {}): boolean {
    const key = logKey(index);
    const bytes = this.cache.get(key);
    if (!bytes) return false;
    const damaged = flipByte(bytes, this.rng);
    this.cache.set(key, damaged);
    // The checkers still know what was synced there (the damage came after the sync).
    const term = decodeEntry(index, bytes).term;
    termOfRecord.set(damaged, term);
    const synced = this.durable.get(key);
    if (synced) {
      const damagedSynced = flipByte(synced, this.rng);
      termOfRecord.set(damagedSynced, decodeEntry(index, synced).term);
      this.durable.set(key, damagedSynced);
    }
    this.durableView = undefined;
    // Unsynced batches still carry the good bytes: once durable they would heal the entry.
    this.unsynced = this.unsynced.map((record) => {
      const ops = decodeBatch(record);
      if (!ops?.some((o) => o.op === 'put' && o.key === key)) return record;
      return encodeBatch(
        ops.map((o) => (o.op === 'put' && o.key === key ? { ...o, value: damaged } : o)),
      );
    });
    if (options.whenRead) this.corruptOnRead.add(index);
    this.stats.corruptions++;
    return true;
  }

  /** The synced log (what survives a power loss), for the checker's commit-durability check. */
  durableLog(): DurableLog {
    if (!this.durableView) {
      const startBytes = this.durable.get(KEY.logStart);
      const start = startBytes ? decodeLogPosition(startBytes) : { index: 0, term: 0 };
      const terms = new Map<number, number>([[start.index, start.term]]);
      let last = start.index;
      for (;;) {
        const bytes = this.durable.get(logKey(last + 1));
        if (!bytes) break;
        let term = termOfRecord.get(bytes);
        if (term === undefined) {
          try {
            term = decodeEntry(last + 1, bytes).term;
          } catch {
            break; // damaged: the node will not load past it
          }
          termOfRecord.set(bytes, term);
        }
        terms.set(++last, term);
      }
      this.durableView = {
        firstIndex: () => start.index + 1,
        lastIndex: () => last,
        term: (i) => terms.get(i),
      };
    }
    return this.durableView;
  }

  private durableView: DurableLog | undefined;

  /** Log indexes stored in the page cache (what a corruption may hit). */
  storedLogIndexes(): number[] {
    const out: number[] = [];
    for (const key of this.cache.keys()) {
      if (key.startsWith(LOG_PREFIX)) out.push(Number(key.slice(LOG_PREFIX.length)));
    }
    return out.sort((a, b) => a - b);
  }

  /** Opens the disk for a new process, as LevelRaftStorage.open does. Throws StorageError. */
  open(clock: NodeClock): SimStorage {
    const storage = new SimStorage(this, this.incarnation, clock, load(this.name, this.cache));
    // LevelDB's open replays its write-ahead log into a new table and syncs it: what the
    // page cache held (a failed fsync's batch too) is durable from here on.
    if (this.unsynced.length > 0) {
      for (const r of this.unsynced) applyOps(this.durable, decodeBatch(r)!);
      this.unsynced = [];
      this.durableView = undefined;
    }
    return storage;
  }

  /** Sum of record sizes in the page cache. */
  sizeBytes(): number {
    let total = 0;
    for (const [k, v] of this.cache) total += k.length + v.byteLength;
    return total;
  }

  /** The kv records as the page cache holds them, sorted by key. */
  kvRecords(): [string, Uint8Array][] {
    const out: [string, Uint8Array][] = [];
    for (const [k, v] of this.cache)
      if (k.startsWith(KV_PREFIX)) out.push([k.slice(KV_PREFIX.length), v]);
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  // ------------------------------------------------------------ used by SimStorage

  isCurrent(incarnation: number): boolean {
    return incarnation === this.incarnation;
  }

  draw(min: number, max: number): number {
    return min + this.rng.nextFloat() * Math.max(0, max - min);
  }

  /** Whether an armed fault fires for this write; disarms it. */
  takeFault(sync: boolean): 'write' | 'sync' | undefined {
    if (this.armed.write) {
      this.armed.write = false;
      this.stats.failedWrites++;
      return 'write';
    }
    if (sync && this.armed.sync) {
      this.armed.sync = false;
      this.stats.failedSyncs++;
      return 'sync';
    }
    return undefined;
  }

  readCorrupts(index: number): boolean {
    return !this.inspectingNow && this.corruptOnRead.has(index);
  }

  private inspectingNow = false;

  /** Runs `fn` with read faults off: the world's checkers read logs, the node does not. */
  inspecting<T>(fn: () => T): T {
    const was = this.inspectingNow;
    this.inspectingNow = true;
    try {
      return fn();
    } finally {
      this.inspectingNow = was;
    }
  }

  /** The batch reaches the page cache; synced, it and every earlier batch are durable. */
  commit(record: Uint8Array, sync: boolean): void {
    const ops = decodeBatch(record);
    assert(ops !== undefined, 'a batch written whole decodes');
    this.stats.batches++;
    applyOps(this.cache, ops);
    this.unsynced.push(record);
    if (sync) {
      this.stats.syncs++;
      for (const r of this.unsynced) applyOps(this.durable, decodeBatch(r)!);
      this.unsynced = [];
      this.durableView = undefined;
    }
  }

  /** A failed fsync: the batch is in the page cache, and nothing new became durable. */
  commitUnsynced(record: Uint8Array): void {
    applyOps(this.cache, decodeBatch(record)!);
    this.unsynced.push(record);
  }
}

/** Terms of decoded entry records, by record (records are never mutated). */
const termOfRecord = new WeakMap<Uint8Array, number>();

function flipByte(bytes: Uint8Array, rng: SeededRandom): Uint8Array {
  const out = new Uint8Array(bytes);
  // Byte 0 is the record's version byte: flipping it is detected by any codec. With a
  // checksummed codec any byte is detected, so pick one at random then.
  const pos = codecDetectsAnyFlip ? rng.nextInt(out.byteLength) : 0;
  out[pos] = out[pos]! ^ 0xff;
  return out;
}

/** Whether the real codec checksums entries (storage-faults adds it): then any flipped byte is caught. */
const codecDetectsAnyFlip = (() => {
  const bytes = encodeEntry({ index: 7, term: 3, type: 'normal', data: utf8.encode('payload') });
  bytes[bytes.byteLength - 1] = bytes[bytes.byteLength - 1]! ^ 0xff;
  try {
    decodeEntry(7, bytes);
    return false;
  } catch {
    return true;
  }
})();

interface Loaded {
  cache: LogCache;
  applied: number;
  members: Map<string, MemberRecord>;
  removed: Set<string>;
}

/** Decodes one record; any decoding failure is 'corrupt' naming it (as load.ts does). */
function decoded<T>(dir: string, what: string, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof StorageError) throw err;
    if (err instanceof DecodeError || err instanceof RangeError || err instanceof TypeError)
      throw corruptError(dir, `${what}: ${(err as Error).message}`, err);
    throw corruptError(dir, `${what}: ${String(err)}`, err);
  }
}

/** What LevelRaftStorage.open reads and checks (src/storage/load.ts), from the page cache. */
function load(dir: string, state: ReadonlyMap<string, Uint8Array>): Loaded {
  const record = <T>(key: string, decode: (b: Uint8Array) => T): T => {
    const bytes = state.get(key);
    if (bytes === undefined) throw corruptError(dir, `the record ${key} is missing`);
    return decoded(dir, `record ${key}`, () => decode(bytes));
  };
  const hs = record(KEY.hardState, decodeHardState);
  const confState = record(KEY.confState, decodeConfState);
  const snap = record(KEY.snapshot, decodeSnapshotMetadata);
  const start: LogPosition = record(KEY.logStart, decodeLogPosition);
  const applied = record(KEY.applied, decodeIndex);
  const indexes: number[] = [];
  for (const key of state.keys()) {
    if (key.startsWith(LOG_PREFIX)) indexes.push(Number(key.slice(LOG_PREFIX.length)));
  }
  indexes.sort((a, b) => a - b);
  const entries: Entry[] = [];
  let prevTerm = start.term;
  for (const index of indexes) {
    if (index <= start.index) continue; // left by a compaction cut short: not read
    const expected = start.index + entries.length + 1;
    if (index !== expected)
      throw corruptError(dir, `the log has a gap: entry ${expected} is missing, next is ${index}`);
    const e = decoded(dir, `log entry ${index}`, () =>
      decodeEntry(index, state.get(logKey(index))!),
    );
    if (e.term < prevTerm)
      throw corruptError(dir, `log entry ${index} has term ${e.term} below ${prevTerm}`);
    prevTerm = e.term;
    entries.push(e);
  }
  const lastIndex = start.index + entries.length;
  const termAt = (i: number) =>
    i === start.index ? start.term : entries[i - start.index - 1]!.term;
  if (snap.index < start.index || snap.index > lastIndex)
    throw corruptError(
      dir,
      `snapshot index ${snap.index} is outside the log [${start.index}, ${lastIndex}]`,
    );
  if (snap.term !== termAt(snap.index))
    throw corruptError(dir, `snapshot term ${snap.term} differs from the log's at ${snap.index}`);
  if (hs.commit > lastIndex)
    throw corruptError(
      dir,
      `hard state commit ${hs.commit} is beyond the last log index ${lastIndex}`,
    );
  if (applied > hs.commit)
    throw corruptError(dir, `applied index ${applied} is beyond the commit index ${hs.commit}`);
  if (applied < snap.index)
    throw corruptError(
      dir,
      `the applied index ${applied} is behind the snapshot index ${snap.index}`,
    );
  const members = new Map<string, MemberRecord>();
  const removed = new Set<string>();
  for (const [key, bytes] of state) {
    if (key.startsWith(MEMBER_PREFIX)) {
      const id = key.slice(MEMBER_PREFIX.length);
      members.set(
        id,
        decoded(dir, `member record ${id}`, () => decodeMember(id, bytes)),
      );
    }
  }
  const removedBytes = state.get(KEY.removed);
  if (removedBytes)
    for (const id of decoded(dir, 'removed members', () => decodeRemovedMembers(removedBytes)))
      removed.add(id);
  return {
    cache: LogCache.restore(start, entries, snap, hs, confState),
    applied,
    members,
    removed,
  };
}

/**
 * One process's handle on a SimDisk: the CoreStorage the node core runs on.
 * Like LevelRaftStorage it serves reads from an in-memory cache filled at
 * open and changed only after a write completes; writes run one at a time in
 * call order, each one batch, completing after a drawn latency of true time.
 */
export class SimStorage implements CoreStorage {
  private readonly cache: LogCache;
  private applied: number;
  private memberRecords: Map<string, MemberRecord>;
  private removedIds: Set<string>;
  private writeTail: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Told each hard state once it is written and synced (the checker's commit monotonicity). */
  onHardState: ((hs: HardState) => void) | undefined;

  constructor(
    private readonly disk: SimDisk,
    private readonly incarnation: number,
    private readonly clock: NodeClock,
    loaded: Loaded,
  ) {
    this.cache = loaded.cache;
    this.applied = loaded.applied;
    this.memberRecords = loaded.members;
    this.removedIds = loaded.removed;
  }

  // Raft's read side: the cache, as LevelRaftStorage serves it.

  initialState(): InitialState {
    return this.cache.initialState();
  }

  entries(lo: number, hi: number, maxSizeBytes?: number): Entry[] {
    const ents = this.cache.entries(lo, hi, maxSizeBytes);
    for (const e of ents) {
      // A storage that reads the log from disk at run time finds the damage here.
      if (this.disk.readCorrupts(e.index))
        throw corruptError(this.disk.name, `log entry ${e.index}: checksum mismatch on read`);
    }
    return ents;
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

  snapshot(): Snapshot {
    return this.cache.snapshot();
  }

  appliedIndex(): number {
    return this.applied;
  }

  /** The hard state as written (for the world's checks). */
  hardState(): HardState {
    return { ...this.cache.hardState };
  }

  members(): MemberRecord[] {
    return [...this.memberRecords.values()]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map(cloneMember);
  }

  removedMembers(): string[] {
    return [...this.removedIds].sort();
  }

  kvRecords(): [string, Uint8Array][] {
    return this.disk.kvRecords();
  }

  // Writes: the same batches and checks as LevelRaftStorage.

  persistReady(
    rd: PersistableReady,
    sync: boolean,
    extra: {
      installRecords?: Iterable<readonly [string, Uint8Array]>;
      applied?: AppliedWrite;
    } = {},
  ): Promise<void> {
    const { installRecords, applied } = extra;
    return this.serialize(async () => {
      const snap = rd.snapshot?.metadata;
      if (snap && snap.index <= this.cache.snapshot().metadata.index)
        throw new RaftError('snapshot_out_of_date', 'snapshot is older than the current one');
      const oldFirst = this.cache.firstIndex();
      const oldLast = this.cache.lastIndex();
      const logEnd = snap ? snap.index : oldLast;
      const ents = entriesAfter(rd.entries, snap ? snap.index : oldFirst - 1);
      const newLast = ents.length > 0 ? ents[ents.length - 1]!.index : logEnd;
      if (ents.length > 0)
        assert(
          ents[0]!.index <= logEnd + 1,
          `gap appending at ${ents[0]!.index}, lastIndex ${logEnd}`,
        );
      const hs = rd.hardState;
      if (hs)
        assert(hs.commit <= newLast, `hard state commit ${hs.commit} beyond lastIndex ${newLast}`);
      if (applied) {
        assert(!snap, 'applied state goes with a snapshot through installRecords');
        this.checkApplied(applied.appliedIndex, hs?.commit ?? this.cache.hardState.commit);
      }
      if (!snap && ents.length === 0 && !hs && !applied) return;
      const ops: DiskOp[] = [];
      for (let i = snap ? oldFirst : newLast + 1; i <= oldLast; i++)
        ops.push({ op: 'del', key: logKey(i) });
      if (snap) {
        ops.push({ op: 'put', key: KEY.snapshot, value: encodeSnapshotMetadata(snap) });
        ops.push({
          op: 'put',
          key: KEY.logStart,
          value: encodeLogPosition({ index: snap.index, term: snap.term }),
        });
        ops.push({ op: 'put', key: KEY.confState, value: encodeConfState(snap.confState) });
      }
      for (const e of ents) ops.push({ op: 'put', key: logKey(e.index), value: encodeEntry(e) });
      if (hs) ops.push({ op: 'put', key: KEY.hardState, value: encodeHardState(hs) });
      const install = snap && installRecords;
      if (install) {
        for (const [key] of this.disk.kvRecords()) ops.push({ op: 'del', key: KV_PREFIX + key });
        for (const [key, value] of installRecords)
          ops.push({ op: 'put', key: KV_PREFIX + key, value });
        ops.push({ op: 'put', key: KEY.applied, value: encodeIndex(snap.index) });
      }
      if (applied) addApplied(ops, applied);
      await this.write(
        ops,
        sync || Boolean(install),
        'persisting log entries and hard state',
        ents,
      );
      if (install) this.applied = snap.index;
      if (snap) this.cache.applySnapshot(snap);
      if (ents.length > 0) this.cache.append(ents);
      if (hs) {
        this.cache.setHardState(hs);
        // Only a synced hard state is sure to survive a power loss (commit-only ones are not synced).
        if (sync || install) this.onHardState?.(hs);
      }
      if (applied) {
        this.applied = applied.appliedIndex;
        if (applied.confState) this.cache.setConfState(applied.confState);
      }
    });
  }

  compact(index: number, term: number, confState: ConfState, keepEntries: number): Promise<void> {
    return this.serialize(async () => {
      if (index <= this.cache.snapshot().metadata.index)
        throw new RaftError('snapshot_out_of_date', 'snapshot is older than the current one');
      assert(index <= this.applied, `snapshot index ${index} beyond applied index ${this.applied}`);
      const actual = this.cache.term(index);
      assert(actual === term, `snapshot term ${term} but entry ${index} has term ${actual}`);
      const offset = this.cache.firstIndex() - 1;
      const compactIndex = index - keepEntries;
      const meta: SnapshotMetadata = { index, term, confState: cloneConfState(confState) };
      const ops: DiskOp[] = [{ op: 'put', key: KEY.snapshot, value: encodeSnapshotMetadata(meta) }];
      if (compactIndex > offset) {
        const start = { index: compactIndex, term: this.cache.term(compactIndex) };
        ops.push({ op: 'put', key: KEY.logStart, value: encodeLogPosition(start) });
      }
      // Not synced, as LevelRaftStorage: losing it only keeps more log.
      await this.write(ops, false, 'compacting the log', []);
      if (compactIndex > offset) {
        // Then the entries, in a second write (LevelDB's range clear); a crash between leaves
        // entries below the log start, which open() skips.
        await this.write(
          [{ op: 'clear', prefix: LOG_PREFIX, lastKey: logKey(compactIndex) }],
          false,
          'compacting the log',
          [],
        );
      }
      this.cache.createSnapshot(index, meta.confState);
      if (compactIndex > offset) this.cache.compact(compactIndex);
    });
  }

  saveMembers(records: readonly MemberRecord[], removed?: readonly string[]): Promise<void> {
    return this.serialize(async () => {
      const next = new Map(records.map((m) => [m.id, cloneMember(m)]));
      const ops: DiskOp[] = [];
      for (const id of this.memberRecords.keys())
        if (!next.has(id)) ops.push({ op: 'del', key: MEMBER_PREFIX + id });
      for (const m of next.values())
        ops.push({ op: 'put', key: MEMBER_PREFIX + m.id, value: encodeMember(m) });
      if (removed) ops.push({ op: 'put', key: KEY.removed, value: encodeRemovedMembers(removed) });
      await this.write(ops, true, 'saving member records', []);
      this.memberRecords = next;
      if (removed) this.removedIds = new Set(removed);
    });
  }

  async sizeBytes(): Promise<number> {
    return this.disk.sizeBytes();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writeTail.catch(() => undefined);
  }

  private checkApplied(appliedIndex: number, commit: number): void {
    assert(appliedIndex <= commit, `applied index ${appliedIndex} beyond commit ${commit}`);
    assert(appliedIndex >= this.applied, `applied index ${appliedIndex} is behind ${this.applied}`);
  }

  private serialize<T>(write: () => Promise<T>): Promise<T> {
    if (this.closed)
      return Promise.reject(new RaftError('invariant', 'storage used after close()'));
    const run = this.writeTail.then(write, write);
    this.writeTail = run.catch(() => undefined);
    return run;
  }

  /** One batch: completes after the drawn latency, in this process (held while it is paused). */
  private async write(
    ops: DiskOp[],
    sync: boolean,
    doing: string,
    ents: readonly Entry[],
  ): Promise<void> {
    const { latency } = this.disk;
    const delay = this.disk.draw(latency.minMs, latency.maxMs) + (sync ? latency.syncMs : 0);
    await new Promise<void>((resolve) => this.clock.afterTrue(delay, resolve));
    // A crashed process's write never completes (its callbacks were dropped); this guards the rest.
    if (!this.disk.isCurrent(this.incarnation)) return new Promise<void>(() => {});
    const record = encodeBatch(ops);
    const fault = this.disk.takeFault(sync);
    if (fault) {
      if (fault === 'sync') this.disk.commitUnsynced(record);
      this.disk.onFault?.({
        kind: fault,
        entries: ents.map((e) => e.index),
        trueMs: this.clock.trueNow(),
      });
      const err = Object.assign(new Error(fault === 'sync' ? 'fsync: EIO' : 'write: EIO'), {
        code: 'EIO',
      });
      throw ioError(this.disk.name, doing, err);
    }
    this.disk.commit(record, sync);
  }
}

function addApplied(ops: DiskOp[], applied: AppliedWrite): void {
  for (const m of applied.kvMutations) {
    if (m.type === 'put') ops.push({ op: 'put', key: KV_PREFIX + m.key, value: m.value });
    else ops.push({ op: 'del', key: KV_PREFIX + m.key });
  }
  ops.push({ op: 'put', key: KEY.applied, value: encodeIndex(applied.appliedIndex) });
  if (applied.confState)
    ops.push({ op: 'put', key: KEY.confState, value: encodeConfState(applied.confState) });
}

function entriesAfter(entries: readonly Entry[], offset: number): readonly Entry[] {
  for (let i = 1; i < entries.length; i++)
    assert(
      entries[i]!.index === entries[i - 1]!.index + 1,
      'entries to persist are not contiguous',
    );
  if (entries.length === 0 || entries[entries.length - 1]!.index <= offset) return [];
  const first = entries[0]!.index;
  return first > offset ? entries : entries.slice(offset + 1 - first);
}
