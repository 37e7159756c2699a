/**
 * The API of a 3-node cluster over real HTTP on 127.0.0.1: every node serves
 * every endpoint, followers forward writes to the leader, and an
 * Idempotency-Key holds across nodes.
 */
import t from 'tap';
import { startCluster } from '../integration/helpers.js';
import {
  assertError,
  eventually,
  http,
  kvPath,
  openSse,
  type SseStream,
  type TestCluster,
} from './helpers.js';

let c: TestCluster;
let leader = -1;
const streams: SseStream[] = [];
t.before(async () => {
  // A longer election timeout than the helper's default: no leader change from a busy test machine.
  c = await startCluster(3, { electionTicks: 25 });
  await c.waitForLeader();
  // Followers learn the leader from its first heartbeat: wait until all three agree.
  leader = await eventually('every node to know the leader', () => {
    const statuses = c.nodes.map((s) => s!.node.statusSync());
    const lead = statuses[0]!.leader;
    if (lead === null || !statuses.every((s) => s.leader === lead)) return undefined;
    return statuses.findIndex((s) => s.id === lead);
  });
});
t.teardown(async () => {
  for (const s of streams) s.close();
  await c?.close();
});

const put = (i: number, key: string, body: unknown, headers: Record<string, string> = {}) =>
  http(c.url(i), 'PUT', kvPath(key), { body, headers });
const get = (i: number, key: string, query = '') => http(c.url(i), 'GET', kvPath(key, query));
const followers = () => [0, 1, 2].filter((i) => i !== leader);

t.test('status and members agree on every node', async (t) => {
  const statuses = await Promise.all([0, 1, 2].map((i) => http(c.url(i), 'GET', '/v1/status')));
  const ids = statuses.map((s) => s.body.id);
  t.equal(new Set(ids).size, 3, 'three distinct member ids');
  for (const [i, s] of statuses.entries()) {
    t.equal(s.status, 200);
    t.equal(s.body.name, `n${i + 1}`);
    t.equal(s.body.members, 3);
    t.equal(s.body.leader, ids[leader], `n${i + 1} knows the leader`);
    t.equal(s.body.role, i === leader ? 'leader' : 'follower');
  }
  // Client URLs are published through the log: every node's table lists every node's.
  const urls = [0, 1, 2].map((i) => c.url(i)).sort();
  for (const i of [0, 1, 2]) {
    const members = await eventually(`n${i + 1} lists every client URL`, async () => {
      const r = await http(c.url(i), 'GET', '/v1/cluster/members');
      const listed = r.body.members.flatMap((m: { clientUrls: string[] }) => m.clientUrls).sort();
      return JSON.stringify(listed) === JSON.stringify(urls) ? r.body : undefined;
    });
    t.equal(members.leader, ids[leader]);
    t.strictSame(members.members.map((m: { id: string }) => m.id).sort(), [...ids].sort());
    t.ok(members.members.every((m: { role: string }) => m.role === 'voter'));
    const health = await http(c.url(i), 'GET', '/health');
    t.equal(health.status, 200, `n${i + 1} is healthy`);
    t.strictSame(health.body, { status: 'ok' });
  }
});

t.test('a write through any node is read back from every node', async (t) => {
  for (const i of [0, 1, 2]) {
    const w = await put(i, `fwd/${i}`, { value: `via n${i + 1}` });
    t.equal(w.status, 200, `PUT through n${i + 1} (${i === leader ? 'leader' : 'follower'})`);
    t.equal(w.body.kv.value, `via n${i + 1}`);
    for (const j of [0, 1, 2]) {
      const r = await get(j, `fwd/${i}`);
      t.equal(r.status, 200, `linearizable GET on n${j + 1}`);
      t.equal(r.body.kv.value, `via n${i + 1}`, `n${j + 1} sees the write at once`);
      const s = await get(
        j,
        `fwd/${i}`,
        `?consistency=serializable&minRevision=${w.body.revision}`,
      );
      t.equal(s.body.kv.value, `via n${i + 1}`, `serializable + minRevision on n${j + 1}`);
      t.ok(s.body.revision >= w.body.revision);
    }
  }
  const listing = await http(c.url(followers()[0]!), 'GET', '/v1/kv?prefix=fwd/');
  t.strictSame(
    listing.body.kvs.map((kv: { key: string }) => kv.key),
    ['fwd/0', 'fwd/1', 'fwd/2'],
  );
});

