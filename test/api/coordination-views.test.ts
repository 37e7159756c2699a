/** GET /v1/locks and GET /v1/elections (additions to API.md): lines in order, holder and fencing token. */
import t from 'tap';
import { inject, type SingleNode, startSingleNode } from './helpers.js';

let n: SingleNode;
t.before(async () => {
  n = await startSingleNode();
});
t.teardown(() => n?.close());

async function lease(): Promise<string> {
  return (await inject(n.app, 'POST', '/v1/leases', { body: { ttl: 30 } })).body.id;
}

t.test('a lock queue: the holder with its fencing token, then the waiters in order', async (t) => {
  const [a, b] = [await lease(), await lease()];
  const held = await inject(n.app, 'POST', '/v1/locks/jobs', { body: { lease: a } });
  t.equal(held.status, 200);
  // b waits in line (its request stays open until a releases or the timeout).
  const waiting = inject(n.app, 'POST', '/v1/locks/jobs', { body: { lease: b, timeoutMs: 3000 } });
  await new Promise((r) => setTimeout(r, 300));
  const r = await inject(n.app, 'GET', '/v1/locks?prefix=jo');
  t.equal(r.status, 200);
  t.equal(r.body.locks.length, 1);
  const lock = r.body.locks[0];
  t.equal(lock.name, 'jobs');
  t.equal(lock.holder.fencingToken, held.body.fencingToken);
  t.equal(lock.holder.lease, a);
  t.same(
    lock.waiters.map((w: { lease: string }) => w.lease),
    [b],
  );
  t.same((await inject(n.app, 'GET', '/v1/locks?prefix=zzz')).body.locks, []);
  await inject(n.app, 'DELETE', `/v1/locks/jobs?key=${encodeURIComponent(held.body.key)}`);
  t.equal((await waiting).status, 200, 'the waiter got it');
  const after = await inject(n.app, 'GET', '/v1/locks');
  t.equal(after.body.locks[0].holder.lease, b);
  t.same(after.body.locks[0].waiters, []);
  t.equal((await inject(n.app, 'GET', '/v1/locks?prefix=a/b')).status, 400);
});

t.test('elections: the leader and every candidate', async (t) => {
  const [a, b] = [await lease(), await lease()];
  const won = await inject(n.app, 'POST', '/v1/elections/primary/campaign', {
    body: { lease: a, value: 'host-a' },
  });
  t.equal(won.status, 200);
  const second = inject(n.app, 'POST', '/v1/elections/primary/campaign', {
    body: { lease: b, value: 'host-b', timeoutMs: 1000 },
  });
  await new Promise((r) => setTimeout(r, 300));
  const r = await inject(n.app, 'GET', '/v1/elections');
  t.equal(r.status, 200);
  const e = r.body.elections.find((x: { name: string }) => x.name === 'primary');
  t.equal(e.leader.value, 'host-a');
  t.equal(e.leader.key, won.body.leader.key);
  t.same(
    e.candidates.map((c: { value: string }) => c.value),
    ['host-a', 'host-b'],
  );
  await second;
});
