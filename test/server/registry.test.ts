import t from 'tap';
import { request as call, startCluster } from '../integration/helpers.js';

t.test('registry: unique names owned by leases, gone with their lease', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  await c.waitForLeader();
  const a = (await call(c.url(0), 'POST', '/v1/leases', { ttl: 30 })).body.id as string;
  const b = (await call(c.url(1), 'POST', '/v1/leases', { ttl: 30 })).body.id as string;

  const first = await call(c.url(0), 'PUT', '/v1/registry/svc/api', {
    value: 'http://10.0.0.1',
    lease: a,
  });
  t.equal(first.status, 201);
  t.match(first.body, {
    name: 'svc/api',
    value: 'http://10.0.0.1',
    lease: a,
    createRevision: Number,
    modRevision: Number,
  });

  const taken = await call(c.url(1), 'PUT', '/v1/registry/svc/api', {
    value: 'http://10.0.0.2',
    lease: b,
  });
  t.equal(taken.status, 409);
  t.equal(taken.body.error.code, 'name_taken');
  t.equal(taken.body.entry.lease, a, 'the 409 names the holder');

  const again = await call(c.url(2), 'PUT', '/v1/registry/svc/api', {
    value: 'http://10.0.0.9',
    lease: a,
  });
  t.equal(again.status, 200, 'the owner re-registering updates the value');
  t.equal(again.body.value, 'http://10.0.0.9');

  t.equal((await call(c.url(1), 'GET', '/v1/registry/svc/api')).body.value, 'http://10.0.0.9');
  t.equal((await call(c.url(1), 'GET', '/v1/registry/nope')).status, 404);
  await call(c.url(0), 'PUT', '/v1/registry/svc/db', { value: 'x', lease: b });
  const list = await call(c.url(2), 'GET', '/v1/registry?prefix=svc/');
  t.same(
    list.body.entries.map((e: { name: string }) => e.name),
    ['svc/api', 'svc/db'],
  );
  t.equal(
    (await call(c.url(0), 'GET', '/v1/kv?prefix=')).body.kvs.length,
    0,
    'registry entries are not user keys',
  );

  t.equal(
    (await call(c.url(0), 'DELETE', `/v1/registry/svc/db?lease=${a}`)).status,
    409,
    'only the owner unregisters',
  );
  t.equal((await call(c.url(0), 'DELETE', `/v1/registry/svc/db?lease=${b}`)).status, 200);
  t.equal((await call(c.url(0), 'GET', '/v1/registry/svc/db')).status, 404);

  await call(c.url(0), 'DELETE', `/v1/leases/${a}`);
  t.equal(
    (await call(c.url(0), 'GET', '/v1/registry/svc/api')).status,
    404,
    'revoking the lease drops its names',
  );
  const now = await call(c.url(1), 'PUT', '/v1/registry/svc/api', {
    value: 'http://10.0.0.2',
    lease: b,
  });
  t.equal(now.status, 201, 'the name is free for another lease');
  t.equal(
    (await call(c.url(1), 'PUT', '/v1/registry/x', { value: 'v', lease: 'missing' })).status,
    404,
  );
});
