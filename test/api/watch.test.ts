/**
 * API.md "Watch": GET /v1/watch/{key} as Server-Sent Events, read with fetch
 * over real HTTP (127.0.0.1) from one real node.
 */
import t from 'tap';
import {
  assertError,
  assertKv,
  eventually,
  http,
  inject,
  kvPath,
  openSse,
  type SingleNode,
  type SseEvent,
  type SseStream,
  startSingleNode,
} from './helpers.js';

let n: SingleNode;
/** Opened first and never written to: the last test waits for its progress event. */
let idle: SseStream;
let idleOpenedAt = 0;
const streams: SseStream[] = [];

t.before(async () => {
  n = await startSingleNode();
  idle = await openSse(n.url, '/v1/watch/w-idle/never-written');
  idleOpenedAt = Date.now();
});
t.teardown(async () => {
  idle?.close();
  for (const s of streams) s.close();
  await n?.close();
});

async function watch(path: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const s = await openSse(n.url, path, headers);
  streams.push(s);
  return s;
}
const put = (key: string, value: string) => inject(n.app, 'PUT', kvPath(key), { body: { value } });
const del = (key: string, query = '') => inject(n.app, 'DELETE', kvPath(key, query));
const txn = (body: unknown) => inject(n.app, 'POST', '/v1/txn', { body });
async function currentRevision(): Promise<number> {
  return (await inject(n.app, 'GET', '/v1/status')).body.revision as number;
}
const revisions = (events: SseEvent[]) => events.map((e) => e.data.revision as number);

t.test('one change event per revision, with id and API.md data', async (t) => {
  const s = await watch('/v1/watch/w1/key');
  t.equal(s.status, 200);
  t.match(s.headers.get('content-type'), /^text\/event-stream/);
  const a = await put('w1/key', 'a');
  await put('w1/other', 'not watched');
  await put('w1/key2', 'not watched either');
  const b = await put('w1/key', 'b');
  const d = await del('w1/key');
  const [e1, e2, e3] = await s.changes(3);
  for (const e of [e1!, e2!, e3!]) {
    t.equal(e.event, 'change');
    t.equal(e.id, String(e.data.revision), 'id: is the revision');
    t.match(e.raw, /^event: change\nid: \d+\ndata: \{.*\}$/, 'SSE framing as in API.md');
    t.strictSame(Object.keys(e.data).sort(), ['events', 'revision']);
    t.equal(e.data.events.length, 1);
    t.notOk('prevKv' in e.data.events[0], 'no prevKv unless asked');
  }
  t.strictSame(revisions([e1!, e2!, e3!]), [a.body.revision, b.body.revision, d.body.revision]);
  t.equal(e1!.data.events[0].type, 'put');
  assertKv(t, e1!.data.events[0].kv, { key: 'w1/key', value: 'a', version: 1 });
  assertKv(t, e2!.data.events[0].kv, { key: 'w1/key', value: 'b', version: 2 });
  t.equal(e3!.data.events[0].type, 'delete');
  t.match(e3!.data.events[0].kv, { key: 'w1/key', modRevision: d.body.revision });
  t.ok(await s.quietFor(200), 'nothing else: other keys are not this watch');
});

t.test('prefix watch: a txn is one event, never split; other keys are left out', async (t) => {
  const s = await watch('/v1/watch/w2/?prefix=true');
  const r = await txn({
    success: [
      { op: 'put', key: 'w2/a', value: '1' },
      { op: 'put', key: 'w2/b', value: '2' },
      { op: 'put', key: 'w2-outside', value: '3' },
    ],
  });
  await put('elsewhere', 'x');
  const p = await put('w2/c/deep', '4');
  const rm = await del('w2/', '?prefix=true');
  const events = await s.changes(3);
  t.strictSame(revisions(events), [r.body.revision, p.body.revision, rm.body.revision]);
  t.strictSame(
    events[0]!.data.events.map((e: { type: string; kv: { key: string } }) => [e.type, e.kv.key]),
    [
      ['put', 'w2/a'],
      ['put', 'w2/b'],
    ],
    'both puts of the txn in one event, without the key outside the prefix',
  );
  t.strictSame(
    events[2]!.data.events.map((e: { type: string; kv: { key: string } }) => [e.type, e.kv.key]),
    [
      ['delete', 'w2/a'],
      ['delete', 'w2/b'],
      ['delete', 'w2/c/deep'],
    ],
    'a prefix delete is one event',
  );
  t.ok(await s.quietFor(200));
});

