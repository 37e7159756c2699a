/** The WatchHub: one call per revision with only the matching events, cheap with many watchers. */
import t from 'tap';
import {
  KvStateMachine,
  type RevisionChange,
  WatchHub,
  type WatchListener,
} from '../../src/kv/index.js';
import { Feeder } from './helpers.js';

function recorder(key: string, prefix: boolean) {
  const changes: RevisionChange[] = [];
  const listener: WatchListener = { key, prefix, onChange: (change) => changes.push(change) };
  return { listener, changes };
}

const summary = (changes: RevisionChange[]) =>
  changes.map((c) => [c.revision, c.events.map((e) => `${e.type} ${e.kv.key}`)]);

t.test('a txn touching several keys is one change; filters pick their events', (t) => {
  const f = new Feeder();
  const all = recorder('', true);
  const app = recorder('app/', true);
  const exact = recorder('app/b', false);
  const other = recorder('zzz', false);
  for (const r of [all, app, exact, other]) f.sm.watches.register(r.listener);
  f.put('app/a', '1');
  f.apply({
    type: 'txn',
    compare: [],
    success: [
      { op: 'put', key: 'app/b', value: '1' },
      { op: 'put', key: 'cfg', value: '1' },
      { op: 'delete', key: 'app/a' },
    ],
    failure: [],
  });
  f.put('cfg', '2');
  t.strictSame(summary(all.changes), [
    [1, ['put app/a']],
    [2, ['put app/b', 'put cfg', 'delete app/a']],
    [3, ['put cfg']],
  ]);
  t.strictSame(summary(app.changes), [
    [1, ['put app/a']],
    [2, ['put app/b', 'delete app/a']],
  ]);
  t.strictSame(summary(exact.changes), [[2, ['put app/b']]]);
  t.strictSame(other.changes, []);
  t.end();
});

t.test('events carry prevKv and delete tombstones', (t) => {
  const f = new Feeder();
  const r = recorder('k', false);
  f.sm.watches.register(r.listener);
  f.put('k', '1');
  f.put('k', '2');
  f.apply({ type: 'delete', key: 'k' });
  const [created, updated, deleted] = r.changes.map((c) => c.events[0]!);
  t.equal(created!.prevKv, undefined, 'no prevKv on creation');
  t.match(updated, {
    type: 'put',
    kv: { value: '2', version: 2 },
    prevKv: { value: '1', version: 1 },
  });
  t.strictSame(deleted, {
    type: 'delete',
    kv: { key: 'k', value: '', createRevision: 0, modRevision: 3, version: 0, lease: null },
    prevKv: { key: 'k', value: '2', createRevision: 1, modRevision: 2, version: 2, lease: null },
  });
  t.end();
});

t.test('nothing is delivered for commands that change nothing', (t) => {
  const f = new Feeder();
  const r = recorder('', true);
  f.sm.watches.register(r.listener);
  f.apply({ type: 'delete', key: 'missing' });
  f.apply({ type: 'put', key: 'a', value: '1', prevRevision: 9 });
  f.apply({ type: 'txn', compare: [], success: [{ op: 'get', key: 'a' }], failure: [] });
  f.applyBytes(new Uint8Array([1, 2, 3]));
  t.strictSame(r.changes, []);
  t.end();
});

t.test('unregister, and listeners that throw', (t) => {
  const errors: unknown[] = [];
  const hub = new WatchHub({ onListenerError: (error) => errors.push(error) });
  const f = new Feeder({ watchHub: hub });
  const kept = recorder('k', false);
  const dropped = recorder('k', true);
  const broken: WatchListener = {
    key: 'k',
    prefix: false,
    onChange: () => {
      throw new Error('boom');
    },
  };
  hub.register(kept.listener);
  const unregister = hub.register(dropped.listener);
  hub.register(broken);
  t.equal(hub.size, 3);
  f.put('k', '1');
  unregister();
  unregister();
  f.put('k', '2');
  t.equal(kept.changes.length, 2);
  t.equal(dropped.changes.length, 1);
  t.equal(errors.length, 1, 'the error is reported once');
  t.equal(
    hub.isRegistered(broken),
    false,
    'a throwing listener is dropped: it would miss revisions',
  );
  t.equal(hub.size, 1);
  t.end();
});

t.test('register then replay history: no gap, no duplicate', (t) => {
  const f = new Feeder();
  f.put('k', '1');
  f.put('k', '2');
  const r = recorder('k', false);
  // What the server does for fromRevision=1: register, then read history up to now, synchronously.
  f.sm.watches.register(r.listener);
  const history = f.sm.changes(1, r.listener);
  t.ok(history.ok);
  const seen = [...(history.ok ? history.changes : []), ...r.changes];
  f.put('k', '3');
  seen.push(...r.changes);
  t.strictSame(
    seen.map((c) => c.revision),
    [1, 2, 3],
  );
  t.end();
});

t.test('the hub survives a snapshot install when passed to restore()', (t) => {
  const f = new Feeder();
  const r = recorder('', true);
  f.sm.watches.register(r.listener);
  f.put('a', '1');
  const restored = new Feeder(
    KvStateMachine.restore(f.sm.snapshot(), f.sm.appliedIndex, { watchHub: f.sm.watches }),
  );
  restored.put('b', '1');
  t.strictSame(summary(r.changes), [
    [1, ['put a']],
    [2, ['put b']],
  ]);
  t.end();
});

t.test('thousands of exact-key watchers cost a lookup per event', (t) => {
  const f = new Feeder();
  let calls = 0;
  for (let i = 0; i < 10_000; i++) {
    f.sm.watches.register({ key: `key/${i}`, prefix: false, onChange: () => calls++ });
  }
  for (let i = 0; i < 20; i++)
    f.sm.watches.register({ key: `key/${i}`, prefix: true, onChange: () => calls++ });
  const started = performance.now();
  for (let i = 0; i < 5_000; i++) f.put(`key/${i}`, 'v');
  const elapsedMs = performance.now() - started;
  let expected = 5_000; // each put has its exact watcher
  for (let w = 0; w < 20; w++) {
    for (let i = 0; i < 5_000; i++) if (`key/${i}`.startsWith(`key/${w}`)) expected++;
  }
  t.equal(calls, expected, 'exactly the matching calls');
  t.ok(elapsedMs < 3_000, `5000 puts with 10020 watchers took ${elapsedMs.toFixed(0)} ms`);
  t.end();
});
