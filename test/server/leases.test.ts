import t from 'tap';
import { get, json, put, startCluster } from '../integration/helpers.js';

const post = async (url: string, path: string, body?: unknown) =>
  json(
    await fetch(`${url}${path}`, {
      method: 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
  );
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('leases: grant, attach, keepalive, lookup, expiry and revoke', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  await c.waitForLeader();
  const url = c.url(0);

  const granted = await post(url, '/v1/leases', { ttl: 2 });
  t.equal(granted.status, 201);
  const id = granted.body.id as string;
  t.match(granted.body, { id: String, ttl: 2 });
  t.equal((await put(url, 'svc/a', 'x', {})).status, 200);
  const attach = await json(
    await fetch(`${url}/v1/kv/svc/b`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'y', lease: id }),
    }),
  );
  t.equal(attach.status, 200);
  t.equal(attach.body.kv.lease, id);

  // Lookup from a follower: the leader's remaining TTL and the attached keys.
  const info = await json(await fetch(`${c.url(1)}/v1/leases/${id}`));
  t.equal(info.status, 200);
  t.equal(info.body.id, id);
  t.ok(info.body.remaining <= 2 && info.body.remaining >= 1, `remaining ${info.body.remaining}`);
  t.same(info.body.keys, ['svc/b']);
  const list = await json(await fetch(`${c.url(2)}/v1/leases`));
  t.same(
    list.body.leases.map((l: { id: string }) => l.id),
    [id],
  );

  // Keepalives every 500 ms keep a 2 s lease alive for 3.5 s, from any node.
  for (let i = 0; i < 7; i++) {
    const ka = await post(c.url(i % 3), `/v1/leases/${id}/keepalive`);
    t.equal(ka.status, 200, `keepalive ${i}`);
    await sleep(500);
  }
  t.equal((await get(url, 'svc/b')).status, 200, 'the key lives while the lease is kept alive');

  // Without keepalives it expires: the key disappears, the lease is gone.
  const deadline = Date.now() + 6000;
  let status = 200;
  while (Date.now() < deadline && status === 200) {
    await sleep(100);
    status = (await get(url, 'svc/b')).status;
  }
  t.equal(status, 404, 'the attached key was deleted on expiry');
  t.equal((await json(await fetch(`${url}/v1/leases/${id}`))).status, 404, 'the lease is gone');
  t.equal((await post(url, `/v1/leases/${id}/keepalive`)).body.error.code, 'lease_not_found');
  t.equal((await get(url, 'svc/a')).status, 200, 'keys without the lease are untouched');

  // Revoke deletes every attached key in one revision.
  const l2 = (await post(url, '/v1/leases', { ttl: 30, id: 'my-lease' })).body;
  t.equal(l2.id, 'my-lease', 'a client-chosen id');
  for (const k of ['r/1', 'r/2', 'r/3']) {
    await fetch(`${url}/v1/kv/${k}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'v', lease: 'my-lease' }),
    });
  }
  const before = (await get(url, 'svc/a')).body.revision as number;
  const revoked = await json(await fetch(`${c.url(2)}/v1/leases/my-lease`, { method: 'DELETE' }));
  t.same(revoked.body, { revoked: true, deleted: 3 });
  const after = (await get(url, 'svc/a')).body.revision as number; // a linearizable read
  t.equal(after, before + 1, 'one revision for all three deletes');
});

t.test('leases: TTL below the minimum is raised, bad input is refused', async (t) => {
  const c = await startCluster(1);
  t.teardown(() => c.close());
  await c.waitForLeader();
  const url = c.url(0);
  for (const bad of [
    { ttl: 0 },
    { ttl: -5 },
    { ttl: 1e12 },
    { ttl: 'x' },
    {},
    { ttl: 5, id: 'bad id!' },
    { ttl: 5, extra: 1 },
  ]) {
    const r = await post(url, '/v1/leases', bad);
    t.equal(r.status, 400, `refused ${JSON.stringify(bad)}`);
    t.equal(r.body.error.code, 'invalid_request');
  }
  t.equal((await json(await fetch(`${url}/v1/leases/nope`))).status, 404);
  t.equal(
    (await json(await fetch(`${url}/v1/leases/nope`, { method: 'DELETE' }))).body.error.code,
    'lease_not_found',
  );
  const dup = await post(url, '/v1/leases', { ttl: 5, id: 'same' });
  t.equal(dup.status, 201);
  t.equal(
    (await post(url, '/v1/leases', { ttl: 5, id: 'same' })).status,
    400,
    'an existing id cannot be granted again',
  );
});

t.test('a lease survives the loss of the leader while it is kept alive', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const other = (leader + 1) % 3;
  const id = (await post(c.url(other), '/v1/leases', { ttl: 2 })).body.id as string;
  await fetch(`${c.url(other)}/v1/kv/alive`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ value: '1', lease: id }),
  });
  await c.stopNode(leader);
  // Keep it alive through the election (retrying while there is no leader).
  const until = Date.now() + 4000;
  while (Date.now() < until) {
    await post(c.url(other), `/v1/leases/${id}/keepalive`);
    await sleep(300);
  }
  t.equal(
    (await get(c.url(other), 'alive')).status,
    200,
    'still alive after a new leader took over',
  );
  t.equal((await json(await fetch(`${c.url(other)}/v1/leases/${id}`))).status, 200);
});
