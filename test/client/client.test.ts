/**
 * Every Client method against a real 3-node in-process cluster.
 */
import t from 'tap';
import { Client, isNotFound, RaftkvError, type WatchResponse } from '../../src/client/index.js';
import { decodeBackup } from '../../src/server/backup.js';
import { startCluster } from '../integration/helpers.js';

const cluster = await startCluster(3);
t.teardown(() => cluster.close());
await cluster.waitForLeader();
const urls = [0, 1, 2].map((i) => cluster.url(i));
const client = new Client({ endpoints: urls, retryAfterMaxMs: 200 });
t.teardown(() => client.close());

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as RaftkvError,
  );

t.test('put and get, at a revision, and read-your-writes on every node', async (t) => {
  const first = await client.put('kv/a', '1');
  t.equal(first.kv.key, 'kv/a');
  t.equal(first.kv.value, '1');
  t.equal(first.kv.version, 1);
  t.equal(first.kv.createRevision, first.revision);
  t.equal(first.kv.modRevision, first.revision);
  t.equal(first.kv.lease, null);
  t.equal(first.prevKv, null);
  const second = await client.put('kv/a', '2');
  t.equal(second.revision, first.revision + 1);
  t.equal(second.prevKv?.value, '1');
  t.equal(second.kv.version, 2);

  const got = await client.get('kv/a');
  t.equal(got.kv.value, '2');
  t.ok(got.revision >= second.revision);
  t.equal((await client.get('kv/a', { revision: first.revision })).kv.value, '1', 'old revision');

  for (const url of urls) {
    const one = new Client({ endpoints: [url] });
    const r = await one.get('kv/a', { consistency: 'serializable', minRevision: second.revision });
    t.equal(r.kv.value, '2', `serializable + minRevision on ${url}`);
    await one.close();
  }
});

t.test('a missing key is key_not_found with the revision', async (t) => {
  const err = await errorOf(client.get('kv/missing'));
  t.ok(err instanceof RaftkvError);
  t.ok(isNotFound(err));
  t.match(err, { code: 'key_not_found', status: 404 });
  t.type(err?.revision, 'number');
});