t.test('followers forward deletes, txns, compactions and their failures', async (t) => {
  const f = followers()[0]!;
  const w = await put(f, 'fwd/cas', { value: 'a' });
  const cas = await put(f, 'fwd/cas', { value: 'b', prevRevision: w.body.kv.modRevision - 1 });
  assertError(t, cas, 409, 'compare_failed', 'a false guard through a follower');
  t.equal(cas.body.kv.value, 'a', 'with the current kv');
  t.equal(cas.body.revision, w.body.revision);
  const lease = await put(f, 'fwd/lease', { value: 'x', lease: 'no-such-lease' });
  assertError(t, lease, 404, 'lease_not_found', 'unknown lease through a follower');

  const txn = await http(c.url(f), 'POST', '/v1/txn', {
    body: {
      compare: [{ key: 'fwd/cas', target: 'value', op: '==', value: 'a' }],
      success: [
        { op: 'put', key: 'fwd/txn', value: 'x' },
        { op: 'get', key: 'fwd/cas' },
      ],
    },
  });
  t.equal(txn.status, 200);
  t.equal(txn.body.succeeded, true);
  t.equal(txn.body.results[1].kvs[0].value, 'a');
  const d = await http(c.url(f), 'DELETE', kvPath('fwd/txn'));
  t.equal(d.body.deleted, 1);
  const guarded = await http(c.url(f), 'DELETE', kvPath('fwd/cas', '?prevRevision=1'));
  assertError(t, guarded, 409, 'compare_failed', 'a false delete guard through a follower');
  for (const j of [0, 1, 2]) t.equal((await get(j, 'fwd/txn')).status, 404);

  const compact = await http(c.url(f), 'POST', '/v1/compact', {
    body: { revision: w.body.revision },
  });
  t.equal(compact.status, 200, 'compaction through a follower');
  for (const j of [0, 1, 2]) {
    const old = await get(j, 'fwd/cas', `?revision=${w.body.revision - 1}`);
    assertError(t, old, 410, 'compacted', `n${j + 1} has compacted too`);
  }
});

t.test('Idempotency-Key: a retry on another node applies nothing more', async (t) => {
  const [f1, f2] = followers();
  const h = { 'idempotency-key': 'cluster-retry-1' };
  const first = await put(f1!, 'idem/x', { value: 'once' }, h);
  t.equal(first.status, 200);
  for (const i of [f2!, leader, f1!]) {
    const retry = await put(i, 'idem/x', { value: 'once' }, h);
    t.equal(retry.status, 200, `retry through n${i + 1}`);
    t.strictSame(retry.body, first.body, `n${i + 1} answers with the first response`);
  }
  const status = await http(c.url(leader), 'GET', '/v1/status');
  t.equal(status.body.revision, first.body.revision, 'the revision did not move');
  const r = await get(f2!, 'idem/x');
  t.equal(r.body.kv.version, 1, 'applied once');

  const txnKey = { 'idempotency-key': 'cluster-retry-txn' };
  const body = { success: [{ op: 'put', key: 'idem/txn', value: 'x' }] };
  const a = await http(c.url(leader), 'POST', '/v1/txn', { body, headers: txnKey });
  const b = await http(c.url(f1!), 'POST', '/v1/txn', { body, headers: txnKey });
  t.strictSame(b.body, a.body, 'a txn retried on a follower');
});

t.test('a watch on a follower sees writes made through the other nodes', async (t) => {
  const f = followers()[0]!;
  const s = await openSse(c.url(f), '/v1/watch/cw/?prefix=true&prevKv=true');
  streams.push(s);
  t.equal(s.status, 200);
  const written: number[] = [];
  for (const i of [leader, followers()[1]!, f]) {
    written.push((await put(i, `cw/${i}`, { value: String(i) })).body.revision);
  }
  const events = await s.changes(3);
  t.strictSame(
    events.map((e) => e.data.revision),
    written,
  );
  t.strictSame(
    events.map((e) => e.id),
    written.map(String),
  );
});
