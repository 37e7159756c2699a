/** Stream framing: frames survive any chunking, and bad lengths are refused before buffering. */
import { deepStrictEqual } from 'node:assert';
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import t from 'tap';
import { decodeBatch } from '../../src/transport/codec.js';
import {
  encodeRaftFrame,
  FRAME_RAFT,
  type Frame,
  FrameReader,
} from '../../src/transport/frames.js';
import { arbBatch } from './arbitraries.js';

/** Cuts `bytes` at the given offsets (any order, duplicates allowed). */
function cut(bytes: Buffer, offsets: number[]): Buffer[] {
  const points = [...new Set(offsets.map((o) => o % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of [...points, bytes.byteLength]) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  return chunks;
}

t.test('frames cut anywhere come out whole and in order', (t) => {
  fc.assert(
    fc.property(
      fc.array(arbBatch, { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (batches, offsets) => {
        const stream = Buffer.concat(batches.map((b) => encodeRaftFrame(b)));
        const reader = new FrameReader(1 << 20);
        const frames: Frame[] = [];
        for (const chunk of cut(stream, offsets)) reader.push(chunk, (f) => frames.push(f));
        deepStrictEqual(
          frames.map((f) => f.kind),
          batches.map(() => FRAME_RAFT),
        );
        for (let i = 0; i < batches.length; i++) {
          deepStrictEqual(decodeBatch(frames[i]!.payload), batches[i]);
        }
      },
    ),
    { numRuns: 150 },
  );
  t.pass('150 runs');
  t.end();
});

t.test('a frame longer than the bound is refused from its length alone', (t) => {
  const frames: Frame[] = [];
  const collect = (f: Frame) => frames.push(f);
  const reader = new FrameReader(100);
  const ok = Buffer.from([0, 0, 0, 2, 7, 1]);
  t.throws(() => reader.push(Buffer.concat([ok, Buffer.from([0, 0, 0, 101])]), collect), {
    code: 'too_large',
  });
  t.equal(frames.length, 1, 'the frame before the bad length was handed out');
  const empty = new FrameReader(100);
  t.throws(() => empty.push(Buffer.from([0, 0, 0, 0]), collect), { code: 'bad_message' });
  // A length split over two chunks is still read right.
  frames.length = 0;
  const split = new FrameReader(100);
  split.push(Buffer.from([0, 0]), collect);
  split.push(Buffer.from([0, 2, 7]), collect);
  t.equal(frames.length, 0);
  split.push(Buffer.from([9]), collect);
  t.same(
    frames.map((f) => ({ kind: f.kind, payload: [...f.payload] })),
    [{ kind: 7, payload: [9] }],
  );
  t.end();
});