t.test('prevKv=true adds the previous version to puts and deletes', async (t) => {
  const s = await watch('/v1/watch/w3?prevKv=true');
  await put('w3', 'first');
  await put('w3', 'second');
  await del('w3');
  const [create, update, remove] = await s.changes(3);
  t.notOk('prevKv' in create!.data.events[0], 'a creation has no previous version');
  assertKv(t, update!.data.events[0].prevKv, { key: 'w3', value: 'first' }, 'prevKv of the update');
  t.equal(update!.data.events[0].kv.value, 'second');
  assertKv(
    t,
    remove!.data.events[0].prevKv,
    { key: 'w3', value: 'second' },
    'prevKv of the delete',
  );
});

t.test('fromRevision replays history, then live changes follow without a gap', async (t) => {
  const w = [];
  for (let i = 0; i < 4; i++) w.push(await put(`w4/${i}`, String(i)));
  const from = w[1]!.body.revision;
  const s = await watch(`/v1/watch/w4/?prefix=true&fromRevision=${from}`);
  const replay = await s.changes(3);
  t.strictSame(
    revisions(replay),
    w.slice(1).map((r) => r.body.revision),
  );
  const live = await put('w4/live', 'x');
  const [next] = await s.changes(1);
  t.equal(next!.data.revision, live.body.revision);

  // A start in the future waits for it.
  const future = await watch(`/v1/watch/w4/?prefix=true&fromRevision=${live.body.revision + 2}`);
  await put('w4/skipped', 'x');
  const wanted = await put('w4/wanted', 'x');
  const [first] = await future.changes(1);
  t.equal(first!.data.revision, wanted.body.revision, 'revisions before fromRevision are skipped');
});

t.test('Last-Event-ID resumes after R without gap or duplicate', async (t) => {
  const first = await watch('/v1/watch/w5/?prefix=true');
  const written: number[] = [];
  for (let i = 0; i < 3; i++) written.push((await put(`w5/${i}`, String(i))).body.revision);
  const seen = await first.changes(2);
  first.close();
  const lastId = seen[seen.length - 1]!.id!;
  // Written while nobody was watching.
  for (let i = 3; i < 5; i++) written.push((await put(`w5/${i}`, String(i))).body.revision);
  const resumed = await watch('/v1/watch/w5/?prefix=true', { 'last-event-id': lastId });
  t.equal(resumed.status, 200);
  const rest = await resumed.changes(3);
  t.strictSame(
    [...revisions(seen), ...revisions(rest)],
    written,
    'every revision exactly once across the two streams',
  );
  t.ok(await resumed.quietFor(200), 'and nothing more');

  // Last-Event-ID wins over fromRevision (it is the browser's resume mechanism).
  const both = await watch(`/v1/watch/w5/?prefix=true&fromRevision=${written[0]}`, {
    'last-event-id': String(written[3]),
  });
  const [after] = await both.changes(1);
  t.equal(after!.data.revision, written[4]);
});

t.test('many concurrent writes: in revision order, no gaps, no duplicates', async (t) => {
  const a = await watch('/v1/watch/w6/?prefix=true');
  const b = await watch('/v1/watch/w6/?prefix=true');
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) => put(`w6/${i % 7}`, String(i))),
  );
  const expected = results.map((r) => r.body.revision as number).sort((x, y) => x - y);
  const fromA = revisions(await a.changes(40, 10_000));
  const fromB = revisions(await b.changes(40, 10_000));
  t.strictSame(fromA, expected);
  t.strictSame(fromB, expected, 'every watcher sees the same sequence');
});

