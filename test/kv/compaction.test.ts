/** Reads at past revisions, compaction, and its errors. */
import t from 'tap';
import { KvStateMachine } from '../../src/kv/index.js';
import { expectOk, Feeder, RecordStore } from './helpers.js';

/** a: put@1, put@2, deleted@3; b: put@4; a: put@5 (new generation); c: put@6, deleted@7. */
function history(): Feeder {
  const f = new Feeder();
  f.put('a', 'a1');
  f.put('a', 'a2');
  f.apply({ type: 'delete', key: 'a' });
  f.put('b', 'b1');
  f.put('a', 'a3');
  f.put('c', 'c1');
  f.apply({ type: 'delete', key: 'c' });
  return f;
}

const valueAt = (f: Feeder, key: string, revision: number) => {
  const got = f.sm.get(key, { revision });
  return got.ok ? (got.kv?.value ?? null) : got.code;
};

t.test('reads at past revisions see the state of that revision', (t) => {
  const f = history();
  t.strictSame(
    [1, 2, 3, 4, 5, 6, 7].map((r) => valueAt(f, 'a', r)),
    ['a1', 'a2', null, null, 'a3', 'a3', 'a3'],
  );
  const a = f.sm.get('a');
  t.match(a, { ok: true, revision: 7, kv: { createRevision: 5, modRevision: 5, version: 1 } });
  t.equal(valueAt(f, 'a', 8), 'future_revision');
  const range = f.sm.range({ revision: 6 });
  t.strictSame(range.ok && range.kvs.map((kv) => kv.key), ['a', 'b', 'c']);
  t.end();
});

t.test('compaction keeps the latest version at or before its revision', (t) => {
  const f = history();
  t.strictSame(f.apply({ type: 'compact', revision: 4 }), {
    ok: true,
    op: 'compact',
    revision: 7,
    compactRevision: 4,
  });
  t.equal(f.sm.compactRevision, 4);
  t.match(f.sm.get('a', { revision: 3 }), { ok: false, code: 'compacted', compactRevision: 4 });
  t.equal(valueAt(f, 'a', 4), null, 'a was deleted at 3: its tombstone and history are gone');
  t.equal(valueAt(f, 'b', 4), 'b1');
  t.equal(valueAt(f, 'a', 5), 'a3');
  t.equal(valueAt(f, 'c', 6), 'c1', 'history after the compaction point stays');
  const before = f.sm.stats().keysWithHistory;
  f.apply({ type: 'compact', revision: 7 });
  t.equal(before, 3);
  t.equal(f.sm.stats().keysWithHistory, 3, 'c, deleted at 7, stays for a replay of 7');
  t.strictSame([valueAt(f, 'a', 7), valueAt(f, 'b', 7), valueAt(f, 'c', 7)], ['a3', 'b1', null]);
  f.put('d', 'd1');
  f.apply({ type: 'compact', revision: 8 });
  t.equal(f.sm.stats().keysWithHistory, 3, 'the next compaction drops c (deleted at 7)');
  t.equal(valueAt(f, 'c', 8), null);
  t.end();
});

t.test('compact errors', (t) => {
  const f = history();
  t.match(f.apply({ type: 'compact', revision: 8 }), {
    ok: false,
    code: 'future_revision',
    revision: 7,
  });
  expectOk(f.apply({ type: 'compact', revision: 5 }), 'compact');
  t.match(f.apply({ type: 'compact', revision: 5 }), {
    ok: false,
    code: 'compacted',
    compactRevision: 5,
  });
  t.match(f.apply({ type: 'compact', revision: 2 }), { ok: false, code: 'compacted' });
  t.match(f.apply({ type: 'compact', revision: 0 }), { ok: false, code: 'compacted' });
  t.end();
});

t.test('watch history before the compaction point is gone', (t) => {
  const f = history();
  f.apply({ type: 'compact', revision: 4 });
  t.match(f.sm.changes(3, { key: '', prefix: true }), {
    ok: false,
    code: 'compacted',
    compactRevision: 4,
  });
  t.match(f.sm.changes(1, { key: 'a', prefix: false }), { ok: false, code: 'compacted' });
  const changes = f.sm.changes(5, { key: '', prefix: true });
  t.strictSame(
    changes.ok &&
      changes.changes.map((c) => [c.revision, c.events[0]!.type, c.events[0]!.prevKv?.value]),
    [
      [5, 'put', undefined],
      [6, 'put', undefined],
      [7, 'delete', 'c1'],
    ],
  );
  const upTo = f.sm.changes(5, { key: '', prefix: true }, 6);
  t.strictSame(
    upTo.ok && upTo.changes.map((c) => c.revision),
    [5, 6],
    'toRevision bounds a replay',
  );
  t.end();
});

