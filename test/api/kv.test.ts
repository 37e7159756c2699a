/**
 * API.md "KV": GET/PUT/DELETE /v1/kv/{key} and GET /v1/kv, through app.inject()
 * against one real node (Raft, LevelDB, the KV state machine).
 */
import t from 'tap';
import {
  assertError,
  assertKv,
  eventually,
  inject,
  kvPath,
  type Reply,
  type SingleNode,
  startSingleNode,
} from './helpers.js';

let n: SingleNode;
t.before(async () => {
  n = await startSingleNode(2000);
});
t.teardown(() => n?.close());

const put = (key: string, body: unknown, headers: Record<string, string> = {}) =>
  inject(n.app, 'PUT', kvPath(key), { body, headers });
const get = (key: string, query = '') => inject(n.app, 'GET', kvPath(key, query));
const del = (key: string, query = '') => inject(n.app, 'DELETE', kvPath(key, query));
const list = (query: string) => inject(n.app, 'GET', `/v1/kv${query}`);
async function currentRevision(): Promise<number> {
  return (await inject(n.app, 'GET', '/v1/status')).body.revision as number;
}

t.test('PUT then GET: API.md bodies, revisions and versions', async (t) => {
  const r0 = await currentRevision();
  const first = await put('basic', { value: 'one' });
  t.equal(first.status, 200);
  t.match(first.headers['content-type'], /^application\/json/);
  t.strictSame(Object.keys(first.body).sort(), ['kv', 'prevKv', 'revision']);
  t.equal(first.body.revision, r0 + 1, 'a write moves the revision by one');
  assertKv(t, first.body.kv, {
    key: 'basic',
    value: 'one',
    createRevision: r0 + 1,
    modRevision: r0 + 1,
    version: 1,
    lease: null,
  });
  t.equal(first.body.prevKv, null, 'prevKv is null on creation');

  const second = await put('basic', { value: 'two' });
  t.equal(second.status, 200);
  t.equal(second.body.revision, r0 + 2);
  assertKv(t, second.body.kv, {
    value: 'two',
    createRevision: r0 + 1,
    modRevision: r0 + 2,
    version: 2,
  });
  assertKv(t, second.body.prevKv, { value: 'one', modRevision: r0 + 1, version: 1 }, 'prevKv');

  const read = await get('basic');
  t.equal(read.status, 200);
  t.strictSame(Object.keys(read.body).sort(), ['kv', 'revision']);
  t.strictSame(read.body.kv, second.body.kv, 'GET returns what PUT stored');
  t.equal(read.body.revision, r0 + 2);

  const empty = await put('empty-value', { value: '' });
  t.equal(empty.status, 200, 'an empty value is a value');
  t.equal((await get('empty-value')).body.kv.value, '');
});

