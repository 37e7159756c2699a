/** API.md "KV": POST /v1/txn and POST /v1/compact, through app.inject() against one real node. */
import t from 'tap';
import {
  assertError,
  assertKv,
  inject,
  kvPath,
  type SingleNode,
  startSingleNode,
} from './helpers.js';

let n: SingleNode;
t.before(async () => {
  n = await startSingleNode();
});
t.teardown(() => n?.close());

const put = (key: string, value: string) => inject(n.app, 'PUT', kvPath(key), { body: { value } });
const get = (key: string, query = '') => inject(n.app, 'GET', kvPath(key, query));
const txn = (body: unknown, headers: Record<string, string> = {}) =>
  inject(n.app, 'POST', '/v1/txn', { body, headers });
async function currentRevision(): Promise<number> {
  return (await inject(n.app, 'GET', '/v1/status')).body.revision as number;
}

t.test('a txn runs the success branch when every compare holds', async (t) => {
  const a = await put('t/a', 'A');
  const r = await txn({
    compare: [{ key: 't/a', target: 'value', op: '==', value: 'A' }],
    success: [
      { op: 'put', key: 't/b', value: 'B' },
      { op: 'get', key: 't/a' },
      { op: 'delete', key: 't/a' },
    ],
    failure: [{ op: 'put', key: 't/failed', value: 'x' }],
  });
  t.equal(r.status, 200);
  t.strictSame(Object.keys(r.body).sort(), ['results', 'revision', 'succeeded']);
  t.equal(r.body.succeeded, true);
  t.equal(r.body.revision, a.body.revision + 1, 'all ops land in one revision');
  t.equal(r.body.results.length, 3, 'one result per op of the branch that ran, in order');
  t.equal(r.body.results[0].op, 'put');
  assertKv(t, r.body.results[0].kv, { key: 't/b', value: 'B', modRevision: r.body.revision });
  t.strictSame(Object.keys(r.body.results[0]).sort(), ['kv', 'op']);
  t.equal(r.body.results[1].op, 'get');
  t.equal(r.body.results[1].kvs.length, 1);
  assertKv(t, r.body.results[1].kvs[0], { key: 't/a', value: 'A' });
  t.strictSame(r.body.results[2], { op: 'delete', deleted: 1 });
  t.equal((await get('t/a')).status, 404);
  t.equal((await get('t/b')).body.kv.value, 'B');
  t.equal((await get('t/failed')).status, 404, 'the failure branch did not run');
});

t.test('a txn runs the failure branch when a compare is false', async (t) => {
  const before = await currentRevision();
  const r = await txn({
    compare: [
      { key: 't/b', target: 'value', op: '==', value: 'B' },
      { key: 't/b', target: 'value', op: '==', value: 'not B' },
    ],
    success: [{ op: 'put', key: 't/success', value: 'x' }],
    failure: [
      { op: 'get', key: 't/b' },
      { op: 'put', key: 't/fallback', value: 'F' },
    ],
  });
  t.equal(r.status, 200, 'a false compare is not an error for a txn');
  t.equal(r.body.succeeded, false);
  t.equal(r.body.revision, before + 1);
  t.equal(r.body.results.length, 2);
  t.equal(r.body.results[0].kvs[0].value, 'B');
  t.equal(r.body.results[1].kv.value, 'F');
  t.equal((await get('t/success')).status, 404);

  const readOnly = await txn({
    compare: [{ key: 't/b', target: 'version', op: '>', value: 5 }],
    failure: [{ op: 'get', key: 't/b' }],
  });
  t.equal(readOnly.body.succeeded, false);
  t.equal(readOnly.body.revision, before + 1, 'a txn that writes nothing makes no revision');
  t.equal(await currentRevision(), before + 1);

  const empty = await txn({});
  t.equal(empty.status, 200, 'an empty txn is fine');
  t.strictSame(empty.body, { succeeded: true, revision: before + 1, results: [] });
});