/** What a replay from `from` shows: [revision, type, key, value, prevKv's value] per event. */
function replay(f: Feeder, from: number, key = '', prefix = true) {
  const r = f.sm.changes(from, { key, prefix });
  if (!r.ok) return r.code;
  return r.changes.flatMap((c) =>
    c.events.map((e) => [c.revision, e.type, e.kv.key, e.kv.value, e.prevKv?.value]),
  );
}

t.test('a watch from the compaction revision replays that revision, deletes included', (t) => {
  // API.md: POST /v1/compact {"revision": N} drops history BEFORE N.
  const f = history();
  const uncompacted = [replay(f, 3), replay(f, 7), replay(f, 3, 'a', false)];
  f.apply({ type: 'compact', revision: 3 });
  t.strictSame(
    replay(f, 3),
    [
      [3, 'delete', 'a', '', 'a2'],
      [4, 'put', 'b', 'b1', undefined],
      [5, 'put', 'a', 'a3', undefined],
      [6, 'put', 'c', 'c1', undefined],
      [7, 'delete', 'c', '', 'c1'],
    ],
    "revision 3's delete of a, with the value it deleted",
  );
  t.strictSame(replay(f, 3), uncompacted[0], 'the same replay as before the compaction');
  t.strictSame(replay(f, 3, 'a', false), uncompacted[2], 'one key too');
  t.equal(replay(f, 2), 'compacted', 'the revision before it is gone');
  t.equal(valueAt(f, 'a', 3), null, 'a read at 3 sees a deleted');
  t.equal(valueAt(f, 'a', 2), 'compacted');

  // Compacting at the last revision keeps its delete and what it deleted, until the next compaction.
  f.apply({ type: 'compact', revision: 7 });
  t.strictSame(replay(f, 7), uncompacted[1], 'a watch from 7 still sees c deleted');
  t.strictSame(replay(f, 7, 'c', false), [[7, 'delete', 'c', '', 'c1']]);
  t.equal(replay(f, 6), 'compacted');
  t.strictSame(f.sm.range({ revision: 7 }), f.sm.range({}), 'a read at 7 is the current state');
  f.put('a', 'a4');
  f.apply({ type: 'compact', revision: 8 });
  t.strictSame(replay(f, 8), [[8, 'put', 'a', 'a4', 'a3']], 'prevKv across the compaction');
  t.equal(replay(f, 7), 'compacted', 'the next compaction drops revision 7');
  t.equal(f.sm.stats().keysWithHistory, 2, 'and c, deleted at 7, with it');
  t.end();
});

t.test('a prefix delete at the compaction revision replays whole', (t) => {
  const f = new Feeder();
  for (const key of ['p/a', 'p/b', 'p/c']) f.put(key, `${key}1`);
  f.apply({ type: 'delete', key: 'p/', prefix: true });
  const deletedAt = f.sm.revision;
  const before = replay(f, deletedAt);
  f.apply({ type: 'compact', revision: deletedAt });
  t.strictSame(replay(f, deletedAt), before);
  t.strictSame(
    (replay(f, deletedAt) as unknown[][]).map((e) => [e[1], e[2], e[4]]),
    [
      ['delete', 'p/a', 'p/a1'],
      ['delete', 'p/b', 'p/b1'],
      ['delete', 'p/c', 'p/c1'],
    ],
  );
  t.end();
});

t.test('the read revision 0 means the current one; bad numbers are invalid_request', (t) => {
  const f = history();
  f.apply({ type: 'compact', revision: 3 });
  t.equal(valueAt(f, 'a', 0), 'a3');
  t.match(f.sm.get('a', { revision: -1 }), { ok: false, code: 'invalid_request' });
  t.match(f.sm.range({ revision: 1.5 }), { ok: false, code: 'invalid_request' });
  t.match(f.sm.range({ limit: -1 }), { ok: false, code: 'invalid_request' });
  t.match(f.sm.changes(-1, { key: '', prefix: true }), { ok: false, code: 'invalid_request' });
  t.end();
});

