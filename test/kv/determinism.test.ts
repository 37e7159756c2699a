/**
 * Determinism and persistence: replicas fed the same entries agree on every
 * result, mutation batch and snapshot; a machine rebuilt at any point from the
 * persisted records (load) or from a snapshot (restore) has exactly the
 * original state and keeps agreeing with it afterwards.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { type Command, encodeCommand, KvStateMachine } from '../../src/kv/index.js';
import { bytesEqual, RecordStore } from './helpers.js';
import { command, LEASES } from './model.js';

// Small dedup bounds so that expiry and eviction happen within a short history.
const OPTIONS = { dedup: { retentionMs: 40, entriesMax: 4 } };

const leaseCommand: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ type: fc.constant('leaseKeepAlive' as const), id: fc.constantFrom(...LEASES) }),
  fc.record({
    type: fc.constant('leaseCheckpoint' as const),
    leases: fc.array(
      fc.record({ id: fc.constantFrom(...LEASES, 'gone'), remainingMs: fc.nat(5000) }),
      { maxLength: 3 },
    ),
  }),
);

/** Raft entries: commands (clocks that jump and go back, optional idempotency keys), no-ops, garbage. */
const entryData: fc.Arbitrary<Uint8Array> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .record(
        {
          atMs: fc.integer({ min: 0, max: 400 }),
          idempotencyKey: fc.constantFrom('k1', 'k2', 'k3', 'k4', 'k5', 'k6'),
          cmd: fc.oneof({ weight: 5, arbitrary: command }, { weight: 1, arbitrary: leaseCommand }),
        },
        { requiredKeys: ['atMs', 'cmd'] },
      )
      .map((envelope) => encodeCommand({ v: 1, ...envelope })),
  },
  { weight: 1, arbitrary: fc.constant(new Uint8Array()) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 20 }) },
  {
    weight: 1,
    arbitrary: fc
      .jsonValue({ maxDepth: 2 })
      .map((v) => new TextEncoder().encode(JSON.stringify(v))),
  },
);

function assertSameState(actual: KvStateMachine, expected: KvStateMachine, what: string): void {
  assert.ok(bytesEqual(actual.snapshot(), expected.snapshot()), `${what}: snapshots differ`);
  assert.deepStrictEqual(actual.stats(), expected.stats(), `${what}: stats`);
  assert.deepStrictEqual(actual.range(), expected.range(), `${what}: range`);
  assert.deepStrictEqual(actual.leases(), expected.leases(), `${what}: leases`);
  assert.equal(actual.clockMs, expected.clockMs, `${what}: clock`);
}

function run(entries: Uint8Array[], rebuildAt: Set<number>): void {
  const original = new KvStateMachine(OPTIONS);
  let replica = new KvStateMachine(OPTIONS);
  const persisted = new RecordStore();
  entries.forEach((data, i) => {
    const index = i + 1;
    const result = original.apply(index, data);
    assert.deepStrictEqual(replica.apply(index, data), result, `entry ${index}: results differ`);
    const mutations = original.takeMutations();
    assert.deepStrictEqual(replica.takeMutations(), mutations, `entry ${index}: mutations differ`);
    persisted.write(mutations);
    if (!rebuildAt.has(index)) return;
    // Rebuild the replica from disk or from a snapshot; it must be indistinguishable.
    const loaded = KvStateMachine.load(persisted.records, index, OPTIONS);
    const restored = KvStateMachine.restore(original.snapshot(), index, OPTIONS);
    assertSameState(loaded, original, `load at ${index}`);
    assertSameState(restored, original, `restore at ${index}`);
    replica = index % 2 === 0 ? loaded : restored;
    // Replaying the log after a snapshot install changes nothing.
    for (let j = 0; j < index; j++) {
      assert.deepStrictEqual(replica.apply(j + 1, entries[j]!), { skipped: true });
    }
    assert.deepStrictEqual(replica.takeMutations(), []);
  });
  assertSameState(replica, original, 'at the end');
  assertSameState(
    KvStateMachine.load(persisted.records, entries.length, OPTIONS),
    original,
    'final load',
  );
}

t.test('replicas, loads and restores agree at every step', (t) => {
  fc.assert(
    fc.property(
      fc.array(entryData, { maxLength: 120, size: 'max' }),
      fc.array(fc.nat(120), { maxLength: 6 }),
      (entries, cuts) => run(entries, new Set(cuts)),
    ),
    { numRuns: 150 },
  );
  t.pass('150 random logs');
  t.end();
});