t.test('watching everything and keys that need URL encoding', async (t) => {
  const all = await watch('/v1/watch?prefix=true');
  const odd = await watch(`/v1/watch/${encodeURIComponent('w7/ünï cödé?&#')}`);
  const r = await put('w7/ünï cödé?&#', 'x');
  const [e] = await odd.changes(1);
  t.equal(e!.data.events[0].kv.key, 'w7/ünï cödé?&#');
  const [any] = await all.changes(1);
  t.equal(any!.data.revision, r.body.revision);
});

t.test('a start below the compaction point: compacted event, then the stream ends', async (t) => {
  const a = await put('w8', '1');
  await put('w8', '2');
  const c = await put('w8', '3');
  const compact = await inject(n.app, 'POST', '/v1/compact', {
    body: { revision: c.body.revision },
  });
  t.equal(compact.status, 200);
  const s = await watch(`/v1/watch/w8?fromRevision=${a.body.revision}`);
  t.equal(s.status, 200);
  const e = await s.next();
  t.equal(e?.event, 'compacted');
  t.strictSame(e?.data, { compactRevision: c.body.revision });
  t.equal(await s.next(), undefined, 'the stream ends after the compacted event');

  const resumed = await watch('/v1/watch/w8', { 'last-event-id': String(a.body.revision) });
  const e2 = await resumed.next();
  t.equal(e2?.event, 'compacted', 'Last-Event-ID below the compaction point too');
  t.equal(await resumed.next(), undefined);

  const ok = await watch(`/v1/watch/w8?fromRevision=${c.body.revision + 1}`);
  const d = await put('w8', '4');
  const [live] = await ok.changes(1);
  t.equal(live!.data.revision, d.body.revision, 'a start after the compaction point works');
});

t.test('a watch from the compaction revision replays it, deletes included', async (t) => {
  const app = n.app;
  // API.md: POST /v1/compact {"revision": N} drops the history BEFORE N.
  await put('w10/a', 'a1');
  await put('w10/b', 'b1');
  const d = await del('w10/', '?prefix=true');
  t.equal(d.body.deleted, 2);
  const at = d.body.revision as number;
  const compact = await inject(app, 'POST', '/v1/compact', { body: { revision: at } });
  t.equal(compact.status, 200);

  const expected = [
    { type: 'delete', key: 'w10/a', prev: 'a1' },
    { type: 'delete', key: 'w10/b', prev: 'b1' },
  ];
  const seen = (e: SseEvent | undefined) =>
    (
      (e?.data.events ?? []) as { type: string; kv: { key: string }; prevKv?: { value: string } }[]
    ).map((x) => ({ type: x.type, key: x.kv.key, prev: x.prevKv?.value }));
  const s = await watch(`/v1/watch/w10/?prefix=true&fromRevision=${at}&prevKv=true`);
  const [e] = await s.changes(1);
  t.equal(e?.event, 'change');
  t.equal(e?.data.revision, at, `revision ${at} replayed`);
  t.strictSame(seen(e), expected, 'both deletes, with the values they deleted');

  const resumed = await watch('/v1/watch/w10/?prefix=true&prevKv=true', {
    'last-event-id': String(at - 1),
  });
  const [r] = await resumed.changes(1);
  t.strictSame([r?.data.revision, seen(r)], [at, expected], 'Last-Event-ID N−1 resumes at N');

  const one = await watch(`/v1/watch/w10/a?fromRevision=${at}`);
  const [o] = await one.changes(1);
  t.strictSame([o?.data.revision, o?.data.events[0].type], [at, 'delete'], 'one key too');

  const atN = await inject(app, 'GET', kvPath('w10/a', `?revision=${at}`));
  assertError(t, atN, 404, 'key_not_found', 'a read at N sees the key deleted');
  const range = await inject(app, 'GET', `/v1/kv?prefix=w10/&revision=${at}`);
  t.strictSame([range.status, range.body.kvs], [200, []], 'a range at N works');
  const before = await inject(app, 'GET', kvPath('w10/a', `?revision=${at - 1}`));
  assertError(t, before, 410, 'compacted', 'a read at N−1 is compacted');
  const old = await watch(`/v1/watch/w10/?prefix=true&fromRevision=${at - 1}`);
  t.equal((await old.next())?.event, 'compacted', 'a watch from N−1 is compacted');
});

