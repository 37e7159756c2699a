import { crc32 } from './crc32.js';
import { assert, KvInvariantError } from './errors.js';
import { compareKeys } from './key-order.js';
import { utf8ByteLength, utf8Decode, utf8EncodeInto } from './text.js';

/**
 * A snapshot is the persisted record set (record-keys.ts), framed:
 *
 *   "RKVS" | format u8 = 1 | record count u32 | records | CRC-32 u32 of all before it
 *   record: key length u32 | key (UTF-8) | value length u32 | value (UTF-8 JSON)
 *
 * big-endian. Records are sorted by key, so equal states give equal bytes
 * (tests compare states that way). The zero-length snapshot is the empty state:
 * Raft's bootstrap snapshot carries no data.
 */
const MAGIC = [0x52, 0x4b, 0x56, 0x53]; // "RKVS"
const FORMAT_VERSION = 1;
const HEADER_BYTES = 4 + 1 + 4;
const TRAILER_BYTES = 4;

/** Takes record values as text, so they are encoded once, straight into the snapshot. */
export function encodeSnapshot(records: Iterable<[string, string]>): Uint8Array {
  const sorted = [...records].sort((a, b) => compareKeys(a[0], b[0]));
  let sizeBytes = HEADER_BYTES + TRAILER_BYTES;
  for (const [key, value] of sorted) sizeBytes += 8 + utf8ByteLength(key) + utf8ByteLength(value);
  const bytes = new Uint8Array(sizeBytes);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  view.setUint8(4, FORMAT_VERSION);
  view.setUint32(5, sorted.length);
  let offset = HEADER_BYTES;
  const put = (text: string) => {
    const length = utf8EncodeInto(text, bytes.subarray(offset + 4));
    view.setUint32(offset, length);
    offset += 4 + length;
  };
  for (const [key, value] of sorted) {
    put(key);
    put(value);
  }
  assert(offset + TRAILER_BYTES === sizeBytes, 'snapshot: size mismatch (malformed string?)');
  view.setUint32(offset, crc32(bytes, offset));
  return bytes;
}

/** Throws KvInvariantError on anything but a well-formed snapshot of a known format. */
export function decodeSnapshot(bytes: Uint8Array): [string, Uint8Array][] {
  if (bytes.length === 0) return [];
  const corrupt = (why: string) => new KvInvariantError(`snapshot: ${why}`);
  if (bytes.length < HEADER_BYTES + TRAILER_BYTES || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw corrupt('not a raftkv KV snapshot');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint8(4) !== FORMAT_VERSION) throw corrupt(`unknown format ${view.getUint8(4)}`);
  const end = bytes.length - TRAILER_BYTES;
  if (view.getUint32(end) !== crc32(bytes, end)) throw corrupt('checksum mismatch');
  const count = view.getUint32(5);
  const records: [string, Uint8Array][] = [];
  let offset = HEADER_BYTES;
  const take = (): Uint8Array => {
    if (offset + 4 > end) throw corrupt('truncated');
    const length = view.getUint32(offset);
    if (offset + 4 + length > end) throw corrupt('truncated');
    const chunk = bytes.subarray(offset + 4, offset + 4 + length);
    offset += 4 + length;
    return chunk;
  };
  for (let i = 0; i < count; i++) {
    const key = utf8Decode(take());
    records.push([key, take()]);
  }
  if (offset !== end) throw corrupt('trailing bytes');
  return records;
}
