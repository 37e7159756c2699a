/**
 * Where a command's value comes from: the VALUE argument itself, `-` for
 * stdin, or `--file F`. Stdin and files are taken byte for byte (a trailing
 * newline is part of the value: use `printf`, not `echo`, to leave it out).
 *
 * raftkv values are JSON strings, so the bytes must be UTF-8: anything else
 * is refused with where the first bad byte is, never turned into U+FFFD.
 * Binary data has to be encoded first (base64 -w0 FILE | kvctl put KEY -).
 */
import { readFile } from 'node:fs/promises';
import { UsageError } from './common.js';

/** Far above the server's value limit (1 MiB), so the server says how big is too big; bounds memory. */
export const INPUT_BYTES_MAX = 64 * 1024 * 1024;

/**
 * The value of `what` (e.g. "put"): `arg`, or stdin when `arg` is `-`, or the
 * contents of `file`. UsageError when none or both are given, the input
 * cannot be read, is too large, or is not UTF-8.
 */
export async function valueFrom(
  what: string,
  arg: string | undefined,
  file: string | undefined,
): Promise<string> {
  if (arg !== undefined && file !== undefined)
    throw new UsageError(`${what}: give VALUE or --file, not both`);
  if (file !== undefined) return decodeText(await readFileBytes(file), `--file ${file}`);
  if (arg === '-') return decodeText(await readStdin(), 'stdin');
  if (arg === undefined)
    throw new UsageError(`${what}: VALUE is missing (give it, or - to read stdin, or --file F)`);
  return arg;
}

/** A whole file, as bytes; UsageError when it cannot be read or is too large. */
export async function readFileBytes(file: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (bytes.length > INPUT_BYTES_MAX)
    throw new UsageError(`${file} is larger than ${INPUT_BYTES_MAX} bytes`);
  return bytes;
}

/** All of stdin, as bytes (to its end); UsageError past INPUT_BYTES_MAX. */
export async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of process.stdin) {
      size += (chunk as Buffer).length;
      if (size > INPUT_BYTES_MAX)
        throw new UsageError(`stdin holds more than ${INPUT_BYTES_MAX} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read stdin: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks);
}

// fatal: refuse bad bytes rather than replace them; ignoreBOM: a leading BOM is kept, not eaten.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The bytes as text; UsageError naming `source` and the first bad byte when they are not UTF-8. */
export function decodeText(bytes: Uint8Array, source: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    const at = invalidUtf8Offset(bytes);
    throw new UsageError(
      `${source} is not valid UTF-8 (byte ${at} of ${bytes.length}): raftkv values are text, ` +
        'so encode binary data first (e.g. base64)',
    );
  }
}

/**
 * The offset of the first byte that does not start a well-formed UTF-8
 * sequence (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF), or -1 when all of it is well-formed.
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    // Continuation bytes after the lead, and the allowed range of the first one.
    let count: number;
    let low = 0x80;
    let high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) count = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      count = 2;
      if (b === 0xe0) low = 0xa0; // overlong
      if (b === 0xed) high = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      count = 3;
      if (b === 0xf0) low = 0x90; // overlong
      if (b === 0xf4) high = 0x8f; // past U+10FFFF
    } else return i;
    for (let k = 1; k <= count; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      if (k === 1 ? c < low || c > high : c < 0x80 || c > 0xbf) return i;
    }
    i += count + 1;
  }
  return -1;
}
