/**
 * Opening a data dir: deciding whether it is new, ours, foreign or damaged
 * before LevelDB writes anything, then reading and cross-checking every
 * record the storage keeps in memory. Each problem becomes a StorageError
 * that names the record; nothing here ever starts empty on a dir with content.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { Level } from 'level';
import type { ConfState, Entry, HardState, SnapshotMetadata } from '../raft/index.js';
import {
  type CreatedWith,
  DecodeError,
  type DecodeOptions,
  decodeConfState,
  decodeCreatedWith,
  decodeEntry,
  decodeHardState,
  decodeIndex,
  decodeKvResealedThrough,
  decodeLogPosition,
  decodeMember,
  decodeRemovedMembers,
  decodeSnapshotMetadata,
  decodeText,
  encodeConfState,
  encodeEntry,
  encodeHardState,
  encodeIndex,
  encodeKvResealedThrough,
  encodeLogPosition,
  encodeSnapshotMetadata,
  encodeText,
  type LogPosition,
  type MemberRecord,
  sealKvValue,
} from './codec.js';
import {
  corruptError,
  errorDetail,
  foreignError,
  formatTooNewError,
  installIncompleteError,
  ioError,
  lockedError,
  type StorageError,
} from './errors.js';
import { encodeLogKey, META_KEY, maybeDecodeLogKey, RAFT_KEY, SUBLEVEL } from './keys.js';
import { LogCache } from './log-cache.js';
import { SublevelKeys } from './sublevel-keys.js';

/**
 * The on-disk format this binary writes, and the newest it reads. Format 2
 * sealed the Raft records with a checksum (codec.ts); format 3 seals the kv
 * sublevel's records too. open() upgrades a dir of format 1 or 2 in place
 * (upgradeInPlace).
 */
export const FORMAT_VERSION = 3;

/** How open() upgrades an older data dir. */
export interface UpgradeOptions {
  /** Bytes of kv records re-sealed per synced batch (default 4 MiB). */
  kvResealBatchMaxBytes?: number;
  /**
   * Called after each synced batch of the re-sealing, with the number of
   * records sealed by this open so far. Tests throw here to stop the upgrade
   * half way, as a crash would.
   */
  onKvResealBatch?: (resealedRecords: number) => void;
}

const DEFAULT_KV_RESEAL_BATCH_MAX_BYTES = 4 * 1024 * 1024;

/** Who this data dir belongs to; written once by initialize(). */
export interface StorageIdentity {
  formatVersion: number;
  clusterId: string;
  nodeId: string;
  nodeName: string;
  /** ISO 8601, when initialize() ran. */
  createdAt: string;
  /**
   * The members the data dir was created with, name → peer URL: the founders,
   * or the members named when it joined. Absent in data dirs made before it was recorded.
   */
  createdWith?: CreatedWith;
}

export type Db = Level<Uint8Array, Uint8Array>;

export function openSublevels(db: Db) {
  const view = { keyEncoding: 'view', valueEncoding: 'view' } as const;
  const text = { keyEncoding: 'utf8', valueEncoding: 'view' } as const;
  return {
    log: db.sublevel<Uint8Array, Uint8Array>(SUBLEVEL.log, view),
    raft: db.sublevel<string, Uint8Array>(SUBLEVEL.raft, text),
    meta: db.sublevel<string, Uint8Array>(SUBLEVEL.meta, text),
    members: db.sublevel<string, Uint8Array>(SUBLEVEL.members, text),
    kv: db.sublevel<string, Uint8Array>(SUBLEVEL.kv, text),
  };
}

export type Sublevels = ReturnType<typeof openSublevels>;

/** What open() read from disk, validated. */
export interface LoadedState {
  identity: StorageIdentity | undefined;
  cache: LogCache;
  appliedIndex: number;
  members: Map<string, MemberRecord>;
  removedMembers: Set<string>;
}

/**
 * LevelDB's block cache (default 8 MB). Everything the node reads is kept in
 * memory (log cache, KV state) and read from disk only by whole-sublevel scans
 * at startup or a snapshot install, which a cache does not speed up; it would
 * only keep the last 8 MB of scanned blocks resident. The write buffer keeps
 * its default (4 MB): it is what batches writes into sorted tables.
 */