t.test('persisted records stay bounded by the live state', (t) => {
  const sm = new KvStateMachine(OPTIONS);
  const persisted = new RecordStore();
  let index = 0;
  const apply = (cmd: Command, atMs: number, idempotencyKey?: string) => {
    sm.apply(
      ++index,
      encodeCommand({ v: 1, atMs, cmd, ...(idempotencyKey ? { idempotencyKey } : {}) }),
    );
    persisted.write(sm.takeMutations());
  };
  for (let i = 0; i < 500; i++) {
    apply({ type: 'put', key: `k${i % 10}`, value: `v${i}` }, i, `idem-${i}`);
    if (i % 50 === 49) apply({ type: 'compact', revision: sm.revision }, i);
  }
  const kinds = () => [...persisted.records.keys()].map((key) => key.slice(0, 2)).sort();
  t.same(
    kinds(),
    ['d/', 'd/', 'd/', 'd/', ...Array(11).fill('k/'), 'm/'],
    'at most entriesMax dedup entries, one version per key after compaction ' +
      '(and the one the compaction revision replaced, for a replay of it)',
  );
  apply({ type: 'delete', key: 'k', prefix: true }, 500);
  apply({ type: 'compact', revision: sm.revision }, 1000);
  t.same(
    kinds(),
    [...Array(20).fill('k/'), 'm/'],
    'a compaction at the delete keeps its tombstones and what they deleted, for a replay of it',
  );
  apply({ type: 'put', key: 'other', value: 'x' }, 1001);
  apply({ type: 'compact', revision: sm.revision }, 1002);
  t.same(
    kinds(),
    ['k/', 'm/'],
    'the next compaction drops the deleted keys; expired dedup entries are gone from disk',
  );
  t.equal(sm.stats().keysWithHistory, 1);
  t.equal(sm.snapshot().length > 0, true);
  t.end();
});

t.test('snapshot format: empty, corrupt, foreign', (t) => {
  const empty = KvStateMachine.restore(new Uint8Array(), 1);
  t.equal(empty.revision, 0, "Raft's bootstrap snapshot (no data) is the empty state");
  t.equal(empty.appliedIndex, 1);

  const sm = new KvStateMachine();
  sm.apply(1, encodeCommand({ v: 1, atMs: 5, cmd: { type: 'put', key: 'a', value: '1' } }));
  const snapshot = sm.snapshot();
  t.equal(new TextDecoder().decode(snapshot.subarray(0, 4)), 'RKVS');
  const flipped = snapshot.slice();
  flipped[20]! ^= 1;
  t.throws(() => KvStateMachine.restore(flipped, 1), /checksum/);
  t.throws(() => KvStateMachine.restore(snapshot.subarray(0, snapshot.length - 1), 1));
  t.throws(
    () => KvStateMachine.restore(new TextEncoder().encode('{"not":"a snapshot"}'), 1),
    /not a raftkv/,
  );
  t.throws(() => KvStateMachine.load([['x/unknown', new Uint8Array()]], 1), /unknown record/);
  t.end();
});

t.test('a batch of applies yields each record once', (t) => {
  const sm = new KvStateMachine();
  for (let i = 1; i <= 5; i++) {
    sm.apply(i, encodeCommand({ v: 1, atMs: i, cmd: { type: 'put', key: 'a', value: `${i}` } }));
  }
  const mutations = sm.takeMutations();
  t.strictSame(
    mutations.map((m) => `${m.type} ${m.key}`),
    [
      'put k/0000000000000001/00000000',
      'put m/meta',
      'put k/0000000000000002/00000000',
      'put k/0000000000000003/00000000',
      'put k/0000000000000004/00000000',
      'put k/0000000000000005/00000000',
    ],
  );
  const meta = mutations.find((m) => m.key === 'm/meta')!;
  t.strictSame(JSON.parse(new TextDecoder().decode(meta.type === 'put' ? meta.value : undefined)), {
    revision: 5,
    compactRevision: 0,
    clockMs: 5,
    dedupSeq: 0,
  });
  t.strictSame(sm.takeMutations(), [], 'drained');
  const memoryOnly = new KvStateMachine({ trackMutations: false });
  memoryOnly.apply(1, encodeCommand({ v: 1, atMs: 1, cmd: { type: 'put', key: 'a', value: '1' } }));
  t.strictSame(memoryOnly.takeMutations(), []);
  t.end();
});
