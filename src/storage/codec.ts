/**
 * Value encodings of the records in keys.ts. Records written on every Ready
 * (entries, hard state, applied index) are compact binary with a leading
 * version byte; rarely written ones (membership, snapshot metadata, member
 * records) are JSON. Every decoder validates and throws DecodeError, which the
 * storage turns into StorageError 'corrupt' naming the record.
 *
 * The Raft records (log entries and everything in the raft sublevel) are
 * sealed: [version 2][CRC-32C, 4 bytes big-endian][body], the CRC taken over
 * the record's key and then its body, so a flipped bit, a torn value or a
 * value under the wrong key all fail the check. Data dirs of format 1 hold the
 * unsealed forms ([version 1][body] for binary records, bare JSON for the
 * membership and snapshot metadata); decoders read them only when told the
 * dir is of that format, and open() rewrites them sealed (load.ts).
 *
 * The kv sublevel's records (format 3) are sealed the same way, seeded with the
 * CRC of the key's UTF-8: [2][CRC][the state machine's bytes]. Formats 1 and 2
 * stored the state machine's bytes bare; open() re-seals them (load.ts).
 */
import type { ConfState, Entry, EntryType, HardState, SnapshotMetadata } from '../raft/index.js';
import { crc32c, crc32cOfIndex, crc32cOfText } from './crc32c.js';
import { corruptError, type StorageError } from './errors.js';
import { META_KEY, RAFT_KEY } from './keys.js';

/** The version byte of unsealed binary records (format 1 data dirs, and the applied index's body). */
export const RECORD_VERSION = 1;
/** The version byte of sealed records: a checksum follows it. */
export const SEALED_VERSION = 2;
const SEAL_HEADER_BYTES = 5;

/** Whether a decoder accepts the unsealed forms of a format 1 data dir. */
export interface DecodeOptions {
  legacy?: boolean;
}

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

const ENTRY_TYPE_CODE: Record<EntryType, number> = { normal: 0, confChange: 1 };
const ENTRY_TYPE_BY_CODE: readonly EntryType[] = ['normal', 'confChange'];

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

// Unsigned LEB128 up to 2^53 - 1: arithmetic rather than bit operations, which stop at 32 bits.
function varintSizeBytes(n: number): number {
  let sizeBytes = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) sizeBytes++;
  return sizeBytes;
}