t.test('a client that goes away releases its watch on the server', async (t) => {
  const watchers = () => n.cluster.nodes[0]!.node.store.stats().watchers;
  const before = watchers();
  const s = await openSse(n.url, '/v1/watch/w9/?prefix=true');
  t.equal(watchers(), before + 1, 'the watch is registered');
  const w = await put('w9/a', 'x');
  const [e] = await s.changes(1);
  t.equal(e!.data.revision, w.body.revision);
  s.close();
  await eventually('the server to drop the watch', () =>
    watchers() === before ? true : undefined,
  );
  t.equal(watchers(), before, 'and is gone once the client disconnects');
});

t.test('bad watch requests get a JSON error, not a stream', async (t) => {
  const cases: [string, Record<string, string>, number, string][] = [
    ['/v1/watch', {}, 400, 'empty key without prefix'],
    ['/v1/watch/', {}, 400, 'empty key (trailing slash) without prefix'],
    ['/v1/watch/x?fromRevision=abc', {}, 400, 'fromRevision=abc'],
    ['/v1/watch/x?fromRevision=-1', {}, 400, 'fromRevision=-1'],
    ['/v1/watch/x?fromRevision=0', {}, 400, 'fromRevision=0'],
    ['/v1/watch/x?prefix=maybe', {}, 400, 'prefix=maybe'],
    ['/v1/watch/x?prevKv=yes', {}, 400, 'prevKv=yes'],
    ['/v1/watch/x?bogus=1', {}, 400, 'unknown parameter'],
    ['/v1/watch/x', { 'last-event-id': 'abc' }, 400, 'Last-Event-ID abc'],
    ['/v1/watch/x', { 'last-event-id': '-3' }, 400, 'Last-Event-ID -3'],
    [
      '/v1/watch/x?fromRevision=abc',
      { 'last-event-id': '3' },
      400,
      'bad fromRevision with Last-Event-ID',
    ],
  ];
  for (const [path, headers, status, what] of cases) {
    const r = await http(n.url, 'GET', path, { headers, timeoutMs: 5000 });
    assertError(t, r, status, 'invalid_request', what);
  }
});

t.test('an idle watch gets progress events (bounded wait: 12 s)', async (t) => {
  const deadline = idleOpenedAt + 12_000;
  const e = await idle.next(Math.max(1, deadline - Date.now()));
  t.equal(e?.event, 'progress');
  t.strictSame(Object.keys(e?.data ?? {}), ['revision']);
  t.ok(Number.isSafeInteger(e?.data.revision), 'progress carries a revision');
  const now = await currentRevision();
  t.ok(e!.data.revision <= now && e!.data.revision > 0, 'a revision the store has reached');
});

t.test(
  'a watch on every key shows user keys only, and reserved keys cannot be watched',
  async (t) => {
    const s = await watch('/v1/watch?prefix=true');
    const lease = (await inject(n.app, 'POST', '/v1/leases', { body: { ttl: 30 } })).body
      .id as string;
    // The registry entry lives under U+0000 in the same keyspace: its revision is hidden.
    const reg = await inject(n.app, 'PUT', '/v1/registry/w-all-svc', {
      body: { value: 'x', lease },
    });
    t.equal(reg.status, 201);
    const mark = await put('w-all/mark', 'after the registry entry');
    const [e] = await s.changes(1);
    t.equal(e!.data.revision, mark.body.revision, 'the next event is the user put');
    t.same(
      (e!.data.events as { kv: { key: string } }[]).map((x) => x.kv.key),
      ['w-all/mark'],
    );
    const refused = await http(n.url, 'GET', '/v1/watch/%00registry/?prefix=true');
    assertError(t, refused, 400, 'invalid_request');
    await inject(n.app, 'DELETE', `/v1/leases/${lease}`);
  },
);