const BLOCK_CACHE_BYTES = 1024 * 1024;

/** Opens (or creates, if the dir is missing or empty) the node's database at an absolute path. */
export async function openDatabase(dir: string): Promise<Db> {
  const createIfMissing = await inspectDataDir(dir);
  const db: Db = new Level<Uint8Array, Uint8Array>(dir, {
    keyEncoding: 'view',
    valueEncoding: 'view',
    createIfMissing,
    cacheSize: BLOCK_CACHE_BYTES,
  });
  try {
    await db.open({ createIfMissing });
  } catch (err) {
    throw openError(dir, err);
  }
  return db;
}

// LevelDB's own files; anything else in a directory without CURRENT is not ours.
const LEVELDB_FILE = /^(CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.(log|ldb|sst|dbtmp))$/;
const LEVELDB_DATA_FILE = /^\d+\.(log|ldb|sst)$/;
// A mount point's lost+found is not content.
const IGNORED_FILES = new Set(['lost+found']);

/**
 * Decides how to open the directory, before LevelDB writes anything into it.
 * Returns whether LevelDB may create a new database there.
 */
async function inspectDataDir(dir: string): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw foreignError(dir, 'it is a file, not a directory');
    if (code !== 'ENOENT') throw ioError(dir, 'listing the directory', err);
    try {
      await mkdir(dir, { recursive: true });
    } catch (mkdirErr) {
      throw ioError(dir, 'creating the directory', mkdirErr);
    }
    return true;
  }
  const present = names.filter((n) => !IGNORED_FILES.has(n));
  if (present.includes('CURRENT')) return false;
  const others = present.filter((n) => !LEVELDB_FILE.test(n));
  if (others.length > 0) {
    const shown = others.sort().slice(0, 3).join(', ');
    const more = others.length > 3 ? ` and ${others.length - 3} more` : '';
    throw foreignError(dir, `it holds ${shown}${more} and no LevelDB database`);
  }
  // Creating a database over orphaned tables could make LevelDB discard them as obsolete.
  if (present.some((n) => LEVELDB_DATA_FILE.test(n))) {
    throw corruptError(dir, 'LevelDB files are present but the CURRENT file is missing');
  }
  // Empty, or only what a first start that stopped while LevelDB created its files leaves.
  return true;
}

function openError(dir: string, err: unknown): StorageError {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const code = (cause as { code?: unknown } | undefined)?.code;
  const detail = errorDetail(err);
  if (code === 'LEVEL_LOCKED') return lockedError(dir, err);
  if (code === 'LEVEL_CORRUPTION') return corruptError(dir, `LevelDB: ${detail}`, err);
  // A file LevelDB's own records name (the manifest CURRENT points at, a table the
  // manifest lists) is missing: an IO error to LevelDB, but the database is damaged.
  if (code === 'LEVEL_IO_ERROR' && /MANIFEST|CURRENT|No such file or directory/.test(detail)) {
    return corruptError(dir, `LevelDB: ${detail}`, err);
  }
  return ioError(dir, 'opening the database', err);
}

/** Decodes one record; a DecodeError becomes 'corrupt' naming the record. */
function decodeRecord<T>(dir: string, what: string, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof DecodeError) throw corruptError(dir, `${what}: ${err.message}`, err);
    throw err;
  }
}

async function requiredRecord<T>(
  dir: string,
  level: Sublevels['raft'],
  name: string,
  key: string,
  decode: (bytes: Uint8Array) => T,
): Promise<T> {
  const bytes = await level.get(key);
  if (bytes === undefined) throw corruptError(dir, `the ${name} record ${key} is missing`);
  return decodeRecord(dir, `sublevel ${name}, record ${key}`, () => decode(bytes));
}

