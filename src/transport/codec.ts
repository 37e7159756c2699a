/**
 * Binary encoding of a batch of Raft messages, format version 1.
 *
 * ```
 * batch    := version:u8 (= 1)  count:uvar  message{count}          -- nothing may follow
 * message  := type:u8  flags:u8  from:str  to:str
 *             term:uvar  logTerm:uvar  index:uvar  commit:uvar  rejectHint:uvar
 *             entryCount:uvar  entry{entryCount}
 *             [snapshot]      if flags.SNAPSHOT
 *             [readRound:uvar] if flags.READ_ROUND
 *             [readCtx:str]   if flags.READ_CTX
 * entry    := term:uvar  [index:uvar unless flags.CONTIGUOUS]  type:u8  dataLen:uvar  data
 * snapshot := index:uvar  term:uvar  voterCount:uvar  str*  learnerCount:uvar  str*  dataLen:uvar  data
 * str      := byteLen:uvar  utf8
 * uvar     := unsigned LEB128, at most 8 bytes, value a safe integer (< 2^53)
 * ```
 *
 * Flags: bit 0 reject, 1 snapshot, 2 readRound, 3 readCtx, 4 transfer present,
 * 5 transfer value, 6 contiguous entries (entry i has index `index + 1 + i`, the
 * usual shape of an append, so per-entry indexes are left out), bit 7 must be 0.
 *
 * Tags (message types, entry types) are append-only: a new one needs no new
 * version, a new field does. Strings are UTF-8; a lone surrogate does not survive.
 *
 * Copies: encode copies each entry's data once, into the one buffer it
 * allocates (sized exactly by a first pass). Decode copies no data: entry and
 * snapshot data are views into the input, which therefore must not be reused
 * by the caller and stays alive as long as any of them does.
 */
import { Buffer } from 'node:buffer';
import type { Entry, EntryType, Message, MessageType, NodeId, Snapshot } from '../raft/messages.js';
import { TransportError } from './errors.js';

/** The batch format this node writes. */
export const CODEC_VERSION = 1;

/** The first batch format: nothing older exists. */
const FIRST_CODEC_VERSION = 1;

/**
 * The batch formats a node whose newest is `current` reads: `current` and the
 * previous one (N and N-1), so that in a rolling upgrade a member reads what a
 * peer not yet upgraded sends. A newer format (N+1) is refused with
 * `unsupported_version`: that peer must not send it before every member reads
 * it, i.e. before the cluster version (src/server/cluster-version.ts) has it.
 * Version 1 is the first, so today this is [1].
 */
export function readableBatchVersions(current: number = CODEC_VERSION): number[] {
  return [current - 1, current].filter((v) => v >= FIRST_CODEC_VERSION);
}

const FLAG_REJECT = 1 << 0;
const FLAG_SNAPSHOT = 1 << 1;
const FLAG_READ_ROUND = 1 << 2;
const FLAG_READ_CTX = 1 << 3;
const FLAG_TRANSFER = 1 << 4;
const FLAG_TRANSFER_VALUE = 1 << 5;
const FLAG_CONTIGUOUS = 1 << 6;
const FLAG_RESERVED = 1 << 7;

/** Wire tags of the message types that travel between nodes. 0 is never used. Append only. */
const MESSAGE_TAGS: ReadonlyMap<MessageType, number> = new Map<MessageType, number>([
  ['app', 1],
  ['appResp', 2],
  ['vote', 3],
  ['voteResp', 4],
  ['preVote', 5],
  ['preVoteResp', 6],
  ['snap', 7],
  ['heartbeat', 8],
  ['heartbeatResp', 9],
  ['readIndex', 10],
  ['readIndexResp', 11],
  ['timeoutNow', 12],
  ['transferLeader', 13],
]);

const MESSAGE_TYPES_BY_TAG: ReadonlyArray<MessageType | undefined> = (() => {
  const byTag: Array<MessageType | undefined> = [];
  for (const [type, tag] of MESSAGE_TAGS) byTag[tag] = type;
  return byTag;
})();

/** The message types this codec carries: Raft's wire messages, never its local inputs. */
export const WIRE_MESSAGE_TYPES: readonly MessageType[] = MESSAGE_TYPES_BY_TAG.filter(
  (t): t is MessageType => t !== undefined,
);

const ENTRY_TAGS: ReadonlyMap<EntryType, number> = new Map<EntryType, number>([
  ['normal', 0],
  ['confChange', 1],
]);
const ENTRY_TYPES_BY_TAG: readonly EntryType[] = ['normal', 'confChange'];

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------
// Encoding