t.test('keys with "/", URL-encoded characters, spaces and unicode', async (t) => {
  const keys = [
    'app/config/db',
    'enc/a/b/',
    'enc/with space',
    'enc/été',
    'enc/日本語/キー',
    'enc/emoji 😀',
    'enc/100%',
    'enc/q?x=1&y#frag',
    'enc/plus+sign',
    'enc/double//slash',
    'enc/quote"back\\slash',
    'enc/literal%2Fnot-a-slash',
    'enc/new\nline\ttab',
    '/leading/slash',
  ];
  for (const key of keys) {
    const w = await put(key, { value: `v:${key}` });
    t.equal(w.status, 200, `PUT ${JSON.stringify(key)}`);
    t.equal(w.body.kv?.key, key, `the stored key is ${JSON.stringify(key)}`);
    const r = await get(key);
    t.equal(r.status, 200, `GET ${JSON.stringify(key)}`);
    t.equal(r.body.kv?.value, `v:${key}`);
  }
  // API.md: "/v1/kv/app/config/db is the key app/config/db": slashes need no encoding.
  const raw = await inject(n.app, 'GET', '/v1/kv/app/config/db');
  t.equal(raw.status, 200);
  t.equal(raw.body.kv.key, 'app/config/db');
  const mixed = await inject(n.app, 'GET', '/v1/kv/app%2Fconfig/db');
  t.equal(mixed.body.kv?.key, 'app/config/db', '%2F and / name the same key');
  const spaced = await inject(n.app, 'GET', '/v1/kv/enc/with%20space');
  t.equal(spaced.body.kv?.key, 'enc/with space');
  const unicode = await inject(n.app, 'GET', '/v1/kv/enc/%C3%A9t%C3%A9');
  t.equal(unicode.body.kv?.key, 'enc/été');
  // Decoded exactly once: %252F is the three characters "%2F", not a slash.
  const literal = await inject(n.app, 'GET', '/v1/kv/enc/literal%252Fnot-a-slash');
  t.equal(literal.body.kv?.key, 'enc/literal%2Fnot-a-slash');
  t.equal((await get('enc/literal/not-a-slash')).status, 404);
  // "+" in a path is a plus, not a space.
  t.equal((await get('enc/plus sign')).status, 404);

  const listed = await list(`?prefix=${encodeURIComponent('enc/')}`);
  t.equal(listed.status, 200);
  const expected = keys.filter((k) => k.startsWith('enc/'));
  expected.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  t.strictSame(
    listed.body.kvs.map((kv: { key: string }) => kv.key),
    expected,
    'every key comes back exactly, sorted',
  );
});

t.test('GET of a missing key: 404 key_not_found with the revision', async (t) => {
  const rev = await currentRevision();
  for (const consistency of ['', '?consistency=serializable', '?consistency=linearizable']) {
    const r = await get('no/such/key', consistency);
    assertError(t, r, 404, 'key_not_found', `missing key${consistency}`);
    t.equal(r.body.revision, rev, 'the body carries the current revision');
  }
});

t.test('GET ?revision=N reads the key as it was at N', async (t) => {
  const v1 = await put('hist', { value: 'v1' });
  const v2 = await put('hist', { value: 'v2' });
  const gone = await del('hist');
  t.equal(gone.status, 200);
  const v3 = await put('hist', { value: 'v3' });

  const at1 = await get('hist', `?revision=${v1.body.revision}`);
  t.equal(at1.status, 200);
  t.equal(at1.body.kv.value, 'v1');
  t.equal(at1.body.kv.version, 1);
  t.equal(at1.body.revision, v3.body.revision, 'revision is the store revision, not N');
  const at2 = await get('hist', `?revision=${v2.body.revision}`);
  t.equal(at2.body.kv.value, 'v2');
  t.equal(at2.body.kv.version, 2);
  const atDelete = await get('hist', `?revision=${gone.body.revision}`);
  assertError(t, atDelete, 404, 'key_not_found', 'deleted at that revision');
  t.equal(atDelete.body.revision, v3.body.revision);
  const before = await get('hist', `?revision=${v1.body.revision - 1}`);
  assertError(t, before, 404, 'key_not_found', 'not yet created');
  const now = await get('hist', `?revision=${v3.body.revision}`);
  t.equal(now.body.kv.value, 'v3');
  t.equal(now.body.kv.version, 1, 'a new generation restarts the version');
  t.equal(now.body.kv.createRevision, v3.body.revision);
  const serializable = await get('hist', `?revision=${v2.body.revision}&consistency=serializable`);
  t.equal(serializable.body.kv.value, 'v2');
});

