/**
 * Framing of the message stream (see message-stream.ts): after the HTTP
 * upgrade, the dialing side writes frames and the accepting side reads them.
 * ```
 * frame = u32 big-endian length of what follows | u8 kind | payload
 * ```
 * Kind FRAME_RAFT carries one encoded batch of Raft messages (codec.ts).
 * Kinds from FRAME_APP_MIN up belong to the layer above the transport (the
 * server forwards writes to the leader with them); the transport only moves
 * them. Any other kind closes the stream.
 */
import { Buffer } from 'node:buffer';
import type { Message } from '../raft/messages.js';
import { encodeBatch } from './codec.js';
import { TransportError } from './errors.js';

export const FRAME_HEADER_BYTES = 5;
const LENGTH_BYTES = 4;
export const FRAME_RAFT = 1;
export const FRAME_APP_MIN = 16;
export const FRAME_APP_MAX = 255;

export interface Frame {
  kind: number;
  payload: Buffer;
}

/** One frame of kind FRAME_RAFT holding `messages`, encoded without an extra copy. */
export function encodeRaftFrame(messages: readonly Message[]): Buffer {
  const frame = encodeBatch(messages, FRAME_HEADER_BYTES);
  frame.writeUInt32BE(frame.byteLength - LENGTH_BYTES, 0);
  frame[LENGTH_BYTES] = FRAME_RAFT;
  return frame;
}

/** A frame of any kind around `payload`. */
export function encodeFrame(kind: number, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  frame.writeUInt32BE(1 + payload.byteLength, 0);
  frame[LENGTH_BYTES] = kind;
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Reassembles frames from the chunks a socket hands out, whatever their
 * boundaries. Bounded: a frame longer than `maxFrameBytes` is refused before
 * it is buffered, and only one incomplete frame is ever held.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /**
   * Appends `chunk` and hands each frame it completes to `onFrame`, in order.
   * Throws TransportError `too_large` or `bad_message` at the first bad length
   * (the frames before it were handed out); the stream is then unusable.
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    if (chunk.byteLength > 0) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.byteLength;
    }
    while (this.bufferedBytes >= LENGTH_BYTES) {
      const length = this.peekLength();
      if (length < 1) throw new TransportError('bad_message', 'empty frame');
      if (length > this.maxFrameBytes) {
        throw new TransportError('too_large', `frame of ${length} bytes > ${this.maxFrameBytes}`);
      }
      if (this.bufferedBytes < LENGTH_BYTES + length) break;
      const bytes = this.take(LENGTH_BYTES + length);
      onFrame({ kind: bytes[LENGTH_BYTES]!, payload: bytes.subarray(FRAME_HEADER_BYTES) });
    }
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.byteLength >= LENGTH_BYTES) return first.readUInt32BE(0);
    const head = Buffer.allocUnsafe(LENGTH_BYTES);
    let filled = 0;
    for (const c of this.chunks) {
      filled += c.copy(head, filled, 0, Math.min(c.byteLength, LENGTH_BYTES - filled));
      if (filled === LENGTH_BYTES) break;
    }
    return head.readUInt32BE(0);
  }

  /** Removes and returns the first `n` buffered bytes. Precondition: n <= bufferedBytes. */
  private take(n: number): Buffer {
    this.bufferedBytes -= n;
    const first = this.chunks[0]!;
    if (first.byteLength >= n) {
      if (first.byteLength === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.byteLength, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (k === c.byteLength) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