t.test('every compare target and operator', async (t) => {
  const w = await put('cmp/k', 'm');
  const kv = w.body.kv;
  const cases: [string, string, unknown, boolean][] = [
    ['value', '==', 'm', true],
    ['value', '!=', 'm', false],
    ['value', '<', 'n', true],
    ['value', '>', 'l', true],
    ['value', '>', 'n', false],
    ['value', '==', null, false],
    ['value', '!=', null, true],
    ['version', '==', 1, true],
    ['version', '>', 0, true],
    ['version', '<', 1, false],
    ['version', '!=', 2, true],
    ['createRevision', '==', kv.createRevision, true],
    ['createRevision', '<', kv.createRevision, false],
    ['modRevision', '==', kv.modRevision, true],
    ['modRevision', '>', kv.modRevision - 1, true],
    ['modRevision', '<', kv.modRevision + 1, true],
    ['lease', '==', null, true],
    ['lease', '!=', null, false],
    ['lease', '==', 'some-lease', false],
  ];
  for (const [target, op, value, expected] of cases) {
    const r = await txn({ compare: [{ key: 'cmp/k', target, op, value }] });
    t.equal(r.status, 200, `${target} ${op} ${JSON.stringify(value)}`);
    t.equal(r.body.succeeded, expected, `${target} ${op} ${JSON.stringify(value)} is ${expected}`);
  }
  // API.md: a missing key has version/createRevision/modRevision 0, value null, lease null.
  const missing: [string, string, unknown, boolean][] = [
    ['version', '==', 0, true],
    ['createRevision', '==', 0, true],
    ['modRevision', '==', 0, true],
    ['value', '==', null, true],
    ['lease', '==', null, true],
    ['value', '==', '', false],
    ['version', '>', 0, false],
  ];
  for (const [target, op, value, expected] of missing) {
    const r = await txn({ compare: [{ key: 'cmp/missing', target, op, value }] });
    t.equal(r.body.succeeded, expected, `missing key: ${target} ${op} ${JSON.stringify(value)}`);
  }

  // A lease target against a real lease.
  const granted = await n.cluster.nodes[0]!.node.write({
    type: 'leaseGrant',
    id: 'txn-lease',
    ttlMs: 600_000,
  });
  t.equal(granted.ok, true);
  const leased = await txn({
    success: [{ op: 'put', key: 'cmp/leased', value: 'x', lease: 'txn-lease' }],
  });
  t.equal(leased.body.results[0].kv.lease, 'txn-lease', 'a txn put takes a lease');
  const byLease = await txn({
    compare: [{ key: 'cmp/leased', target: 'lease', op: '==', value: 'txn-lease' }],
  });
  t.equal(byLease.body.succeeded, true);

  // A fence compare on a lock nobody holds is false.
  const fenced = await txn({
    compare: [{ lock: 'no-such-lock', token: 1 }],
    success: [{ op: 'put', key: 'cmp/fenced', value: 'x' }],
  });
  t.equal(fenced.status, 200);
  t.equal(fenced.body.succeeded, false, 'a fence on a lock that is not held is false');
  t.equal((await get('cmp/fenced')).status, 404);
});

t.test('prefix get and delete ops; ops see earlier ops of the same txn', async (t) => {
  for (const k of ['tp/a', 'tp/b', 'tp/c', 'tq']) await put(k, k);
  const r = await txn({
    success: [
      { op: 'put', key: 'tp/d', value: 'tp/d' },
      { op: 'get', key: 'tp/', prefix: true },
      { op: 'delete', key: 'tp/a' },
      { op: 'get', key: 'tp/', prefix: true },
      { op: 'delete', key: 'tp/b', prefix: true },
      { op: 'get', key: 'tp/nothing' },
    ],
  });
  t.equal(r.status, 200);
  t.equal(r.body.succeeded, true);
  t.strictSame(
    r.body.results[1].kvs.map((kv: { key: string }) => kv.key),
    ['tp/a', 'tp/b', 'tp/c', 'tp/d'],
    'a get sees an earlier put of the txn',
  );
  t.strictSame(
    r.body.results[3].kvs.map((kv: { key: string }) => kv.key),
    ['tp/b', 'tp/c', 'tp/d'],
    'and an earlier delete',
  );
  t.strictSame(r.body.results[4], { op: 'delete', deleted: 1 });
  t.strictSame(r.body.results[5], { op: 'get', kvs: [] });
  t.equal(r.body.results[0].kv.modRevision, r.body.revision);
  const listing = await inject(n.app, 'GET', '/v1/kv?prefix=tp/');
  t.strictSame(
    listing.body.kvs.map((kv: { key: string }) => kv.key),
    ['tp/c', 'tp/d'],
  );
  // The txn is one revision: the state just before it had none of its changes.
  const before = await inject(n.app, 'GET', `/v1/kv?prefix=tp/&revision=${r.body.revision - 1}`);
  t.strictSame(
    before.body.kvs.map((kv: { key: string }) => kv.key),
    ['tp/a', 'tp/b', 'tp/c'],
  );
});