/** Reads and validates everything the storage keeps in memory, upgrading an older dir first. */
export async function loadState(
  dir: string,
  db: Db,
  sub: Sublevels,
  upgrade: UpgradeOptions = {},
): Promise<LoadedState> {
  const identity = await readIdentity(dir, db, sub);
  if (identity === undefined) {
    return {
      identity,
      cache: new LogCache(),
      appliedIndex: 0,
      members: new Map(),
      removedMembers: new Set(),
    };
  }
  // Format 1 wrote the Raft records unsealed; format 2 only sealed (a version byte flipped to 1
  // must not pass as an unchecked record).
  const opts: DecodeOptions = { legacy: identity.formatVersion < 2 };
  const installing = await sub.raft.get(RAFT_KEY.installing);
  if (installing !== undefined) {
    const at = decodeRecord(dir, 'sublevel raft, record installing', () =>
      decodeIndex(installing, opts, RAFT_KEY.installing),
    );
    throw installIncompleteError(dir, `the snapshot at index ${at} was written only in part`);
  }
  const raftRecord = <T>(key: string, decode: (bytes: Uint8Array, o: DecodeOptions) => T) =>
    requiredRecord(dir, sub.raft, 'raft', key, (bytes) => decode(bytes, opts));
  const hs = await raftRecord(RAFT_KEY.hardState, decodeHardState);
  const confState = await raftRecord(RAFT_KEY.confState, decodeConfState);
  const snap = await raftRecord(RAFT_KEY.snapshot, decodeSnapshotMetadata);
  const start = await raftRecord(RAFT_KEY.logStart, decodeLogPosition);
  const appliedIndex = await raftRecord(RAFT_KEY.applied, (b, o) => decodeIndex(b, o));
  const entries = await readLog(dir, sub, start, opts);
  checkConsistency(dir, { hs, snap, start, entries, appliedIndex });
  if (identity.formatVersion < FORMAT_VERSION) {
    const raft: RaftRecords = { hs, confState, snap, start, entries, appliedIndex };
    await upgradeInPlace(
      dir,
      db,
      sub,
      { from: 'start', resealRaft: opts.legacy ? raft : undefined },
      upgrade,
    );
    identity.formatVersion = FORMAT_VERSION;
  } else {
    const marker = await sub.meta.get(META_KEY.kvResealedThrough);
    if (marker !== undefined) {
      // An upgrade that stopped half way: the records up to `through` are sealed.
      const through = decodeRecord(dir, `sublevel meta, record ${META_KEY.kvResealedThrough}`, () =>
        decodeKvResealedThrough(marker),
      );
      await upgradeInPlace(dir, db, sub, { from: { through }, resealRaft: undefined }, upgrade);
    }
  }

  const members = new Map<string, MemberRecord>();
  for await (const [id, value] of sub.members.iterator()) {
    members.set(
      id,
      decodeRecord(dir, `member record ${id}`, () => decodeMember(id, value)),
    );
  }
  const removedBytes = await sub.meta.get(META_KEY.removedMembers);
  const removedMembers = new Set(
    removedBytes === undefined
      ? []
      : decodeRecord(dir, 'meta removedMembers', () => decodeRemovedMembers(removedBytes)),
  );
  return {
    identity,
    cache: LogCache.restore(start, entries, snap, hs, confState),
    appliedIndex,
    members,
    removedMembers,
  };
}

/** The identity, or undefined for a brand-new (entirely empty) database. */
export async function readIdentity(
  dir: string,
  db: Db,
  sub: Sublevels,
): Promise<StorageIdentity | undefined> {
  const formatBytes = await sub.meta.get(META_KEY.formatVersion);
  if (formatBytes === undefined) {
    for await (const _ of db.keys({ limit: 1 })) {
      throw foreignError(dir, 'it holds a LevelDB database without raftkv metadata');
    }
    return undefined;
  }
  const formatText = decodeRecord(dir, 'format version', () =>
    decodeText(formatBytes, 'format version'),
  );
  if (!/^[0-9]{1,9}$/.test(formatText) || Number(formatText) < 1) {
    throw corruptError(dir, `format version ${JSON.stringify(formatText)} is not a version number`);
  }
  const formatVersion = Number(formatText);
  if (formatVersion > FORMAT_VERSION) throw formatTooNewError(dir, formatVersion, FORMAT_VERSION);
  const text = (key: string) =>
    requiredRecord(dir, sub.meta, 'meta', key, (b) => decodeText(b, `meta ${key}`));
  const identity: StorageIdentity = {
    formatVersion,
    clusterId: await text(META_KEY.clusterId),
    nodeId: await text(META_KEY.nodeId),
    nodeName: await text(META_KEY.nodeName),
    createdAt: await text(META_KEY.createdAt),
  };
  const createdWith = await sub.meta.get(META_KEY.createdWith);
  if (createdWith !== undefined) {
    identity.createdWith = decodeRecord(dir, 'meta createdWith', () =>
      decodeCreatedWith(createdWith),
    );
  }
  return identity;
}

