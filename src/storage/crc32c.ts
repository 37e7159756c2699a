/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the
 * storage's records. Castagnoli rather than the IEEE CRC-32 of src/kv/crc32.ts:
 * it detects more error patterns at these record sizes (and is what LevelDB
 * and etcd's WAL use). Slicing-by-4 tables: about 3× the byte-at-a-time speed.
 */
const POLY = 0x82f63b78;

const TABLES = (() => {
  const t = new Uint32Array(4 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? POLY ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let s = 1; s < 4; s++) {
      const prev = t[(s - 1) * 256 + n]!;
      t[s * 256 + n] = (t[prev & 0xff]! ^ (prev >>> 8)) >>> 0;
    }
  }
  return t;
})();

/**
 * The CRC-32C of `bytes[start, end)`; `seed` is the CRC of what precedes them,
 * so crc32c(b, crc32c(a)) === crc32c(a ++ b).
 */
export function crc32c(bytes: Uint8Array, seed = 0, start = 0, end = bytes.length): number {
  const t = TABLES;
  let c = ~seed;
  let i = start;
  for (const stop4 = end - 3; i < stop4; i += 4) {
    c ^= bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    c =
      t[768 + (c & 0xff)]! ^
      t[512 + ((c >>> 8) & 0xff)]! ^
      t[256 + ((c >>> 16) & 0xff)]! ^
      t[c >>> 24]!;
  }
  for (; i < end; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** The CRC-32C of a log index as its 8-byte big-endian key (keys.ts), without allocating. */
export function crc32cOfIndex(index: number, seed = 0): number {
  const t = TABLES;
  let c = ~seed;
  const hi = Math.floor(index / 2 ** 32);
  const lo = index >>> 0;
  for (const word of [hi, lo]) {
    for (let shift = 24; shift >= 0; shift -= 8) {
      c = t[(c ^ (word >>> shift)) & 0xff]! ^ (c >>> 8);
    }
  }
  return ~c >>> 0;
}

const textEncoder = new TextEncoder();

/**
 * The CRC-32C of `text` as UTF-8, without encoding it first when it is ASCII
 * (every key the state machine writes): a kv record's seed, computed on every put.
 */
export function crc32cOfText(text: string, seed = 0): number {
  const t = TABLES;
  let c = ~seed;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return crc32c(textEncoder.encode(text.slice(i)), ~c >>> 0);
    c = t[(c ^ code) & 0xff]! ^ (c >>> 8);
  }
  return ~c >>> 0;
}