t.test('consistency and minRevision', async (t) => {
  const w = await put('cons', { value: 'x' });
  for (const q of [
    '?consistency=linearizable',
    '?consistency=serializable',
    `?minRevision=${w.body.revision}`,
    `?consistency=serializable&minRevision=${w.body.revision}`,
    '?minRevision=0',
  ]) {
    const r = await get('cons', q);
    t.equal(r.status, 200, q);
    t.equal(r.body.kv.value, 'x', q);
  }
  // A read with minRevision in the near future waits for that revision to be applied.
  const target = w.body.revision + 1;
  const waiting = get('cons', `?consistency=serializable&minRevision=${target}`);
  let settled = false;
  void waiting.then(() => {
    settled = true;
  });
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(settled, 'the read waits for the revision');
  await put('cons', { value: 'y' });
  const r = await waiting;
  t.equal(r.status, 200);
  t.equal(r.body.kv.value, 'y', 'and then sees it');
  t.ok(r.body.revision >= target);

  const listing = await list(`?prefix=cons&minRevision=${target}&consistency=serializable`);
  t.equal(listing.status, 200);
  t.equal(listing.body.kvs[0].value, 'y');

  // Never reached: bounded by the request timeout (2 s here), 504 timeout, not a hang.
  const started = Date.now();
  const never = await get('cons', `?minRevision=${target + 1_000_000}`);
  assertError(t, never, 504, 'timeout', 'minRevision never reached');
  t.ok(Date.now() - started < 5000, 'answered within the request timeout');
});

t.test('PUT compare-and-swap with prevRevision and prevValue', async (t) => {
  const created = await put('cas', { value: 'a', prevRevision: 0 });
  t.equal(created.status, 200, 'prevRevision 0 creates a missing key');
  const mod = created.body.kv.modRevision;

  const again = await put('cas', { value: 'b', prevRevision: 0 });
  assertError(t, again, 409, 'compare_failed', 'prevRevision 0 on an existing key');
  t.strictSame(again.body.kv, created.body.kv, '409 carries the current kv');
  t.equal(again.body.revision, created.body.revision, '409 carries the revision');
  t.strictSame(Object.keys(again.body).sort(), ['error', 'kv', 'revision']);

  const stale = await put('cas', { value: 'b', prevRevision: mod - 1 });
  assertError(t, stale, 409, 'compare_failed', 'stale prevRevision');
  const swapped = await put('cas', { value: 'b', prevRevision: mod });
  t.equal(swapped.status, 200, 'matching prevRevision');
  t.equal(swapped.body.kv.value, 'b');

  const wrongValue = await put('cas', { value: 'c', prevValue: 'a' });
  assertError(t, wrongValue, 409, 'compare_failed', 'wrong prevValue');
  t.equal(wrongValue.body.kv.value, 'b');
  const rightValue = await put('cas', { value: 'c', prevValue: 'b' });
  t.equal(rightValue.status, 200, 'matching prevValue');

  const both = await put('cas', {
    value: 'd',
    prevValue: 'c',
    prevRevision: rightValue.body.kv.modRevision - 1,
  });
  assertError(t, both, 409, 'compare_failed', 'both guards, one false');
  const bothOk = await put('cas', {
    value: 'd',
    prevValue: 'c',
    prevRevision: rightValue.body.kv.modRevision,
  });
  t.equal(bothOk.status, 200, 'both guards true');

  const missing = await put('cas-missing', { value: 'x', prevValue: 'anything' });
  assertError(t, missing, 409, 'compare_failed', 'prevValue on a missing key');
  t.equal(missing.body.kv, null, 'kv is null when the key does not exist');
  const missingRev = await put('cas-missing', { value: 'x', prevRevision: 5 });
  assertError(t, missingRev, 409, 'compare_failed', 'prevRevision n on a missing key');
  t.equal(missingRev.body.kv, null);
  t.equal((await get('cas-missing')).status, 404, 'a false guard writes nothing');
  t.equal((await get('cas')).body.kv.value, 'd');
});

t.test('PUT with a lease', async (t) => {
  const before = await currentRevision();
  const unknown = await put('leased', { value: 'x', lease: 'no-such-lease' });
  assertError(t, unknown, 404, 'lease_not_found', 'unknown lease');
  t.equal(await currentRevision(), before, 'nothing was written');
  t.equal((await get('leased')).status, 404);

  // Leases have their own routes (API.md "Leases"); grant one directly on the node here.
  const granted = await n.cluster.nodes[0]!.node.write({
    type: 'leaseGrant',
    id: 'api-test-lease',
    ttlMs: 600_000,
  });
  t.equal(granted.ok, true);
  const attached = await put('leased', { value: 'x', lease: 'api-test-lease' });
  t.equal(attached.status, 200);
  t.equal(attached.body.kv.lease, 'api-test-lease', 'lease ids are strings');
  t.equal((await get('leased')).body.kv.lease, 'api-test-lease');
  const detached = await put('leased', { value: 'y' });
  t.equal(detached.body.kv.lease, null, 'a put without lease detaches the key');
  t.equal(detached.body.prevKv.lease, 'api-test-lease');
});

