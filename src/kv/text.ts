/**
 * UTF-8 helpers. Keys and values are JS strings on the wire and in memory, and
 * UTF-8 bytes in persisted records, so a string must round-trip through UTF-8:
 * lone surrogates (possible in JSON via "\ud800") are rejected as malformed.
 */

const encoder = new TextEncoder();
// fatal: garbage bytes must be reported, not silently turned into U+FFFD.
const decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Encodes into `target` (which must be large enough); returns the bytes written. */
export function utf8EncodeInto(text: string, target: Uint8Array): number {
  return encoder.encodeInto(text, target).written;
}

/** Throws TypeError on invalid UTF-8; callers that accept untrusted bytes catch it. */
export function utf8Decode(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

// With the `u` flag a surrogate pair is one code point outside this class,
// so only unpaired surrogates match.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/** Length of the UTF-8 encoding, without allocating it. Assumes a well-formed string. */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      bytes += 4; // a surrogate pair: one astral code point
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Fixed-width lowercase hex, so that record keys sort numerically as strings. */
export function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}
