/**
 * Idempotency keys: a retry within the retention window gets the first
 * attempt's result and changes nothing; entries expire by the state machine
 * clock (which never goes backwards) and are bounded in number.
 */
import t from 'tap';
import { KvStateMachine } from '../../src/kv/index.js';
import { expectOk, Feeder, RecordStore } from './helpers.js';

const RETENTION_MS = 10 * 60 * 1000;

t.test('a retry gets the first result and is applied once', (t) => {
  const f = new Feeder();
  const first = f.apply({ type: 'put', key: 'a', value: '1' }, { idempotencyKey: 'req-1' });
  const retry = f.apply({ type: 'put', key: 'a', value: '1' }, { idempotencyKey: 'req-1' });
  t.strictSame(retry, first);
  t.equal(f.sm.revision, 1, 'one revision');
  const got = f.sm.get('a');
  t.equal(got.ok && got.kv?.version, 1, 'one put');
  // Even a different command under the same key replays the first result (the key names the request).
  t.strictSame(f.apply({ type: 'delete', key: 'a' }, { idempotencyKey: 'req-1' }), first);
  t.equal(f.sm.revision, 1);
  t.end();
});

t.test('failures are remembered too', (t) => {
  const f = new Feeder();
  const cas = { type: 'put', key: 'a', value: 'x', prevRevision: 5 } as const;
  const first = f.apply(cas, { idempotencyKey: 'cas' });
  t.match(first, { ok: false, code: 'compare_failed', kv: null });
  f.put('a', 'meanwhile');
  t.strictSame(
    f.apply(cas, { idempotencyKey: 'cas' }),
    first,
    'the retry does not re-run the guard',
  );
  t.end();
});

t.test('entries expire after the retention window of state machine time', (t) => {
  const f = new Feeder();
  f.nowMs = 1_000;
  f.apply({ type: 'put', key: 'a', value: '1' }, { idempotencyKey: 'k' });
  f.nowMs = 1_000 + RETENTION_MS - 1;
  t.equal(
    expectOk(f.apply({ type: 'put', key: 'a', value: '2' }, { idempotencyKey: 'k' }), 'put')
      .revision,
    1,
  );
  f.nowMs = 1_000 + RETENTION_MS;
  const late = expectOk(
    f.apply({ type: 'put', key: 'a', value: '2' }, { idempotencyKey: 'k' }),
    'put',
  );
  t.equal(late.revision, 2, 'after the window the key is new again');
  t.equal(f.sm.stats().dedupEntries, 1);
  t.end();
});

t.test('a proposer with a slow clock cannot move time backwards', (t) => {
  const f = new Feeder();
  f.apply({ type: 'put', key: 'a', value: '1' }, { atMs: 5_000, idempotencyKey: 'old' });
  // A new leader with a clock one retention window ahead: 'old' expires.
  f.apply(
    { type: 'put', key: 'b', value: '1' },
    { atMs: 5_000 + RETENTION_MS, idempotencyKey: 'new' },
  );
  t.equal(f.sm.clockMs, 5_000 + RETENTION_MS);
  // Then a leader whose clock lags far behind: time stays put, 'new' is still remembered...
  const retryNew = f.apply(
    { type: 'put', key: 'b', value: '1' },
    { atMs: 0, idempotencyKey: 'new' },
  );
  t.equal(expectOk(retryNew, 'put').revision, 2);
  t.equal(f.sm.clockMs, 5_000 + RETENTION_MS, 'the clock is max(atMs)');
  // ...and 'old' does not come back to life.
  const retryOld = f.apply(
    { type: 'put', key: 'a', value: '1' },
    { atMs: 5_001, idempotencyKey: 'old' },
  );
  t.equal(expectOk(retryOld, 'put').revision, 3, 'applied again: its entry had expired');
  t.end();
});

t.test('the table is bounded: the oldest entries go first', (t) => {
  const f = new Feeder({ dedup: { entriesMax: 3 } });
  for (const key of ['k1', 'k2', 'k3', 'k4']) {
    f.apply({ type: 'put', key: 'a', value: key }, { idempotencyKey: key });
  }
  t.equal(f.sm.stats().dedupEntries, 3);
  const k4 = f.apply({ type: 'put', key: 'a', value: 'again' }, { idempotencyKey: 'k4' });
  t.equal(expectOk(k4, 'put').kv.value, 'k4', 'k4 remembered');
  const k1 = f.apply({ type: 'put', key: 'a', value: 'again' }, { idempotencyKey: 'k1' });
  t.equal(expectOk(k1, 'put').kv.value, 'again', 'k1 forgotten, so applied');
  t.end();
});

t.test('remembered results survive load and restore', (t) => {
  const f = new Feeder();
  const disk = new RecordStore();
  const first = f.apply({ type: 'put', key: 'a', value: '1' }, { idempotencyKey: 'k' });
  disk.write(f.sm.takeMutations());
  for (const copy of [
    KvStateMachine.load(disk.records, f.sm.appliedIndex),
    KvStateMachine.restore(f.sm.snapshot(), f.sm.appliedIndex),
  ]) {
    const g = new Feeder(copy);
    t.strictSame(g.apply({ type: 'put', key: 'a', value: '1' }, { idempotencyKey: 'k' }), first);
    t.equal(g.sm.revision, 1);
  }
  t.end();
});

t.test('retention and size are configurable', (t) => {
  const f = new Feeder({ dedup: { retentionMs: 10 } });
  f.apply({ type: 'put', key: 'a', value: '1' }, { atMs: 0, idempotencyKey: 'k' });
  const retry = f.apply({ type: 'put', key: 'a', value: '1' }, { atMs: 10, idempotencyKey: 'k' });
  t.equal(expectOk(retry, 'put').revision, 2);
  t.throws(() => new KvStateMachine({ dedup: { entriesMax: 0 } }), 'nonsense options are refused');
  t.end();
});