t.test('DELETE /v1/kv/{key}', async (t) => {
  const w = await put('del/one', { value: '1' });
  const d = await del('del/one');
  t.equal(d.status, 200);
  t.strictSame(Object.keys(d.body).sort(), ['deleted', 'prevKvs', 'revision']);
  t.equal(d.body.deleted, 1);
  t.equal(d.body.revision, w.body.revision + 1);
  t.equal(d.body.prevKvs.length, 1);
  assertKv(t, d.body.prevKvs[0], { key: 'del/one', value: '1' }, 'prevKvs[0]');
  t.equal((await get('del/one')).status, 404);

  const none = await del('del/one');
  t.equal(none.status, 200, 'deleting a missing key is not an error');
  t.equal(none.body.deleted, 0);
  t.strictSame(none.body.prevKvs, []);
  t.equal(none.body.revision, d.body.revision, 'a delete of nothing does not move the revision');
});

t.test('DELETE ?prefix=true removes a range in one revision', async (t) => {
  for (const k of ['pfx/a', 'pfx/b/c', 'pfx/z', 'pfy']) await put(k, { value: k });
  const d = await del('pfx/', '?prefix=true');
  t.equal(d.status, 200);
  t.equal(d.body.deleted, 3);
  t.strictSame(
    d.body.prevKvs.map((kv: { key: string }) => kv.key),
    ['pfx/a', 'pfx/b/c', 'pfx/z'],
  );
  const at = await list(`?prefix=pfx/&revision=${d.body.revision - 1}`);
  t.equal(at.body.kvs.length, 3, 'all three existed one revision before');
  const after = await list('?prefix=pfx/');
  t.strictSame(after.body.kvs, [], 'all three are gone in that one revision');
  t.equal((await get('pfy')).status, 200, 'keys outside the prefix stay');
  const nothing = await del('pfx/', '?prefix=true');
  t.equal(nothing.body.deleted, 0);
  t.equal(nothing.body.revision, d.body.revision);
  const prefixFalse = await del('pfy', '?prefix=false');
  t.equal(prefixFalse.body.deleted, 1, 'prefix=false is an exact delete');
});

t.test('DELETE ?prevRevision=n guards', async (t) => {
  const w = await put('guarded', { value: 'g' });
  const stale = await del('guarded', `?prevRevision=${w.body.kv.modRevision - 1}`);
  assertError(t, stale, 409, 'compare_failed', 'false guard');
  t.equal(stale.body.kv.value, 'g', '409 carries the current kv');
  t.equal(stale.body.revision, w.body.revision);
  t.equal((await get('guarded')).status, 200, 'a false guard deletes nothing');
  const zero = await del('guarded', '?prevRevision=0');
  assertError(t, zero, 409, 'compare_failed', 'prevRevision=0 on an existing key');

  const ok = await del('guarded', `?prevRevision=${w.body.kv.modRevision}`);
  t.equal(ok.status, 200);
  t.equal(ok.body.deleted, 1);
  const missing = await del('guarded', '?prevRevision=3');
  assertError(t, missing, 409, 'compare_failed', 'prevRevision n on a missing key');
  t.equal(missing.body.kv, null);
  const missingZero = await del('guarded', '?prevRevision=0');
  t.equal(missingZero.status, 200, 'prevRevision=0 holds for a missing key');
  t.equal(missingZero.body.deleted, 0);

  const combined = await del('guarded', '?prefix=true&prevRevision=1');
  assertError(t, combined, 400, 'invalid_request', 'prevRevision with prefix');
});