/**
 * The stored entries: contiguous from start.index + 1, terms never decreasing
 * (Raft §5.3). Entries at or below the start are left over from a compaction
 * that stopped between moving the start and deleting them: not read.
 */
async function readLog(
  dir: string,
  sub: Sublevels,
  start: LogPosition,
  opts: DecodeOptions,
): Promise<Entry[]> {
  const entries: Entry[] = [];
  let prevTerm = start.term;
  for await (const [key, value] of sub.log.iterator({ gt: encodeLogKey(start.index) })) {
    const index = maybeDecodeLogKey(key);
    if (index === undefined) throw corruptError(dir, `a log key is ${key.byteLength} bytes, not 8`);
    const expected = start.index + entries.length + 1;
    if (index < expected) {
      throw corruptError(dir, `log entry ${index} lies before the log start ${start.index + 1}`);
    }
    if (index > expected) {
      throw corruptError(dir, `the log has a gap: entry ${expected} is missing, next is ${index}`);
    }
    const entry = decodeRecord(dir, `sublevel log, entry ${index}`, () =>
      decodeEntry(index, value, opts),
    );
    if (entry.term < prevTerm) {
      throw corruptError(dir, `log entry ${index} has term ${entry.term} below ${prevTerm}`);
    }
    prevTerm = entry.term;
    entries.push(entry);
  }
  return entries;
}

/** The raft sublevel's records and the stored log, as loadState() read and validated them. */
interface RaftRecords {
  hs: HardState;
  confState: ConfState;
  snap: SnapshotMetadata;
  start: LogPosition;
  entries: Entry[];
  appliedIndex: number;
}

/**
 * Brings a dir of format 1 or 2 to format 3 (`from: 'start'`), or finishes
 * an upgrade that stopped after the kv key `through` (`from: { through }`):
 * 1. The first batch sets the format to 3 and writes the marker
 *    kvResealedThrough; for a format 1 dir it also rewrites the Raft records
 *    sealed (`resealRaft`, already validated). The log is bounded by
 *    compaction, so that part is at most a few MB.
 * 2. The kv records, bare before format 3, are re-sealed in key order in
 *    synced batches of about kvResealBatchMaxBytes (the state can be larger
 *    than one batch should be), each batch moving the marker to its last key.
 * 3. The last batch deletes the marker.
 * Why the format goes to 3 in the first batch rather than the last: a binary
 * of format 2 must refuse a half re-sealed dir ("format too new") instead of
 * taking its sealed records for bare ones. Why a marker rather than telling a
 * sealed record from a bare one by its bytes: a bare value may start with any
 * byte, so a guess could seal a record twice or leave one bare. Each batch is
 * atomic, so after a crash the marker names exactly the last sealed key and
 * the next open() resumes after it.
 */