function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  let v = n;
  let p = pos;
  while (v >= 0x80) {
    buf[p++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[p++] = v;
  return p;
}

function assertUint(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${what} ${n} is not a non-negative safe integer`);
  }
}

/** Reads a binary record front to back; every read is bounds-checked. */
class Reader {
  constructor(
    private readonly buf: Uint8Array,
    private pos = 0,
  ) {}

  byte(what: string): number {
    if (this.pos >= this.buf.byteLength) throw new DecodeError(`truncated before ${what}`);
    return this.buf[this.pos++]!;
  }

  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte(what);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) throw new DecodeError(`${what} is out of range`);
        return value;
      }
      scale *= 0x80;
    }
    throw new DecodeError(`${what} is out of range`);
  }

  /** The remaining bytes, copied so that the record does not pin LevelDB's read buffer. */
  rest(): Uint8Array {
    const out = new Uint8Array(this.buf.subarray(this.pos));
    this.pos = this.buf.byteLength;
    return out;
  }

  end(what: string): void {
    if (this.pos !== this.buf.byteLength) throw new DecodeError(`trailing bytes after ${what}`);
  }
}

/** Writes the seal header of `buf`, whose body starts at SEAL_HEADER_BYTES; `seed`: the key's CRC. */
function seal(buf: Uint8Array, seed: number): Uint8Array {
  const crc = crc32c(buf, seed, SEAL_HEADER_BYTES);
  buf[0] = SEALED_VERSION;
  buf[1] = crc >>> 24;
  buf[2] = (crc >>> 16) & 0xff;
  buf[3] = (crc >>> 8) & 0xff;
  buf[4] = crc & 0xff;
  return buf;
}

/** A Reader over the body of a sealed record, after checking its checksum. */
function unseal(bytes: Uint8Array, seed: number, what: string): Reader {
  if (bytes.byteLength < SEAL_HEADER_BYTES)
    throw new DecodeError(`truncated before ${what} checksum`);
  const stored = ((bytes[1]! << 24) | (bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!) >>> 0;
  const actual = crc32c(bytes, seed, SEAL_HEADER_BYTES);
  if (stored !== actual) {
    throw new DecodeError(
      `checksum mismatch (stored ${hex32(stored)}, computed ${hex32(actual)} over ${bytes.byteLength} bytes)`,
    );
  }
  return new Reader(bytes, SEAL_HEADER_BYTES);
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/**
 * The Reader of a record's body: a sealed record after its checksum is
 * checked; the unsealed form of format 1 (`legacy`: its version byte first,
 * or bare JSON) only when `opts.legacy` says the dir is of that format.
 */
function openRecord(
  bytes: Uint8Array,
  seed: () => number,
  what: string,
  opts: DecodeOptions,
  legacy: { version: number } | 'json',
): Reader {
  const first = bytes[0];
  if (first === SEALED_VERSION) return unseal(bytes, seed(), what);
  if (opts.legacy) {
    if (legacy === 'json') return new Reader(bytes);
    if (first === legacy.version) return new Reader(bytes, 1);
  }
  if (first === undefined) throw new DecodeError(`truncated before ${what} version`);
  // JSON records of format 1 start with '{'; say so rather than "version 123".
  const shown = legacy === 'json' && first === 0x7b ? 'unsealed JSON' : `version ${first}`;
  throw new DecodeError(`unknown ${what} ${shown}`);
}

/**
 * A kv sublevel record as stored: [2][CRC][value], the CRC over the key's
 * UTF-8 and then `value`, so a record under another key fails the check too.
 */
export function sealKvValue(key: string, value: Uint8Array): Uint8Array {
  // allocUnsafe slices a shared pool: every applied put passes here.
  const buf = Buffer.allocUnsafe(SEAL_HEADER_BYTES + value.byteLength);
  buf.set(value, SEAL_HEADER_BYTES);
  return seal(buf, crc32cOfText(key));
}

/** The value sealed under `key`, a view of `bytes` (no copy); throws DecodeError. */
export function unsealKvValue(key: string, bytes: Uint8Array): Uint8Array {
  const first = bytes[0];
  if (first === undefined) throw new DecodeError('truncated before record version');
  if (first !== SEALED_VERSION) throw new DecodeError(`unknown record version ${first}`);
  unseal(bytes, crc32cOfText(key), 'record');
  return new Uint8Array(
    bytes.buffer,
    bytes.byteOffset + SEAL_HEADER_BYTES,
    bytes.byteLength - SEAL_HEADER_BYTES,
  );
}

/**
 * A kv sublevel key as an error message shows it: quoted, escaped (keys are
 * the state machine's and may hold any character), at most 80 characters.
 */
export function showKvKey(key: string): string {
  const maxChars = 80;
  const cut = key.length > maxChars ? key.slice(0, maxChars) : key;
  const quoted = JSON.stringify(cut).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return key.length > maxChars ? `${quoted}… (${key.length} characters)` : quoted;
}

/**
 * A log entry as stored: sealed, [2][CRC][type][term varint][data]. The index
 * is the key, so it is not repeated, but the CRC covers it.
 */
export function encodeEntry(entry: Entry): Uint8Array {
  assertUint(entry.index, 'entry index');
  assertUint(entry.term, 'entry term');
  const code = ENTRY_TYPE_CODE[entry.type];
  if (code === undefined) throw new RangeError(`unknown entry type ${String(entry.type)}`);
  const buf = new Uint8Array(
    SEAL_HEADER_BYTES + 1 + varintSizeBytes(entry.term) + entry.data.byteLength,
  );
  buf[SEAL_HEADER_BYTES] = code;
  const pos = writeVarint(buf, SEAL_HEADER_BYTES + 1, entry.term);
  buf.set(entry.data, pos);
  return seal(buf, crc32cOfIndex(entry.index));
}

/** The entry stored under log index `index`; throws DecodeError. */
export function decodeEntry(index: number, bytes: Uint8Array, opts: DecodeOptions = {}): Entry {
  const r = openRecord(bytes, () => crc32cOfIndex(index), 'entry', opts, {
    version: RECORD_VERSION,
  });
  const code = r.byte('entry type');
  const type = ENTRY_TYPE_BY_CODE[code];
  if (type === undefined) throw new DecodeError(`unknown entry type ${code}`);
  const term = r.varint('entry term');
  return { term, index, type, data: r.rest() };
}

/**
 * The entry stored under log index `index` in the data dir `dataDir` (for
 * stores other than LevelDB, any name of where it lives): throws
 * StorageError 'corrupt' naming the log sublevel and the index.
 */
export function decodeStoredEntry(index: number, bytes: Uint8Array, dataDir: string): Entry {
  try {
    return decodeEntry(index, bytes);
  } catch (err) {
    throw corruptRecord(dataDir, `sublevel log, entry ${index}`, err);
  }
}

/** A DecodeError of the record `what` as StorageError 'corrupt'; other errors unchanged. */
export function corruptRecord(dataDir: string, what: string, err: unknown): StorageError | unknown {
  if (err instanceof DecodeError) return corruptError(dataDir, `${what}: ${err.message}`, err);
  return err;
}

// The CRC seed of a raft sublevel record is the CRC of its key, computed once per key:
// these records go with every Ready.
const SEEDS = new Map<string, number>();
function seedOf(key: string): number {
  let seed = SEEDS.get(key);
  if (seed === undefined) {
    seed = crc32c(utf8Encoder.encode(key));
    SEEDS.set(key, seed);
  }
  return seed;
}

/** [2][CRC][term varint][commit varint][vote UTF-8]. */
export function encodeHardState(hs: HardState): Uint8Array {
  assertUint(hs.term, 'hard state term');
  assertUint(hs.commit, 'hard state commit');
  const vote = utf8Encoder.encode(hs.vote);
  const buf = new Uint8Array(
    SEAL_HEADER_BYTES + varintSizeBytes(hs.term) + varintSizeBytes(hs.commit) + vote.byteLength,
  );
  let pos = writeVarint(buf, SEAL_HEADER_BYTES, hs.term);
  pos = writeVarint(buf, pos, hs.commit);
  buf.set(vote, pos);
  return seal(buf, seedOf(RAFT_KEY.hardState));
}

export function decodeHardState(bytes: Uint8Array, opts: DecodeOptions = {}): HardState {
  const r = openRecord(bytes, () => seedOf(RAFT_KEY.hardState), 'hard state', opts, {
    version: RECORD_VERSION,
  });
  const term = r.varint('hard state term');
  const commit = r.varint('hard state commit');
  return { term, vote: decodeText(r.rest(), 'hard state vote'), commit };
}

/** [2][CRC][index varint]: the applied index, or the index of a snapshot being installed. */
export function encodeIndex(index: number, key: string = RAFT_KEY.applied): Uint8Array {
  assertUint(index, 'index');
  const buf = new Uint8Array(SEAL_HEADER_BYTES + varintSizeBytes(index));
  writeVarint(buf, SEAL_HEADER_BYTES, index);
  return seal(buf, seedOf(key));
}

export function decodeIndex(
  bytes: Uint8Array,
  opts: DecodeOptions = {},
  key: string = RAFT_KEY.applied,
): number {
  const r = openRecord(bytes, () => seedOf(key), 'index', opts, { version: RECORD_VERSION });
  const index = r.varint('index');
  r.end('index');
  return index;
}

/** Index and term of one log position (the entry just before the first stored entry). */
export interface LogPosition {
  index: number;
  term: number;
}

/** [2][CRC][index varint][term varint], under raft key logStart. */
export function encodeLogPosition(pos: LogPosition): Uint8Array {
  assertUint(pos.index, 'log position index');
  assertUint(pos.term, 'log position term');
  const buf = new Uint8Array(
    SEAL_HEADER_BYTES + varintSizeBytes(pos.index) + varintSizeBytes(pos.term),
  );
  writeVarint(buf, writeVarint(buf, SEAL_HEADER_BYTES, pos.index), pos.term);
  return seal(buf, seedOf(RAFT_KEY.logStart));
}

export function decodeLogPosition(bytes: Uint8Array, opts: DecodeOptions = {}): LogPosition {
  const r = openRecord(bytes, () => seedOf(RAFT_KEY.logStart), 'log position', opts, {
    version: RECORD_VERSION,
  });
  const index = r.varint('log position index');
  const term = r.varint('log position term');
  r.end('log position');
  return { index, term };
}

/** [2][CRC][JSON], under raft key confState. */
export function encodeConfState(cs: ConfState): Uint8Array {
  return sealJson({ voters: cs.voters, learners: cs.learners }, RAFT_KEY.confState);
}

export function decodeConfState(bytes: Uint8Array, opts: DecodeOptions = {}): ConfState {
  const r = openRecord(bytes, () => seedOf(RAFT_KEY.confState), 'conf state', opts, 'json');
  return confStateFrom(decodeJson(r.rest(), 'conf state'), 'conf state');
}

/** [2][CRC][JSON], under raft key snapshot. */
export function encodeSnapshotMetadata(meta: SnapshotMetadata): Uint8Array {
  return sealJson(
    {
      index: meta.index,
      term: meta.term,
      confState: { voters: meta.confState.voters, learners: meta.confState.learners },
    },
    RAFT_KEY.snapshot,
  );
}

export function decodeSnapshotMetadata(
  bytes: Uint8Array,
  opts: DecodeOptions = {},
): SnapshotMetadata {
  const r = openRecord(bytes, () => seedOf(RAFT_KEY.snapshot), 'snapshot metadata', opts, 'json');
  const v = decodeJson(r.rest(), 'snapshot metadata');
  if (!isObject(v)) throw new DecodeError('snapshot metadata is not an object');
  return {
    index: uintFrom(v.index, 'snapshot index'),
    term: uintFrom(v.term, 'snapshot term'),
    confState: confStateFrom(v.confState, 'snapshot conf state'),
  };
}

/** [2][CRC][JSON {"through": key | null}], under meta key kvResealedThrough (keys.ts). */
export function encodeKvResealedThrough(through: string | undefined): Uint8Array {
  return sealJson({ through: through ?? null }, META_KEY.kvResealedThrough);
}

/** The last kv key re-sealed so far, undefined when none is yet; throws DecodeError. */
export function decodeKvResealedThrough(bytes: Uint8Array): string | undefined {
  const seed = () => seedOf(META_KEY.kvResealedThrough);
  const r = openRecord(bytes, seed, 'upgrade marker', {}, 'json');
  const v = decodeJson(r.rest(), 'upgrade marker');
  if (!isObject(v) || (v.through !== null && typeof v.through !== 'string'))
    throw new DecodeError('upgrade marker is not {"through": key | null}');
  return v.through ?? undefined;
}

/** The application's record of a member: how to reach it. Raft knows only the id. */
export interface MemberRecord {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  /** The raftkv version the member last published; absent until it has (or before raftkv kept it). */
  version?: string;
}

/** A copy that shares no array with `m`. */
export function cloneMember(m: MemberRecord): MemberRecord {
  const clone = {
    id: m.id,
    name: m.name,
    peerUrls: [...m.peerUrls],
    clientUrls: [...m.clientUrls],
  };
  return m.version !== undefined ? { ...clone, version: m.version } : clone;
}

export function encodeMember(m: MemberRecord): Uint8Array {
  return encodeJson({
    name: m.name,
    peerUrls: m.peerUrls,
    clientUrls: m.clientUrls,
    ...(m.version !== undefined ? { version: m.version } : {}),
  });
}

export function decodeMember(id: string, bytes: Uint8Array): MemberRecord {
  const v = decodeJson(bytes, 'member record');
  if (!isObject(v) || typeof v.name !== 'string') {
    throw new DecodeError('member record has no name');
  }
  return {
    id,
    name: v.name,
    peerUrls: stringsFrom(v.peerUrls, 'member peerUrls'),
    clientUrls: stringsFrom(v.clientUrls, 'member clientUrls'),
    ...(typeof v.version === 'string' ? { version: v.version } : {}),
  };
}

export function encodeText(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

export function decodeText(bytes: Uint8Array, what: string): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw new DecodeError(`${what} is not valid UTF-8`);
  }
}

/**
 * The members a data dir was created with (meta `createdWith`): the founders,
 * or the cluster's members when it joined; name → peer URL.
 */
export interface CreatedWith {
  how: 'founded' | 'joined';
  members: Record<string, string>;
}

export function encodeCreatedWith(c: CreatedWith): Uint8Array {
  return encodeJson({ how: c.how, members: c.members });
}

export function decodeCreatedWith(bytes: Uint8Array): CreatedWith {
  const v = decodeJson(bytes, 'meta createdWith');
  const members = isObject(v) ? v.members : undefined;
  if (
    !isObject(v) ||
    (v.how !== 'founded' && v.how !== 'joined') ||
    !isObject(members) ||
    !Object.values(members).every((u) => typeof u === 'string')
  ) {
    throw new DecodeError('meta createdWith is not {how, members: {name: peer URL}}');
  }
  return { how: v.how, members: { ...(members as Record<string, string>) } };
}

export function encodeRemovedMembers(ids: readonly string[]): Uint8Array {
  return encodeJson([...ids]);
}

export function decodeRemovedMembers(bytes: Uint8Array): string[] {
  const v = decodeJson(bytes, 'meta removedMembers');
  if (!Array.isArray(v) || !v.every((id) => typeof id === 'string'))
    throw new DecodeError('meta removedMembers is not a list of member ids');
  return v as string[];
}

function encodeJson(value: unknown): Uint8Array {
  return utf8Encoder.encode(JSON.stringify(value));
}

function sealJson(value: unknown, key: string): Uint8Array {
  const json = encodeJson(value);
  const buf = new Uint8Array(SEAL_HEADER_BYTES + json.byteLength);
  buf.set(json, SEAL_HEADER_BYTES);
  return seal(buf, seedOf(key));
}

function decodeJson(bytes: Uint8Array, what: string): unknown {
  const text = decodeText(bytes, what);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new DecodeError(`${what} is not valid JSON`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function uintFrom(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new DecodeError(`${what} is not a non-negative integer`);
  }
  return v;
}

function stringsFrom(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
    throw new DecodeError(`${what} is not a list of strings`);
  }
  return v as string[];
}

function confStateFrom(v: unknown, what: string): ConfState {
  if (!isObject(v)) throw new DecodeError(`${what} is not an object`);
  return {
    voters: stringsFrom(v.voters, `${what} voters`),
    learners: stringsFrom(v.learners, `${what} learners`),
  };
}