t.test('keys with slashes, spaces, ?, #, %, dots and non-ASCII round-trip', async (t) => {
  const keys = ['odd/a b', 'odd/q?x=1', 'odd/h#f', 'odd/100%', 'odd/./..', 'odd//x/', 'odd/ü€'];
  for (const key of keys) {
    const put = await client.put(key, `v:${key}`);
    t.equal(put.kv.key, key);
    t.equal((await client.get(key)).kv.value, `v:${key}`, key);
  }
  const listed = await client.list({ prefix: 'odd/' });
  t.strictSame(
    listed.kvs.map((kv) => kv.key),
    [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
  );
  t.equal((await client.delete('odd/', { prefix: true })).deleted, keys.length);
});

t.test('compare-and-swap on put: prevRevision and prevValue', async (t) => {
  const created = await client.put('cas/k', 'a', { prevRevision: 0 });
  t.equal(created.kv.version, 1, 'create-only put');
  const again = await errorOf(client.put('cas/k', 'b', { prevRevision: 0 }));
  t.match(again, { code: 'compare_failed', status: 409 });
  t.equal(again?.kv?.value, 'a', 'the current version comes with the error');
  t.type(again?.revision, 'number');

  const swapped = await client.put('cas/k', 'b', { prevRevision: created.kv.modRevision });
  t.equal(swapped.kv.value, 'b');
  const stale = await errorOf(client.put('cas/k', 'c', { prevRevision: created.kv.modRevision }));
  t.match(stale, { code: 'compare_failed' });
  t.match(await errorOf(client.put('cas/k', 'c', { prevValue: 'a' })), {
    code: 'compare_failed',
  });
  t.equal((await client.put('cas/k', 'c', { prevValue: 'b' })).kv.value, 'c');
  const absent = await errorOf(client.put('cas/none', 'x', { prevValue: 'y' }));
  t.match(absent, { code: 'compare_failed', kv: null });
});

t.test('list: prefix, limit and after, keysOnly, revision, listAll', async (t) => {
  const puts = [];
  for (const k of ['b', 'a', 'd', 'c', 'e']) puts.push(await client.put(`ls/${k}`, k));
  const all = await client.list({ prefix: 'ls/' });
  t.strictSame(
    all.kvs.map((kv) => kv.value),
    ['a', 'b', 'c', 'd', 'e'],
  );
  t.equal(all.more, false);
  const page1 = await client.list({ prefix: 'ls/', limit: 2 });
  t.strictSame(
    page1.kvs.map((kv) => kv.key),
    ['ls/a', 'ls/b'],
  );
  t.equal(page1.more, true);
  const page2 = await client.list({ prefix: 'ls/', limit: 2, after: 'ls/b' });
  t.strictSame(
    page2.kvs.map((kv) => kv.key),
    ['ls/c', 'ls/d'],
  );
  const keysOnly = await client.list({ prefix: 'ls/', keysOnly: true });
  t.ok(
    keysOnly.kvs.every((kv) => kv.value === ''),
    'no values',
  );
  const before = await client.list({ prefix: 'ls/', revision: puts[1]!.revision });
  t.strictSame(
    before.kvs.map((kv) => kv.key),
    ['ls/a', 'ls/b'],
    'as of an old revision',
  );
  const serializable = await client.list({ prefix: 'ls/', consistency: 'serializable' });
  t.ok(serializable.kvs.length <= 5);
  const streamed = [];
  for await (const kv of client.listAll({ prefix: 'ls/', pageSize: 2 })) streamed.push(kv.key);
  t.strictSame(streamed, ['ls/a', 'ls/b', 'ls/c', 'ls/d', 'ls/e']);
  const everything = await client.list({});
  t.ok(everything.kvs.length >= 5, 'no prefix lists every key');
});

t.test('delete: one key, a prefix, a guard', async (t) => {
  await client.put('del/a', '1');
  await client.put('del/b', '2');
  const put = await client.put('del/c', '3');
  const one = await client.delete('del/a');
  t.equal(one.deleted, 1);
  t.equal(one.prevKvs[0]?.value, '1');
  t.equal((await client.delete('del/a')).deleted, 0, 'deleting a missing key deletes nothing');
  t.match(await errorOf(client.delete('del/c', { prevRevision: put.revision + 100 })), {
    code: 'compare_failed',
  });
  t.equal((await client.delete('del/c', { prevRevision: put.revision })).deleted, 1);
  const prefix = await client.delete('del/', { prefix: true });
  t.equal(prefix.deleted, 1);
  t.strictSame(
    prefix.prevKvs.map((kv) => kv.key),
    ['del/b'],
  );
  t.equal((await client.list({ prefix: 'del/' })).kvs.length, 0);
});

t.test('txn: the branch that ran, atomically in one revision', async (t) => {
  await client.put('txn/x', '1');
  const ok = await client.txn({
    compare: [{ key: 'txn/x', target: 'value', op: '==', value: '1' }],
    success: [
      { op: 'put', key: 'txn/y', value: 'y' },
      { op: 'put', key: 'txn/z', value: 'z' },
      { op: 'get', key: 'txn/', prefix: true },
      { op: 'delete', key: 'txn/x' },
    ],
    failure: [{ op: 'put', key: 'txn/failed', value: '1' }],
  });
  t.equal(ok.succeeded, true);
  t.equal(ok.results.length, 4);
  t.match(ok.results[0], { op: 'put', kv: { key: 'txn/y', modRevision: ok.revision } });
  t.match(ok.results[1], { op: 'put', kv: { key: 'txn/z', modRevision: ok.revision } });
  t.equal(ok.results[2]?.op, 'get');
  t.strictSame(ok.results[3], { op: 'delete', deleted: 1 });

  const no = await client.txn({
    compare: [{ key: 'txn/x', target: 'version', op: '>', value: 0 }],
    success: [{ op: 'put', key: 'txn/never', value: '1' }],
    failure: [{ op: 'get', key: 'txn/y' }],
  });
  t.equal(no.succeeded, false);
  t.match(no.results, [{ op: 'get', kvs: [{ key: 'txn/y', value: 'y' }] }]);
  t.match(await errorOf(client.get('txn/never')), { code: 'key_not_found' });
  const empty = await client.txn({});
  t.equal(empty.succeeded, true, 'no compares: success');
  t.match(
    await errorOf(client.txn({ success: [{ op: 'bogus' } as never] })),
    { code: 'invalid_request', status: 400 },
    'the server validates ops',
  );
});

t.test('an explicit Idempotency-Key makes a repeated write apply once', async (t) => {
  const first = await client.put('idem/k', 'v', { idempotencyKey: 'client-test-1' });
  const again = await client.put('idem/k', 'v', { idempotencyKey: 'client-test-1' });
  t.strictSame(again, first, 'the first result, replayed');
  t.equal((await client.get('idem/k')).kv.version, 1);
});

t.test('watch: history with prevKv, then live changes, on a key and a prefix', async (t) => {
  const a1 = await client.put('wt/a', '1');
  await client.put('wt/a', '2');
  await client.put('wt/b', 'x');
  await client.delete('wt/a');

  const seen: WatchResponse[] = [];
  const w = client.watch('wt/', { prefix: true, prevKv: true, fromRevision: a1.revision });
  for await (const change of w) {
    seen.push(change);
    if (seen.length === 4) break;
  }
  t.strictSame(
    seen.map((c) => c.events.map((e) => `${e.type} ${e.kv.key} ${e.prevKv?.value ?? '-'}`)),
    [['put wt/a -'], ['put wt/a 1'], ['put wt/b -'], ['delete wt/a 2']],
  );
  t.ok(w.closed, 'break ends the watch');

  // From now (no fromRevision): only later changes, of this one key.
  const live = client.watch('wt/b');
  const next = live.next();
  await new Promise((r) => setTimeout(r, 100));
  await client.put('wt/other', 'ignored');
  const put = await client.put('wt/b', 'y');
  const got = await next;
  t.equal(got.value?.revision, put.revision);
  t.equal(got.value?.events[0]?.kv.value, 'y');
  t.equal(got.value?.events[0]?.prevKv, undefined, 'no prevKv unless asked');
  await live.return();
});

t.test('compact: old revisions and watches from before it are compacted', async (t) => {
  const a = await client.put('cmp/k', '1');
  const b = await client.put('cmp/k', '2');
  const res = await client.compact(b.revision);
  t.equal(res.compactRevision, b.revision);
  const old = await errorOf(client.get('cmp/k', { revision: a.revision }));
  t.match(old, { code: 'compacted', status: 410 });
  const w = client.watch('cmp/k', { fromRevision: a.revision });
  const err = await errorOf(w.next());
  t.match(err, { code: 'compacted', compactRevision: b.revision });
});

t.test('status, members, health — of any node or of each', async (t) => {
  const status = await client.status();
  t.match(status, {
    id: String,
    name: String,
    role: /^(leader|follower|candidate|learner)$/,
    term: Number,
    revision: Number,
    members: 3,
    version: String,
  });
  const names = [];
  for (const endpoint of urls) names.push((await client.status({ endpoint })).name);
  t.strictSame(names, cluster.names, 'status of a chosen node');

  const members = await client.members();
  t.equal(members.members.length, 3);
  t.ok(members.members.some((m) => m.id === members.leader));
  t.ok(members.members.every((m) => m.role === 'voter' && m.clientUrls.length === 1));

  t.strictSame(await client.health(), { healthy: true, status: 'ok' });
  t.strictSame(await client.health({ endpoint: urls[2] }), { healthy: true, status: 'ok' });
});

t.test('a request the server rejects is invalid_request, not retried', async (t) => {
  const err = await errorOf(client.get('kv/a', { revision: 0 }));
  t.match(err, { code: 'invalid_request', status: 400 });
  t.match(await errorOf(client.get('')), { code: 'invalid_request' });
});

t.test('moveLeader: leadership goes where asked, and the answer names who leads', async (t) => {
  const statuses = await Promise.all(urls.map((endpoint) => client.status({ endpoint })));
  const target = statuses.find((s) => s.role !== 'leader')!;
  const moved = await client.moveLeader(target.id);
  t.equal(moved.leader, target.id);
  t.ok(moved.term > statuses[0]!.term - 1);
  t.equal((await client.status({ endpoint: urls[statuses.indexOf(target)] })).role, 'leader');
  t.match(await errorOf(client.moveLeader('feedfacefeedface')), {
    code: 'member_not_found',
    status: 404,
  });
  const again = await client.moveLeader();
  t.not(again.leader, target.id, 'without a target it picks another voter');
});

t.test('snapshot: a backup that holds what was written before it', async (t) => {
  const w = await client.put('kv/backup', 'in it');
  const bytes = await client.snapshot();
  const { header } = decodeBackup(bytes);
  t.ok(header.revision >= w.revision);
  t.ok(Buffer.from(bytes).includes('kv/backup'));
  t.equal(
    decodeBackup(await client.snapshot({ endpoint: urls[2] })).header.memberId.length > 0,
    true,
  );
});

t.test(
  'addMember, promoteMember and removeMember; a learner that never starts costs no quorum',
  async (t) => {
    const added = await client.addMember({
      name: 'client-learner',
      peerUrl: 'http://127.0.0.1:9',
      clientUrl: 'http://127.0.0.1:10',
      learner: true,
    });
    t.match(added, { name: 'client-learner', role: 'learner' });
    t.equal((await client.put('kv/with-learner', 'ok')).kv.value, 'ok');
    t.match(await errorOf(client.promoteMember('feedfacefeedface')), {
      code: 'member_not_found',
      status: 404,
    });
    t.match(
      await errorOf(
        client.addMember({
          name: added.name,
          peerUrl: 'http://127.0.0.1:11',
          clientUrl: 'http://127.0.0.1:12',
        }),
      ),
      {
        code: 'invalid_request',
        message: /a member named "client-learner" exists/,
      },
    );
    t.strictSame(await client.removeMember(added.id), { id: added.id, removed: true });
    t.equal((await client.members()).members.length, 3);
  },
);