async function upgradeInPlace(
  dir: string,
  db: Db,
  sub: Sublevels,
  s: { from: 'start' | { through: string | undefined }; resealRaft: RaftRecords | undefined },
  options: UpgradeOptions,
): Promise<void> {
  const doing = `upgrading the data dir to format ${FORMAT_VERSION}`;
  const maxBytes = options.kvResealBatchMaxBytes ?? DEFAULT_KV_RESEAL_BATCH_MAX_BYTES;
  const kvOpts = { sublevel: sub.kv };
  const meta = new SublevelKeys(sub.meta);
  let batch = db.batch();
  if (s.from === 'start') {
    const r = s.resealRaft;
    if (r) {
      const raft = new SublevelKeys(sub.raft);
      const log = new SublevelKeys(sub.log);
      batch.put(raft.ofText(RAFT_KEY.hardState), encodeHardState(r.hs));
      batch.put(raft.ofText(RAFT_KEY.confState), encodeConfState(r.confState));
      batch.put(raft.ofText(RAFT_KEY.snapshot), encodeSnapshotMetadata(r.snap));
      batch.put(raft.ofText(RAFT_KEY.logStart), encodeLogPosition(r.start));
      batch.put(raft.ofText(RAFT_KEY.applied), encodeIndex(r.appliedIndex));
      for (const e of r.entries) batch.put(log.ofBytes(encodeLogKey(e.index)), encodeEntry(e));
    }
    batch.put(meta.ofText(META_KEY.formatVersion), encodeText(String(FORMAT_VERSION)));
  }
  let through = s.from === 'start' ? undefined : s.from.through;
  let resealed = 0;
  let pendingBytes = 0;
  let batchOpen = true;
  const write = async (last: boolean): Promise<void> => {
    const markerKey = meta.ofText(META_KEY.kvResealedThrough);
    if (last) batch.del(markerKey);
    else batch.put(markerKey, encodeKvResealedThrough(through));
    batchOpen = false;
    try {
      await batch.write({ sync: true });
    } catch (err) {
      throw ioError(dir, doing, err);
    }
    options.onKvResealBatch?.(resealed);
  };
  // The iterator reads a snapshot of the sublevel: the batches written meanwhile do not disturb it.
  const bare = sub.kv.iterator(through === undefined ? {} : { gt: through });
  try {
    for (;;) {
      let record: [string, Uint8Array] | undefined;
      try {
        record = await bare.next();
      } catch (err) {
        throw ioError(dir, `${doing}: reading the kv records`, err);
      }
      if (record === undefined) break;
      const [key, value] = record;
      batch.put(key, sealKvValue(key, value), kvOpts);
      through = key;
      resealed++;
      pendingBytes += key.length + value.byteLength + RESEAL_OVERHEAD_BYTES;
      if (pendingBytes >= maxBytes) {
        await write(false);
        batch = db.batch();
        batchOpen = true;
        pendingBytes = 0;
      }
    }
    await write(true);
  } finally {
    if (batchOpen) await batch.close();
    await bare.close();
  }
}

/** Per-record bytes assumed, beyond key and value, when sizing the re-sealing's batches. */
const RESEAL_OVERHEAD_BYTES = 16;

/** The records must agree with each other, as the write path keeps them. */
function checkConsistency(
  dir: string,
  s: {
    hs: HardState;
    snap: SnapshotMetadata;
    start: LogPosition;
    entries: Entry[];
    appliedIndex: number;
  },
): void {
  const { hs, snap, start, entries, appliedIndex } = s;
  const lastIndex = start.index + entries.length;
  const termAt = (i: number) =>
    i === start.index ? start.term : entries[i - start.index - 1]!.term;
  if (start.index === 0 && start.term !== 0) {
    throw corruptError(dir, `the log start at index 0 has term ${start.term}`);
  }
  if (snap.index < start.index || snap.index > lastIndex) {
    throw corruptError(
      dir,
      `snapshot index ${snap.index} is outside the log [${start.index}, ${lastIndex}]`,
    );
  }
  if (snap.term !== termAt(snap.index)) {
    throw corruptError(
      dir,
      `snapshot term ${snap.term} differs from the log's term ${termAt(snap.index)} at ${snap.index}`,
    );
  }
  if (hs.commit > lastIndex) {
    throw corruptError(
      dir,
      `hard state commit ${hs.commit} is beyond the last log index ${lastIndex}`,
    );
  }
  if (appliedIndex > hs.commit) {
    throw corruptError(
      dir,
      `applied index ${appliedIndex} is beyond the commit index ${hs.commit}`,
    );
  }
  // compact() never passes the applied index, so only an unfinished install leaves it behind.
  if (appliedIndex < snap.index) {
    throw installIncompleteError(
      dir,
      `the applied index ${appliedIndex} is behind the snapshot index ${snap.index}`,
    );
  }
}