t.test('range: prefix, after, limit, keysOnly', (t) => {
  const f = new Feeder();
  for (const key of ['a', 'a/1', 'a/2', 'a/3', 'b', '\u{1F600}', '\uE000']) f.put(key, `v-${key}`);
  const keys = (options: Parameters<typeof f.sm.range>[0]) => {
    const r = f.sm.range(options);
    return r.ok ? [r.kvs.map((kv) => kv.key), r.more] : r.code;
  };
  t.strictSame(
    keys({}),
    [['a', 'a/1', 'a/2', 'a/3', 'b', '\uE000', '\u{1F600}'], false],
    'UTF-8 byte order',
  );
  t.strictSame(keys({ prefix: 'a/' }), [['a/1', 'a/2', 'a/3'], false]);
  t.strictSame(keys({ prefix: 'a/', limit: 2 }), [['a/1', 'a/2'], true]);
  t.strictSame(keys({ prefix: 'a/', limit: 2, after: 'a/2' }), [['a/3'], false]);
  t.strictSame(
    keys({ prefix: 'a/', limit: 3 }),
    [['a/1', 'a/2', 'a/3'], false],
    'exactly limit: no more',
  );
  t.strictSame(
    keys({ prefix: 'a/', after: 'a' }),
    [['a/1', 'a/2', 'a/3'], false],
    'after before the prefix',
  );
  t.strictSame(keys({ prefix: 'a/', after: 'z' }), [[], false]);
  t.strictSame(keys({ after: 'b' }), [['\uE000', '\u{1F600}'], false]);
  const keysOnly = f.sm.range({ prefix: 'b', keysOnly: true });
  t.strictSame(keysOnly.ok && keysOnly.kvs[0], {
    key: 'b',
    value: '',
    createRevision: 5,
    modRevision: 5,
    version: 1,
    lease: null,
  });
  t.end();
});

t.test(
  'compacted history reloaded or restored keeps replaying and compacting like the original',
  (t) => {
    // Keys overwritten across several compactions, a txn writing two keys in one
    // revision, and a delete: what is left below compactRevision is one version per
    // key (and the values the compaction revision replaced), which a reload or a
    // restore must not index as replayable history.
    const f = new Feeder();
    const disk = new RecordStore();
    const step = (cmd: Parameters<Feeder['apply']>[0]) => {
      f.apply(cmd);
      disk.write(f.sm.takeMutations());
    };
    for (let round = 0; round < 3; round++) {
      for (const key of ['p/a', 'p/b', 'q/c']) step({ type: 'put', key, value: `${key}@${round}` });
      step({
        type: 'txn',
        compare: [],
        success: [
          { op: 'put', key: 'p/a', value: `txn@${round}` },
          { op: 'put', key: 'p/d', value: `txn@${round}` },
        ],
        failure: [],
      });
      step({ type: 'compact', revision: f.sm.revision - 2 });
    }
    step({ type: 'delete', key: 'p/b' });
    // Compacted at the delete: its tombstone and the value it deleted stay for a replay.
    step({ type: 'compact', revision: f.sm.revision });
    const copies = [
      new Feeder(KvStateMachine.load(disk.records, f.sm.appliedIndex)),
      new Feeder(KvStateMachine.restore(f.sm.snapshot(), f.sm.appliedIndex)),
    ];
    const all = { key: '', prefix: true };
    for (const copy of [f, ...copies]) {
      t.match(copy.sm.changes(f.sm.compactRevision - 1, all), { ok: false, code: 'compacted' });
      t.equal(copy.sm.stats().keysWithHistory, 4);
    }
    const observe = (x: Feeder) => [
      x.sm.changes(x.sm.compactRevision, all),
      x.sm.changes(x.sm.compactRevision, { key: 'p/a', prefix: false }),
      x.sm.changes(x.sm.compactRevision + 1, all),
      x.sm.changes(x.sm.compactRevision + 1, { key: 'p/a', prefix: false }),
      x.sm.range({ revision: x.sm.compactRevision }),
      x.sm.range({}),
      x.sm.get('p/a', { revision: x.sm.compactRevision }),
      x.sm.stats().keysWithHistory,
    ];
    for (const x of [f, ...copies]) {
      x.put('p/a', 'after');
      x.apply({ type: 'compact', revision: x.sm.revision - 1 });
      x.put('p/e', 'new');
    }
    for (const copy of copies) {
      t.strictSame(observe(copy), observe(f));
      t.same(copy.sm.snapshot(), f.sm.snapshot(), 'equal states give equal snapshots');
    }
    t.end();
  },
);