function invalid(message: string): TransportError {
  return new TransportError('invalid_message', message);
}

function uvarSize(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${field} must be a non-negative safe integer, got ${value}`);
  }
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  // Above 2^28 every 7 bits more cost one byte; at most 8 bytes below 2^56.
  let size = 5;
  for (let rest = Math.floor(value / 0x800000000); rest > 0; rest = Math.floor(rest / 0x80)) size++;
  return size;
}

function strSize(s: string, field: string): number {
  if (typeof s !== 'string') throw invalid(`${field} must be a string`);
  const byteLength = Buffer.byteLength(s, 'utf8');
  return uvarSize(byteLength, field) + byteLength;
}

function bytesSize(data: Uint8Array, field: string): number {
  if (!(data instanceof Uint8Array)) throw invalid(`${field} must be a Uint8Array`);
  return uvarSize(data.byteLength, field) + data.byteLength;
}

function entriesAreContiguous(m: Message): boolean {
  const entries = m.entries;
  for (let i = 0; i < entries.length; i++) {
    if (entries[i]!.index !== m.index + 1 + i) return false;
  }
  return true;
}

function snapshotSize(s: Snapshot): number {
  const md = s.metadata;
  let size =
    uvarSize(md.index, 'snapshot.metadata.index') + uvarSize(md.term, 'snapshot.metadata.term');
  size += uvarSize(md.confState.voters.length, 'voters.length');
  for (const v of md.confState.voters) size += strSize(v, 'voter');
  size += uvarSize(md.confState.learners.length, 'learners.length');
  for (const l of md.confState.learners) size += strSize(l, 'learner');
  return size + bytesSize(s.data, 'snapshot.data');
}

/** Exact encoded size of one message; validates everything the writer relies on. */
function messageSize(m: Message, contiguous: boolean): number {
  if (!MESSAGE_TAGS.has(m.type)) {
    throw invalid(`message type ${String(m.type)} is not sent between nodes`);
  }
  let size = 2; // type, flags
  size += strSize(m.from, 'from') + strSize(m.to, 'to');
  size += uvarSize(m.term, 'term') + uvarSize(m.logTerm, 'logTerm') + uvarSize(m.index, 'index');
  size += uvarSize(m.commit, 'commit') + uvarSize(m.rejectHint, 'rejectHint');
  size += uvarSize(m.entries.length, 'entries.length');
  for (const e of m.entries) {
    if (!ENTRY_TAGS.has(e.type)) throw invalid(`entry type ${String(e.type)} is unknown`);
    size += uvarSize(e.term, 'entry.term') + 1 + bytesSize(e.data, 'entry.data');
    size += contiguous ? 0 : uvarSize(e.index, 'entry.index');
  }
  if (m.snapshot !== undefined) size += snapshotSize(m.snapshot);
  if (m.readRound !== undefined) size += uvarSize(m.readRound, 'readRound');
  if (m.readCtx !== undefined) size += strSize(m.readCtx, 'readCtx');
  return size;
}

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  u8(value: number): void {
    this.buf[this.pos++] = value;
  }

  // Values were checked by uvarSize: non-negative safe integers.
  uvar(value: number): void {
    const buf = this.buf;
    let v = value;
    while (v > 0x7fffffff) {
      // `& 0x7f` is exact beyond 32 bits: ToInt32 keeps the low bits.
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 0x80);
    }
    while (v >= 0x80) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  str(s: string): void {
    const byteLength = Buffer.byteLength(s, 'utf8');
    this.uvar(byteLength);
    this.pos += this.buf.write(s, this.pos, byteLength, 'utf8');
  }

  bytes(data: Uint8Array): void {
    this.uvar(data.byteLength);
    this.buf.set(data, this.pos);
    this.pos += data.byteLength;
  }
}

function writeMessage(w: Writer, m: Message, contiguous: boolean): void {
  let flags = 0;
  if (m.reject) flags |= FLAG_REJECT;
  if (m.snapshot !== undefined) flags |= FLAG_SNAPSHOT;
  if (m.readRound !== undefined) flags |= FLAG_READ_ROUND;
  if (m.readCtx !== undefined) flags |= FLAG_READ_CTX;
  if (m.transfer !== undefined) flags |= FLAG_TRANSFER | (m.transfer ? FLAG_TRANSFER_VALUE : 0);
  if (contiguous) flags |= FLAG_CONTIGUOUS;

  w.u8(MESSAGE_TAGS.get(m.type)!);
  w.u8(flags);
  w.str(m.from);
  w.str(m.to);
  w.uvar(m.term);
  w.uvar(m.logTerm);
  w.uvar(m.index);
  w.uvar(m.commit);
  w.uvar(m.rejectHint);
  w.uvar(m.entries.length);
  for (const e of m.entries) {
    w.uvar(e.term);
    if (!contiguous) w.uvar(e.index);
    w.u8(ENTRY_TAGS.get(e.type)!);
    w.bytes(e.data);
  }
  if (m.snapshot !== undefined) {
    const md = m.snapshot.metadata;
    w.uvar(md.index);
    w.uvar(md.term);
    w.uvar(md.confState.voters.length);
    for (const v of md.confState.voters) w.str(v);
    w.uvar(md.confState.learners.length);
    for (const l of md.confState.learners) w.str(l);
    w.bytes(m.snapshot.data);
  }
  if (m.readRound !== undefined) w.uvar(m.readRound);
  if (m.readCtx !== undefined) w.str(m.readCtx);
}

/**
 * Encodes a batch into one freshly allocated buffer, after `headroomBytes`
 * bytes left for the caller (a frame header), so framing needs no copy.
 * Throws TransportError `invalid_message` for a message the wire cannot carry.
 */
export function encodeBatch(messages: readonly Message[], headroomBytes = 0): Buffer {
  const contiguous = messages.map(entriesAreContiguous);
  let size = headroomBytes + 1 + uvarSize(messages.length, 'batch length');
  for (let i = 0; i < messages.length; i++) size += messageSize(messages[i]!, contiguous[i]!);

  // allocUnsafe: every byte after the headroom is written below (the final position is checked).
  const w = new Writer(Buffer.allocUnsafe(size));
  w.pos = headroomBytes;
  w.u8(CODEC_VERSION);
  w.uvar(messages.length);
  for (let i = 0; i < messages.length; i++) writeMessage(w, messages[i]!, contiguous[i]!);
  if (w.pos !== size) throw invalid(`encoded ${w.pos} bytes, expected ${size}`);
  return w.buf;
}

/** The number of bytes `encodeBatch(messages)` would produce. */
export function encodedBatchSizeBytes(messages: readonly Message[]): number {
  let size = 1 + uvarSize(messages.length, 'batch length');
  for (const m of messages) size += messageSize(m, entriesAreContiguous(m));
  return size;
}

// ---------------------------------------------------------------------------
// Decoding

function bad(message: string): TransportError {
  return new TransportError('bad_message', message);
}

class Reader {
  pos = 0;
  private readonly end: number;
  private readonly buf: Buffer;

  constructor(private readonly input: Uint8Array) {
    this.buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    this.end = input.byteLength;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  u8(field: string): number {
    if (this.pos >= this.end) throw bad(`truncated at ${field}`);
    return this.buf[this.pos++]!;
  }

  uvar(field: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw bad(`truncated at ${field}`);
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(value)) throw bad(`${field} is not a safe integer`);
        return value;
      }
      scale *= 0x80;
    }
    throw bad(`${field}: varint longer than 8 bytes`);
  }

  /** A count of items that each take at least `minItemBytes`: bounded by what is left. */
  count(field: string, minItemBytes: number): number {
    const n = this.uvar(field);
    if (n * minItemBytes > this.remaining) throw bad(`${field} ${n} exceeds the input`);
    return n;
  }

  str(field: string): string {
    const length = this.uvar(field);
    if (length > this.remaining) throw bad(`truncated at ${field}`);
    const start = this.pos;
    this.pos += length;
    return this.buf.toString('utf8', start, this.pos);
  }

  /** A view, not a copy (see the module comment). */
  bytes(field: string): Uint8Array {
    const length = this.uvar(field);
    if (length > this.remaining) throw bad(`truncated at ${field}`);
    if (length === 0) return EMPTY;
    const view = new Uint8Array(this.input.buffer, this.input.byteOffset + this.pos, length);
    this.pos += length;
    return view;
  }
}

function readStrings(r: Reader, field: string): NodeId[] {
  const n = r.count(field, 1);
  const out: NodeId[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = r.str(field);
  return out;
}

function readMessage(r: Reader): Message {
  const tag = r.u8('type');
  const type = MESSAGE_TYPES_BY_TAG[tag];
  if (type === undefined) throw bad(`unknown message type tag ${tag}`);
  const flags = r.u8('flags');
  if (flags & FLAG_RESERVED) throw bad('reserved flag bit set');
  const contiguous = (flags & FLAG_CONTIGUOUS) !== 0;

  const from = r.str('from');
  const to = r.str('to');
  const term = r.uvar('term');
  const logTerm = r.uvar('logTerm');
  const index = r.uvar('index');
  const commit = r.uvar('commit');
  const rejectHint = r.uvar('rejectHint');

  // An entry takes at least 3 bytes (term, type, data length).
  const entryCount = r.count('entries', 3);
  const entries: Entry[] = new Array(entryCount);
  for (let i = 0; i < entryCount; i++) {
    const entryTerm = r.uvar('entry.term');
    let entryIndex: number;
    if (contiguous) {
      entryIndex = index + 1 + i;
      if (!Number.isSafeInteger(entryIndex)) throw bad('entry index overflows');
    } else {
      entryIndex = r.uvar('entry.index');
    }
    const entryTag = r.u8('entry.type');
    const entryType = ENTRY_TYPES_BY_TAG[entryTag];
    if (entryType === undefined) throw bad(`unknown entry type tag ${entryTag}`);
    entries[i] = {
      term: entryTerm,
      index: entryIndex,
      type: entryType,
      data: r.bytes('entry.data'),
    };
  }

  const m: Message = {
    type,
    from,
    to,
    term,
    logTerm,
    index,
    entries,
    commit,
    reject: (flags & FLAG_REJECT) !== 0,
    rejectHint,
  };
  if (flags & FLAG_SNAPSHOT) {
    const snapIndex = r.uvar('snapshot.index');
    const snapTerm = r.uvar('snapshot.term');
    const voters = readStrings(r, 'snapshot.voters');
    const learners = readStrings(r, 'snapshot.learners');
    m.snapshot = {
      metadata: { index: snapIndex, term: snapTerm, confState: { voters, learners } },
      data: r.bytes('snapshot.data'),
    };
  }
  if (flags & FLAG_READ_ROUND) m.readRound = r.uvar('readRound');
  if (flags & FLAG_READ_CTX) m.readCtx = r.str('readCtx');
  if (flags & FLAG_TRANSFER) m.transfer = (flags & FLAG_TRANSFER_VALUE) !== 0;
  else if (flags & FLAG_TRANSFER_VALUE) throw bad('transfer value without transfer flag');
  return m;
}

/**
 * How each readable batch format reads one message. When format 2 comes, its
 * reader joins version 1's here (and version 1's stays while 2 is current),
 * and encodeBatch writes 1 until the cluster version has 2.
 */
const MESSAGE_READERS: ReadonlyMap<number, (r: Reader) => Message> = new Map([[1, readMessage]]);
for (const v of readableBatchVersions()) {
  if (!MESSAGE_READERS.has(v)) throw new Error(`codec: no reader for batch format ${v}`);
}

function unsupportedVersion(version: number): TransportError {
  const readable = readableBatchVersions();
  const oldest = readable[0]!;
  const range = oldest === CODEC_VERSION ? `${CODEC_VERSION}` : `${oldest} and ${CODEC_VERSION}`;
  const why =
    version > CODEC_VERSION
      ? 'newer than this member reads (upgrade this member)'
      : 'older than this member reads (upgrade that peer)';
  return new TransportError(
    'unsupported_version',
    `batch format version ${version} is ${why}: this member reads ${range}, writes ${CODEC_VERSION}`,
  );
}

/**
 * Decodes a batch. Never throws anything but a TransportError: `unsupported_version`
 * for a format version this node does not read (see readableBatchVersions),
 * `bad_message` for anything else wrong.
 */
export function decodeBatch(input: Uint8Array): Message[] {
  if (!(input instanceof Uint8Array)) throw bad('input is not bytes');
  const r = new Reader(input);
  const version = r.u8('version');
  const readMessage = readableBatchVersions().includes(version)
    ? MESSAGE_READERS.get(version)
    : undefined;
  if (readMessage === undefined) throw unsupportedVersion(version);
  // A message takes at least 11 bytes (type, flags, two string lengths, 7 numbers).
  const count = r.count('batch length', 11);
  const messages: Message[] = new Array(count);
  for (let i = 0; i < count; i++) messages[i] = readMessage(r);
  if (r.remaining !== 0) throw bad(`${r.remaining} trailing bytes after the batch`);
  return messages;
}