t.test('a txn is atomic: a failing op applies nothing', async (t) => {
  const before = await currentRevision();
  const unknownLease = await txn({
    success: [
      { op: 'put', key: 'atomic/a', value: 'x' },
      { op: 'put', key: 'atomic/b', value: 'x', lease: 'no-such-lease' },
    ],
  });
  assertError(t, unknownLease, 404, 'lease_not_found', 'unknown lease in a txn put');
  t.equal((await get('atomic/a')).status, 404, 'the other put did not happen either');
  const twice = await txn({
    success: [
      { op: 'put', key: 'atomic/a', value: '1' },
      { op: 'put', key: 'atomic/a', value: '2' },
    ],
  });
  assertError(t, twice, 400, 'invalid_request', 'one key put twice');
  t.equal(await currentRevision(), before, 'nothing was written');
});

t.test('a retried txn with the same Idempotency-Key applies once', async (t) => {
  const h = { 'idempotency-key': 'txn-retry-1' };
  const body = { success: [{ op: 'put', key: 'idem/txn', value: 'once' }] };
  const first = await txn(body, h);
  const second = await txn(body, h);
  t.equal(first.status, 200);
  t.strictSame(second.body, first.body);
  t.equal((await get('idem/txn')).body.kv.version, 1);
});

t.test('POST /v1/compact, then reads before the compaction point are 410 compacted', async (t) => {
  const v1 = await put('old', 'v1');
  const v2 = await put('old', 'v2');
  const v3 = await put('old', 'v3');
  const c = await inject(n.app, 'POST', '/v1/compact', { body: { revision: v2.body.revision } });
  t.equal(c.status, 200);
  t.equal(c.body.compactRevision, v2.body.revision);

  const old = await get('old', `?revision=${v1.body.revision}`);
  assertError(t, old, 410, 'compacted', 'GET before the compaction point');
  t.equal(old.body.compactRevision, v2.body.revision, 'the body says where history starts');
  const oldList = await inject(n.app, 'GET', `/v1/kv?prefix=old&revision=${v1.body.revision}`);
  assertError(t, oldList, 410, 'compacted', 'listing before the compaction point');
  const atPoint = await get('old', `?revision=${v2.body.revision}`);
  t.equal(atPoint.status, 200, 'the compaction revision itself can still be read');
  t.equal(atPoint.body.kv.value, 'v2');
  const now = await get('old');
  t.equal(now.body.kv.value, 'v3');
  t.equal(now.body.kv.modRevision, v3.body.revision);
  const status = await inject(n.app, 'GET', '/v1/status');
  t.equal(status.body.compactRevision, v2.body.revision, '/v1/status reports it');

  const again = await inject(n.app, 'POST', '/v1/compact', {
    body: { revision: v1.body.revision },
  });
  assertError(t, again, 410, 'compacted', 'compacting below the compaction point');
  const future = await inject(n.app, 'POST', '/v1/compact', {
    body: { revision: v3.body.revision + 1000 },
  });
  assertError(t, future, 400, 'invalid_request', 'compacting a future revision');
});
