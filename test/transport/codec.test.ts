/**
 * The batch codec: exact round trip of every Message field, a format version
 * byte, and nothing but a TransportError out of any input.
 */
import { deepStrictEqual } from 'node:assert';
import fc from 'fast-check';
import t from 'tap';
import type { Entry, Message } from '../../src/raft/messages.js';
import { message } from '../../src/raft/messages.js';
import {
  CODEC_VERSION,
  decodeBatch,
  encodeBatch,
  encodedBatchSizeBytes,
  readableBatchVersions,
  WIRE_MESSAGE_TYPES,
} from '../../src/transport/codec.js';
import { TransportError } from '../../src/transport/errors.js';
import { arbBatch, arbMessage } from './arbitraries.js';

/** Runs `fn` and returns the TransportError code it threw; fails on any other outcome. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof TransportError) return err.code;
    throw new Error(`not a TransportError: ${String(err)}`);
  }
  return 'no error';
}

t.test('round trip: decode(encode(batch)) equals the batch, for arbitrary messages', (t) => {
  fc.assert(
    fc.property(arbBatch, (batch) => {
      const bytes = encodeBatch(batch);
      deepStrictEqual(decodeBatch(bytes), batch);
      deepStrictEqual(bytes.byteLength, encodedBatchSizeBytes(batch));
    }),
    { numRuns: 500 },
  );
  t.pass('500 batches');
  t.end();
});

t.test('every field, including the optional ones and edge numbers, survives', (t) => {
  const max = Number.MAX_SAFE_INTEGER;
  const full: Message = {
    ...message({ type: 'snap', from: 'nœud-1', to: '节点2' }),
    term: max,
    logTerm: 2 ** 32,
    index: 2 ** 31,
    commit: 127,
    reject: true,
    rejectHint: 128,
    entries: [
      { term: 1, index: 5, type: 'confChange', data: new Uint8Array([1, 2, 3]) },
      { term: max, index: 3, type: 'normal', data: new Uint8Array(0) },
    ],
    snapshot: {
      metadata: { index: max, term: 0, confState: { voters: ['a', 'b'], learners: ['c'] } },
      data: new Uint8Array([9, 8, 7]),
    },
    readRound: max,
    readCtx: '',
    transfer: false,
  };
  t.same(decodeBatch(encodeBatch([full])), [full]);
  const withTransfer = { ...full, transfer: true, readCtx: 'ctx-✓' };
  t.same(decodeBatch(encodeBatch([withTransfer])), [withTransfer]);
  t.same(decodeBatch(encodeBatch([])), [], 'empty batch');
  t.end();
});

t.test('every wire message type has a tag; local inputs are refused', (t) => {
  t.same(
    [...WIRE_MESSAGE_TYPES].sort(),
    [
      'app',
      'appResp',
      'heartbeat',
      'heartbeatResp',
      'preVote',
      'preVoteResp',
      'readIndex',
      'readIndexResp',
      'snap',
      'timeoutNow',
      'transferLeader',
      'vote',
      'voteResp',
    ].sort(),
  );
  for (const type of ['hup', 'beat', 'checkQuorum', 'prop', 'unreachable', 'snapStatus'] as const) {
    t.equal(
      codeOf(() => encodeBatch([message({ type, from: 'a', to: 'b' })])),
      'invalid_message',
      type,
    );
  }
  t.end();
});

t.test('numbers that are not non-negative safe integers are refused on encode', (t) => {
  for (const bad of [-1, 1.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.equal(
      codeOf(() => encodeBatch([message({ type: 'app', from: 'a', to: 'b', term: bad })])),
      'invalid_message',
      String(bad),
    );
  }
  const badEntry = {
    term: 1,
    index: 1,
    type: 'other',
    data: new Uint8Array(0),
  } as unknown as Entry;
  t.equal(
    codeOf(() => encodeBatch([message({ type: 'app', from: 'a', to: 'b', entries: [badEntry] })])),
    'invalid_message',
    'unknown entry type',
  );
  t.end();
});

t.test('the version byte leads; other versions are refused with their own code', (t) => {
  const bytes = encodeBatch([message({ type: 'heartbeat', from: 'a', to: 'b', commit: 3 })]);
  t.equal(bytes[0], CODEC_VERSION);
  t.equal(CODEC_VERSION, 1);
  for (const version of [0, 2, 255]) {
    const other = Uint8Array.from(bytes);
    other[0] = version;
    t.equal(
      codeOf(() => decodeBatch(other)),
      'unsupported_version',
      `version ${version}`,
    );
  }
  t.end();
});

t.test('a node reads batch formats N and N-1, and refuses N+1 naming both versions', (t) => {
  t.strictSame(readableBatchVersions(1), [1], 'format 1 is the first: nothing before it');
  t.strictSame(readableBatchVersions(2), [1, 2], 'at format 2, format 1 is still read');
  t.strictSame(readableBatchVersions(5), [4, 5], 'never N-2');
  t.strictSame(readableBatchVersions(), [CODEC_VERSION]);
  // Hand-made frames: version, count 1, a heartbeat (type 8, no flags, "a" to "b", term 2,
  // logTerm 0, index 0, commit 3, rejectHint 0, no entries).
  const heartbeat = [8, 0, 1, 0x61, 1, 0x62, 2, 0, 0, 3, 0, 0];
  const current = Uint8Array.from([CODEC_VERSION, 1, ...heartbeat]);
  t.match(decodeBatch(current), [{ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 3 }]);
  const newer = Uint8Array.from([CODEC_VERSION + 1, 1, ...heartbeat]);
  try {
    decodeBatch(newer);
    t.fail('a newer format decoded');
  } catch (err) {
    t.equal((err as TransportError).code, 'unsupported_version');
    t.match(
      (err as Error).message,
      /batch format version 2 is newer than this member reads \(upgrade this member\): this member reads 1, writes 1/,
    );
  }
  const older = Uint8Array.from([0, 1, ...heartbeat]);
  t.match(
    (() => {
      try {
        decodeBatch(older);
      } catch (err) {
        return (err as Error).message;
      }
    })(),
    /version 0 is older than this member reads \(upgrade that peer\)/,
  );
  t.end();
});

t.test('garbage never escapes as anything but a TransportError', (t) => {
  t.equal(
    codeOf(() => decodeBatch(new Uint8Array(0))),
    'bad_message',
    'empty input',
  );
  t.equal(
    codeOf(() => decodeBatch('1' as unknown as Uint8Array)),
    'bad_message',
    'not bytes',
  );
  // Random bytes: a wrong first byte is a version problem, anything else is a bad message or,
  // by chance, a valid batch.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      let code: string;
      try {
        decodeBatch(bytes);
        code = 'decoded';
      } catch (err) {
        if (!(err instanceof TransportError)) throw err;
        code = err.code;
      }
      if (bytes.length === 0) return code === 'bad_message';
      if (bytes[0] !== CODEC_VERSION) return code === 'unsupported_version';
      return code === 'bad_message' || code === 'decoded';
    }),
    { numRuns: 2000 },
  );
  // The same after the right version byte, where the parser has to dig in.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (rest) => {
      const bytes = new Uint8Array([CODEC_VERSION, ...rest]);
      try {
        decodeBatch(bytes);
      } catch (err) {
        return err instanceof TransportError && err.code === 'bad_message';
      }
      return true;
    }),
    { numRuns: 2000 },
  );
  t.pass('random input');
  t.end();
});

t.test('a truncated, extended or corrupted batch is a bad_message, never a crash', (t) => {
  fc.assert(
    fc.property(
      arbBatch.filter((b) => b.length > 0),
      fc.nat(),
      (batch, seed) => {
        const bytes = encodeBatch(batch);
        // Every strict prefix is truncated somewhere.
        const cut = 1 + (seed % (bytes.length - 1));
        deepStrictEqual(
          codeOf(() => decodeBatch(bytes.subarray(0, cut))),
          'bad_message',
        );
        // A trailing byte is not ignored.
        const longer = new Uint8Array(bytes.length + 1);
        longer.set(bytes);
        deepStrictEqual(
          codeOf(() => decodeBatch(longer)),
          'bad_message',
        );
      },
    ),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(arbMessage, fc.nat(), fc.integer({ min: 1, max: 255 }), (m, at, xor) => {
      const bytes = Uint8Array.from(encodeBatch([m]));
      const i = 1 + (at % (bytes.length - 1));
      bytes[i] = bytes[i]! ^ xor;
      try {
        decodeBatch(bytes);
      } catch (err) {
        return err instanceof TransportError && err.code === 'bad_message';
      }
      return true;
    }),
    { numRuns: 1000 },
  );
  t.pass('prefixes, suffixes, bit flips');
  t.end();
});

t.test('decoding shares the input instead of copying entry and snapshot data', (t) => {
  const data = new Uint8Array(1000).fill(7);
  const m = message({
    type: 'app',
    from: 'n1',
    to: 'n2',
    index: 10,
    entries: [{ term: 1, index: 11, type: 'normal', data }],
  });
  const bytes = encodeBatch([m]);
  const [decoded] = decodeBatch(bytes);
  const entryData = decoded!.entries[0]!.data;
  t.equal(entryData.buffer, bytes.buffer, 'entry data is a view of the input');
  t.equal(entryData.byteLength, 1000);
  t.end();
});

t.test('an append of one small entry is compact', (t) => {
  const m = message({
    type: 'app',
    from: 'n1',
    to: 'n2',
    term: 3,
    logTerm: 3,
    index: 100_000,
    commit: 99_990,
    entries: [{ term: 3, index: 100_001, type: 'normal', data: new Uint8Array(16) }],
  });
  const size = encodeBatch([m]).byteLength;
  t.ok(size <= 2 + 16 + 24, `${size} bytes for 16 bytes of payload`);
  t.end();
});
