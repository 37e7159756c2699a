/**
 * Progress of long work, for a person watching a terminal: `kvctl snapshot`'s
 * bytes received and rate, `raftkv restore`'s steps. Written to stderr and
 * only when it is a TTY; with output going to a file or a pipe nothing is
 * written at all, so scripts see exactly what they saw before.
 *
 * The formatting is pure (bytes, rates, the line) and the clock is passed
 * in, so the tests need neither a terminal nor time to pass.
 */
import { open } from 'node:fs/promises';

/** Where progress goes: process.stderr, or any stream-like object (tests pass isTTY: true). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** 0 → "0 B", 1023 → "1023 B", 1536 → "1.5 KiB", 10 MiB → "10.0 MiB" (binary units). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Bytes over elapsed time as "1.5 MiB/s"; "-" before any time has passed. */
export function formatRate(bytes: number, elapsedMs: number): string {
  if (elapsedMs <= 0) return '-';
  return `${formatBytes(Math.round((bytes * 1000) / elapsedMs))}/s`;
}

/** 250 → "0.3 s", 1500 → "1.5 s", 75_000 → "1m15s". */
export function formatElapsed(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** "received 3.0 MiB of 12.0 MiB (25%), 1.5 MiB/s"; without a total, no "of" part. */
export function transferLine(
  verb: string,
  bytes: number,
  totalBytes: number | undefined,
  elapsedMs: number,
): string {
  const of =
    totalBytes !== undefined && totalBytes > 0
      ? ` of ${formatBytes(totalBytes)} (${Math.floor((bytes * 100) / totalBytes)}%)`
      : '';
  return `${verb} ${formatBytes(bytes)}${of}, ${formatRate(bytes, elapsedMs)}`;
}

/** Carriage return, the text, then erase what an earlier, longer line left on the right. */
const REWRITE = (text: string) => `\r${text}\x1b[K`;

/**
 * One updating line for a transfer: update() rewrites it (at most every
 * `intervalMs`), finish() replaces it with a summary and ends the line.
 * Writes nothing unless `stream.isTTY`.
 */
export class TransferProgress {
  private readonly startedMs: number;
  private lastWriteMs = Number.NEGATIVE_INFINITY;
  private bytes = 0;
  private readonly active: boolean;

  constructor(
    private readonly stream: ProgressStream,
    private readonly verb: string,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = 100,
  ) {
    this.active = stream.isTTY === true;
    this.startedMs = now();
  }

  update(bytes: number, totalBytes?: number): void {
    this.bytes = bytes;
    if (!this.active) return;
    const at = this.now();
    if (at - this.lastWriteMs < this.intervalMs) return;
    this.lastWriteMs = at;
    this.stream.write(REWRITE(transferLine(this.verb, bytes, totalBytes, at - this.startedMs)));
  }

  /** The summary: "received 12.0 MiB in 2.0 s, 6.0 MiB/s", on a line of its own. */
  finish(): void {
    if (!this.active) return;
    const elapsed = this.now() - this.startedMs;
    this.stream.write(
      `${REWRITE(`${this.verb} ${formatBytes(this.bytes)} in ${formatElapsed(elapsed)}, ${formatRate(this.bytes, elapsed)}`)}\n`,
    );
  }

  /** Ends an unfinished line (the transfer failed), so an error message starts on its own. */
  abandon(): void {
    if (this.active && this.lastWriteMs !== Number.NEGATIVE_INFINITY) this.stream.write('\n');
  }
}

/**
 * A whole file into memory, with a TransferProgress line ("read 3.0 MiB of
 * 12.0 MiB (25%), …") while it comes in: a large backup takes a while to read
 * before anything else can be said about it. Only on a TTY, like the rest.
 */
export async function readFileWithProgress(
  file: string,
  stream: ProgressStream,
  now: () => number = Date.now,
): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const totalBytes = (await handle.stat()).size;
    const progress = new TransferProgress(stream, 'read', now);
    const chunks: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const chunk of handle.createReadStream({ highWaterMark: READ_CHUNK_BYTES })) {
        chunks.push(chunk as Buffer);
        bytes += (chunk as Buffer).length;
        progress.update(bytes, totalBytes);
      }
    } catch (err) {
      progress.abandon();
      throw err;
    }
    progress.finish();
    return Buffer.concat(chunks, bytes);
  } finally {
    await handle.close().catch(() => {});
  }
}

const READ_CHUNK_BYTES = 1024 * 1024;

/** Steps of a multi-step job as "<prefix>: <step>" lines, only on a TTY; a no-op otherwise. */
export function stepReporter(stream: ProgressStream, prefix: string): (step: string) => void {
  if (stream.isTTY !== true) return () => {};
  return (step) => {
    stream.write(`${prefix}: ${step}\n`);
  };
}
