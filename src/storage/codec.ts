/**
 * Value encodings of the records in keys.ts. Records written on every Ready
 * (entries, hard state, applied index) are compact binary with a leading
 * version byte; rarely written ones (membership, snapshot metadata, member
 * records) are JSON. Every decoder validates and throws DecodeError, which the
 * storage turns into StorageError 'corrupt' naming the record.
 */
import type { ConfState, Entry, EntryType, HardState, SnapshotMetadata } from '../raft/index.js';

/** The version byte of binary records; bump it (and keep reading the old one) to change a layout. */
export const RECORD_VERSION = 1;

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
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}

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

  version(what: string): void {
    const v = this.byte(`${what} version`);
    if (v !== RECORD_VERSION) throw new DecodeError(`unknown ${what} version ${v}`);
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

/** [version][type][term varint][data]: the index is the key, so it is not repeated. */
export function encodeEntry(entry: Entry): Uint8Array {
  assertUint(entry.term, 'entry term');
  const code = ENTRY_TYPE_CODE[entry.type];
  if (code === undefined) throw new RangeError(`unknown entry type ${String(entry.type)}`);
  const buf = new Uint8Array(2 + varintSizeBytes(entry.term) + entry.data.byteLength);
  buf[0] = RECORD_VERSION;
  buf[1] = code;
  const pos = writeVarint(buf, 2, entry.term);
  buf.set(entry.data, pos);
  return buf;
}

export function decodeEntry(index: number, bytes: Uint8Array): Entry {
  const r = new Reader(bytes);
  r.version('entry');
  const code = r.byte('entry type');
  const type = ENTRY_TYPE_BY_CODE[code];
  if (type === undefined) throw new DecodeError(`unknown entry type ${code}`);
  const term = r.varint('entry term');
  return { term, index, type, data: r.rest() };
}

/** [version][term varint][commit varint][vote UTF-8]. */
export function encodeHardState(hs: HardState): Uint8Array {
  assertUint(hs.term, 'hard state term');
  assertUint(hs.commit, 'hard state commit');
  const vote = utf8Encoder.encode(hs.vote);
  const buf = new Uint8Array(
    1 + varintSizeBytes(hs.term) + varintSizeBytes(hs.commit) + vote.byteLength,
  );
  buf[0] = RECORD_VERSION;
  let pos = writeVarint(buf, 1, hs.term);
  pos = writeVarint(buf, pos, hs.commit);
  buf.set(vote, pos);
  return buf;
}

export function decodeHardState(bytes: Uint8Array): HardState {
  const r = new Reader(bytes);
  r.version('hard state');
  const term = r.varint('hard state term');
  const commit = r.varint('hard state commit');
  return { term, vote: decodeText(r.rest(), 'hard state vote'), commit };
}

/** [version][index varint]: the applied index. */
export function encodeIndex(index: number): Uint8Array {
  assertUint(index, 'index');
  const buf = new Uint8Array(1 + varintSizeBytes(index));
  buf[0] = RECORD_VERSION;
  writeVarint(buf, 1, index);
  return buf;
}

export function decodeIndex(bytes: Uint8Array): number {
  const r = new Reader(bytes);
  r.version('index');
  const index = r.varint('index');
  r.end('index');
  return index;
}

/** Index and term of one log position (the entry just before the first stored entry). */
export interface LogPosition {
  index: number;
  term: number;
}

export function encodeLogPosition(pos: LogPosition): Uint8Array {
  assertUint(pos.index, 'log position index');
  assertUint(pos.term, 'log position term');
  const buf = new Uint8Array(1 + varintSizeBytes(pos.index) + varintSizeBytes(pos.term));
  buf[0] = RECORD_VERSION;
  writeVarint(buf, writeVarint(buf, 1, pos.index), pos.term);
  return buf;
}

export function decodeLogPosition(bytes: Uint8Array): LogPosition {
  const r = new Reader(bytes);
  r.version('log position');
  const index = r.varint('log position index');
  const term = r.varint('log position term');
  r.end('log position');
  return { index, term };
}

export function encodeConfState(cs: ConfState): Uint8Array {
  return encodeJson({ voters: cs.voters, learners: cs.learners });
}

export function decodeConfState(bytes: Uint8Array): ConfState {
  return confStateFrom(decodeJson(bytes, 'conf state'), 'conf state');
}

export function encodeSnapshotMetadata(meta: SnapshotMetadata): Uint8Array {
  return encodeJson({
    index: meta.index,
    term: meta.term,
    confState: { voters: meta.confState.voters, learners: meta.confState.learners },
  });
}

export function decodeSnapshotMetadata(bytes: Uint8Array): SnapshotMetadata {
  const v = decodeJson(bytes, 'snapshot metadata');
  if (!isObject(v)) throw new DecodeError('snapshot metadata is not an object');
  return {
    index: uintFrom(v.index, 'snapshot index'),
    term: uintFrom(v.term, 'snapshot term'),
    confState: confStateFrom(v.confState, 'snapshot conf state'),
  };
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
