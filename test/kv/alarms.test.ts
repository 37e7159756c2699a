/**
 * The space quota in the state machine: the nospace alarm is replicated state
 * (snapshots, persisted records), and while it is active the commands that grow
 * the state apply as quota_exceeded, changing nothing; the size estimate is a
 * running sum equal on every replica, whatever way it got its state.
 */
import fc from 'fast-check';
import t from 'tap';
import { decodeCommand } from '../../src/kv/command-decode.js';
import type { Command } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { VERSION_OVERHEAD_BYTES } from '../../src/kv/state-size.js';
import { entry, Feeder, RecordStore } from './helpers.js';

const raise = (memberId: string): Command => ({
  type: 'alarm',
  action: 'raise',
  alarm: 'nospace',
  memberId,
});
const clearAll: Command = { type: 'alarm', action: 'clear', alarm: 'nospace' };

t.test(
  'while nospace is active, writes that grow the state are refused and apply nothing',
  async (t) => {
    const f = new Feeder();
    f.put('a', '1');
    f.put('b', '2');
    const lease = f.apply({ type: 'leaseGrant', id: 'L1', ttlMs: 60_000 });
    t.equal(lease.ok, true);
    const raised = f.apply(raise('m1'));
    t.match(raised, { ok: true, op: 'alarm', changed: [{ memberId: 'm1', alarm: 'nospace' }] });
    t.same(f.sm.alarms(), [{ memberId: 'm1', alarm: 'nospace' }]);
    const before = f.sm.snapshot();
    const revision = f.sm.revision;
    const refused: Command[] = [
      { type: 'put', key: 'c', value: '3' },
      { type: 'put', key: 'a', value: 'overwrite' },
      { type: 'leaseGrant', id: 'L2', ttlMs: 60_000 },
      { type: 'txn', compare: [], success: [{ op: 'put', key: 'x', value: 'y' }], failure: [] },
      // A put in the branch that does not run still counts (etcd's rule: the request can grow).
      {
        type: 'txn',
        compare: [{ key: 'a', target: 'value', op: '==', value: '1' }],
        success: [{ op: 'get', key: 'a' }],
        failure: [{ op: 'put', key: 'x', value: 'y' }],
      },
    ];
    for (const cmd of refused) {
      const r = f.apply(cmd, { idempotencyKey: `k-${cmd.type}-${JSON.stringify(cmd).length}` });
      t.match(r, { ok: false, code: 'quota_exceeded', revision }, `${cmd.type} refused`);
    }
    // Refusals change nothing but the meta record's clock (the same on every replica).
    t.equal(f.sm.revision, revision);
    t.same(f.sm.get('a'), { ok: true, revision, kv: f.sm.get('a').ok ? f.sm.get('a').kv : null });
    t.equal(f.sm.lease('L2'), undefined, 'no lease granted');
    t.equal(
      f.sm.stats().dedupEntries,
      0,
      'a refusal is not remembered: a retry once freed applies',
    );
    t.equal(before.length > 0, true);

    // What frees space, or changes nothing, still works.
    t.match(f.apply({ type: 'leaseKeepAlive', id: 'L1' }), { ok: true });
    t.match(f.apply({ type: 'delete', key: 'b' }), { ok: true, deleted: 1 });
    t.match(f.apply({ type: 'compact', revision: f.sm.revision }), { ok: true, op: 'compact' });
    t.match(f.apply({ type: 'leaseRevoke', id: 'L1' }), { ok: true, op: 'leaseRevoke' });
    t.match(
      f.apply({ type: 'txn', compare: [], success: [{ op: 'delete', key: 'a' }], failure: [] }),
      { ok: true, op: 'txn', succeeded: true },
    );
    t.match(f.apply({ type: 'sync' }), { ok: true });
    t.equal(f.sm.get('a').ok && f.sm.get('a').kv, null, 'reads work');

    // Cleared: the same write now applies.
    t.match(f.apply(clearAll), { ok: true, changed: [{ memberId: 'm1' }], alarms: [] });
    t.match(f.apply({ type: 'put', key: 'c', value: '3' }), { ok: true, op: 'put' });
  },
);

t.test('raise is idempotent, clear by member or all', async (t) => {
  const f = new Feeder();
  t.match(f.apply(raise('m1')), { changed: [{ memberId: 'm1' }] });
  t.match(f.apply(raise('m1')), { changed: [], alarms: [{ memberId: 'm1' }] });
  f.apply(raise('m2'));
  t.match(f.apply({ type: 'alarm', action: 'clear', alarm: 'nospace', memberId: 'm2' }), {
    changed: [{ memberId: 'm2' }],
    alarms: [{ memberId: 'm1' }],
  });
  t.match(f.apply({ type: 'put', key: 'a', value: '1' }), { code: 'quota_exceeded' });
  f.apply(raise('m3'));
  t.match(f.apply(clearAll), { changed: [{ memberId: 'm1' }, { memberId: 'm3' }], alarms: [] });
  t.match(f.apply({ type: 'put', key: 'a', value: '1' }), { ok: true });
});

t.test('the decoder takes well-formed alarm commands only', async (t) => {
  const bad = [
    { type: 'alarm', action: 'raise', alarm: 'nospace' },
    { type: 'alarm', action: 'arm', alarm: 'nospace', memberId: 'm1' },
    { type: 'alarm', action: 'raise', alarm: 'corrupt', memberId: 'm1' },
    { type: 'alarm', action: 'clear', alarm: 'nospace', memberId: 'a/b' },
    { type: 'alarm', action: 'clear', alarm: 'nospace', memberId: 7 },
  ];
  for (const cmd of bad) {
    const r = decodeCommand(entry(cmd as unknown as Command));
    t.match(r, { ok: false, newer: false }, JSON.stringify(cmd));
  }
  t.match(decodeCommand(entry(clearAll)), { ok: true, envelope: { cmd: clearAll } });
});