t.test('GET /v1/kv lists sorted, paginates with limit/after/more', async (t) => {
  // UTF-8 byte order (as etcd): "Z" < "a" < "é" < "\uFF21" < "😀".
  const keys = ['ls/b', 'ls/a', 'ls/Z', 'ls/é', 'ls/😀', 'ls/\uFF21', 'ls/a/nested', 'ls/c'];
  for (const k of keys) await put(k, { value: `v-${k}` });
  const sorted = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

  const all = await list('?prefix=ls/');
  t.equal(all.status, 200);
  t.strictSame(Object.keys(all.body).sort(), ['kvs', 'more', 'revision']);
  t.strictSame(
    all.body.kvs.map((kv: { key: string }) => kv.key),
    sorted,
  );
  t.equal(all.body.more, false);
  t.equal(all.body.revision, await currentRevision());
  for (const kv of all.body.kvs) assertKv(t, kv, { value: `v-${kv.key}` }, kv.key);

  // Page through with limit and after.
  const seen: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < 10; page++) {
    const q = `?prefix=ls/&limit=3${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`;
    const r = await list(q);
    t.equal(r.status, 200, q);
    t.ok(r.body.kvs.length <= 3, 'at most limit kvs');
    seen.push(...r.body.kvs.map((kv: { key: string }) => kv.key));
    if (!r.body.more) break;
    t.equal(r.body.kvs.length, 3, 'a page with more is full');
    after = r.body.kvs[r.body.kvs.length - 1].key;
  }
  t.strictSame(seen, sorted, 'pages cover every key once, in order');

  const exact = await list(`?prefix=ls/&limit=${keys.length}`);
  t.equal(exact.body.more, false, 'more is false when the limit exactly fits');
  const one = await list('?prefix=ls/&limit=1');
  t.equal(one.body.more, true);

  const keysOnly = await list('?prefix=ls/&keysOnly=true');
  t.equal(keysOnly.status, 200);
  t.strictSame(
    keysOnly.body.kvs.map((kv: { key: string }) => kv.key),
    sorted,
  );
  t.ok(
    keysOnly.body.kvs.every((kv: { value: string }) => kv.value === ''),
    'keysOnly leaves the values out',
  );
  t.ok(
    keysOnly.body.kvs.every((kv: { version: number }) => kv.version === 1),
    'but not metadata',
  );

  const nothing = await list('?prefix=no-such-prefix/');
  t.strictSame(nothing.body.kvs, []);
  t.equal(nothing.body.more, false);

  const everything = await list('');
  const everythingEmpty = await list('?prefix=');
  t.ok(everything.body.kvs.length >= keys.length, 'no prefix lists every key');
  t.strictSame(everything.body, everythingEmpty.body, 'an empty prefix is no prefix');
  const allKeys = everything.body.kvs.map((kv: { key: string }) => kv.key);
  t.strictSame(
    allKeys,
    [...allKeys].sort((a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
    'the full listing is sorted too',
  );
});

t.test('GET /v1/kv?revision=N lists the store as it was at N', async (t) => {
  const a = await put('past/a', { value: '1' });
  await put('past/b', { value: '1' });
  await put('past/a', { value: '2' });
  await del('past/b');
  const then = await list(`?prefix=past/&revision=${a.body.revision}`);
  t.equal(then.status, 200);
  t.strictSame(
    then.body.kvs.map((kv: { key: string; value: string }) => [kv.key, kv.value]),
    [['past/a', '1']],
  );
  const later = await list(
    `?prefix=past/&revision=${a.body.revision + 1}&consistency=serializable`,
  );
  t.strictSame(
    later.body.kvs.map((kv: { key: string; value: string }) => [kv.key, kv.value]),
    [
      ['past/a', '1'],
      ['past/b', '1'],
    ],
  );
  const now = await list('?prefix=past/');
  t.strictSame(
    now.body.kvs.map((kv: { key: string; value: string }) => [kv.key, kv.value]),
    [['past/a', '2']],
  );
});

t.test('Idempotency-Key: a retried write applies once and gets the first response', async (t) => {
  const h = { 'idempotency-key': 'api-test-put-1' };
  const first = await put('idem', { value: 'first' }, h);
  t.equal(first.status, 200);
  const retry = await put('idem', { value: 'first' }, h);
  t.equal(retry.status, 200);
  t.strictSame(retry.body, first.body, 'the retry gets the first response');
  t.equal(await currentRevision(), first.body.revision, 'the revision did not move');
  const changed = await put('idem', { value: 'second' }, h);
  assertError(t, changed, 400, 'invalid_request', 'the same key with another body is refused');
  const read = await get('idem');
  t.equal(read.body.kv.value, 'first');
  t.equal(read.body.kv.version, 1, 'applied exactly once');

  // A guard that held the first time: the retry does not turn into a 409.
  const cas = { 'idempotency-key': 'api-test-cas' };
  const created = await put('idem-cas', { value: 'x', prevRevision: 0 }, cas);
  t.equal(created.status, 200);
  const casRetry = await put('idem-cas', { value: 'x', prevRevision: 0 }, cas);
  t.equal(casRetry.status, 200, 'a retried create-if-missing still reports success');
  t.strictSame(casRetry.body, created.body);

  // A definite failure is remembered as well.
  const fail = { 'idempotency-key': 'api-test-fail' };
  const failed = await put('idem-cas', { value: 'y', prevRevision: 0 }, fail);
  assertError(t, failed, 409, 'compare_failed');
  await del('idem-cas');
  const failedRetry = await put('idem-cas', { value: 'y', prevRevision: 0 }, fail);
  assertError(t, failedRetry, 409, 'compare_failed', 'the retry gets the first failure');
  t.equal((await get('idem-cas')).status, 404, 'and applies nothing');

  const delKey = { 'idempotency-key': 'api-test-del' };
  await put('idem-del', { value: 'x' });
  const d1 = await del('idem-del', '');
  t.equal(d1.body.deleted, 1);
  await put('idem-del', { value: 'again' });
  const d2 = await inject(n.app, 'DELETE', kvPath('idem-del'), { headers: delKey });
  const d3 = await inject(n.app, 'DELETE', kvPath('idem-del'), { headers: delKey });
  t.equal(d2.body.deleted, 1);
  t.strictSame(d3.body, d2.body, 'a retried DELETE gets the first response');
  await put('idem-del', { value: 'third' });
  const d4 = await inject(n.app, 'DELETE', kvPath('idem-del'), { headers: delKey });
  t.strictSame(d4.body, d2.body);
  t.equal((await get('idem-del')).body.kv?.value, 'third', 'the retry deleted nothing');

  // Two attempts in flight at once (a client retrying on a timeout): still applied once.
  const race = { 'idempotency-key': 'api-test-race' };
  const [x, y] = await Promise.all([
    put('idem-race', { value: 'r' }, race),
    put('idem-race', { value: 'r' }, race),
  ]);
  t.equal(x.status, 200);
  t.strictSame(y.body, x.body, 'concurrent attempts get the same response');
  t.equal((await get('idem-race')).body.kv.version, 1);

  // Another key is another write.
  const other = await put('idem', { value: 'second' }, { 'idempotency-key': 'api-test-put-2' });
  t.equal(other.body.kv.value, 'second');
  t.equal(other.body.kv.version, 2);

  // The same key reused for another kind of write: a client error, not applied.
  const before = await currentRevision();
  const reused = await inject(n.app, 'DELETE', kvPath('idem'), { headers: h });
  assertError(t, reused, 400, 'invalid_request', 'key reused for a DELETE');
  t.equal(await currentRevision(), before);
  t.equal((await get('idem')).status, 200);
});

t.test('DELETE ?prefix=true on the empty key deletes every key', async (t) => {
  const r: Reply = await del('', '?prefix=true');
  t.equal(r.status, 200);
  t.ok(r.body.deleted > 10);
  const left = await list('');
  t.strictSame(left.body.kvs, []);
  const status = await eventually(
    'status',
    async () => (await inject(n.app, 'GET', '/v1/status')).body,
  );
  t.equal(status.revision, r.body.revision);
});