t.test('alarms travel in snapshots and persisted records', async (t) => {
  const f = new Feeder();
  const disk = new RecordStore();
  f.put('a', '1');
  f.apply(raise('m1'));
  disk.write(f.sm.takeMutations());
  const restored = KvStateMachine.restore(f.sm.snapshot(), f.sm.appliedIndex);
  t.same(restored.alarms(), [{ memberId: 'm1', alarm: 'nospace' }]);
  const loaded = KvStateMachine.load(disk.records, f.sm.appliedIndex);
  t.same(loaded.alarms(), [{ memberId: 'm1', alarm: 'nospace' }]);
  const g = new Feeder(loaded);
  t.match(g.apply({ type: 'put', key: 'b', value: '2' }), { code: 'quota_exceeded' });
  g.apply(clearAll);
  disk.write(g.sm.takeMutations());
  t.same(
    KvStateMachine.load(disk.records, g.sm.appliedIndex).alarms(),
    [],
    'the clear is persisted',
  );
});

t.test('the size estimate: what a put adds, what compaction and expiry take back', async (t) => {
  const f = new Feeder();
  const empty = f.sm.sizeBytes;
  t.equal(empty, 0);
  f.put('key', 'x'.repeat(100));
  t.equal(f.sm.sizeBytes, 3 + 100 + VERSION_OVERHEAD_BYTES, 'one version: key + value + overhead');
  for (let i = 0; i < 99; i++) f.put('key', 'x'.repeat(100));
  const history = f.sm.sizeBytes;
  t.equal(history, 100 * (103 + VERSION_OVERHEAD_BYTES), 'history counts every version');
  f.apply({ type: 'compact', revision: f.sm.revision });
  // A compaction at N keeps what a replay of N needs (the version N replaced) until the next one.
  t.equal(
    f.sm.sizeBytes,
    2 * (103 + VERSION_OVERHEAD_BYTES),
    'compaction takes back the old versions but the one revision N replaced',
  );
  f.apply({ type: 'delete', key: 'key' });
  f.apply({ type: 'compact', revision: f.sm.revision });
  f.put('other', 'y');
  f.apply({ type: 'compact', revision: f.sm.revision });
  const other = 5 + 1 + VERSION_OVERHEAD_BYTES;
  t.equal(f.sm.sizeBytes, other, 'a deleted key compacted away costs nothing');
  // Remembered results count until they expire.
  f.apply({ type: 'put', key: 'k', value: 'v' }, { idempotencyKey: 'id-1' });
  const withDedup = f.sm.sizeBytes;
  t.ok(
    withDedup > other + 1 + 1 + VERSION_OVERHEAD_BYTES,
    'a remembered result adds to the estimate',
  );
  f.nowMs += 11 * 60 * 1000;
  f.apply({ type: 'sync' });
  t.equal(f.sm.sizeBytes, other + 1 + 1 + VERSION_OVERHEAD_BYTES, 'expired results are taken back');
});

// Any history of commands: a replica restored from a snapshot, or loaded from the records,
// has the very estimate of the one that applied everything (quota decisions agree).
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    type: fc.constant('put' as const),
    key: fc.constantFrom('a', 'b', 'c', 'dé', 'e'),
    value: fc.string({ maxLength: 40 }),
  }),
  fc.record({ type: fc.constant('delete' as const), key: fc.constantFrom('a', 'b', 'c') }),
  fc.record({
    type: fc.constant('leaseGrant' as const),
    id: fc.constantFrom('L1', 'L2'),
    ttlMs: fc.constant(60_000),
  }),
  fc.record({ type: fc.constant('leaseRevoke' as const), id: fc.constantFrom('L1', 'L2') }),
  fc.constant(raise('m1')),
  fc.constant(clearAll),
  fc.constant({ type: 'compact', revision: -1 } as unknown as Command),
);

t.test(
  'property: the estimate is the same after a restore or a load, and never negative',
  async (t) => {
    let runs = 0;
    let refusals = 0;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(commandArb, fc.boolean()), { minLength: 1, maxLength: 60 }),
        (steps) => {
          runs++;
          const f = new Feeder();
          const disk = new RecordStore();
          for (const [step, withKey] of steps) {
            const cmd =
              step.type === 'compact'
                ? { type: 'compact' as const, revision: f.sm.revision }
                : step;
            const r = f.apply(cmd, withKey ? { idempotencyKey: `id-${f.index}` } : {});
            if (!r.ok && r.code === 'quota_exceeded') refusals++;
            if (f.index % 7 === 0) f.nowMs += 4 * 60 * 1000;
            if (f.sm.sizeBytes < 0) return false;
            disk.write(f.sm.takeMutations());
          }
          const restored = KvStateMachine.restore(f.sm.snapshot(), f.sm.appliedIndex);
          const loaded = KvStateMachine.load(disk.records, f.sm.appliedIndex);
          return restored.sizeBytes === f.sm.sizeBytes && loaded.sizeBytes === f.sm.sizeBytes;
        },
      ),
      { numRuns: 300 },
    );
    t.equal(runs, 300);
    t.ok(refusals > 100, `writes were refused under the alarm in the runs (${refusals})`);
  },
);
