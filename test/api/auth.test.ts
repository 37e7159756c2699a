/**
 * API.md "Security": users, roles, enabling auth, tokens, Basic credentials,
 * permission checks, and what stops a token working, on one real node.
 */
import t from 'tap';
import { startCluster } from '../integration/helpers.js';
import { assertError, eventually, http, type Json, openSse, startSingleNode } from './helpers.js';

const basic = (name: string, password: string) =>
  `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}`;
const bearer = (token: string) => `Bearer ${token}`;

t.test('auth: users, roles, tokens and permissions', async (t) => {
  const node = await startSingleNode();
  t.teardown(() => node.close());
  const url = node.url;
  const as = (authorization?: string): Record<string, string> =>
    authorization ? { authorization } : {};
  const call = (
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    authorization?: string,
    body?: Json,
    headers: Record<string, string> = {},
  ) =>
    http(url, method, path, {
      headers: { ...as(authorization), ...headers },
      ...(body !== undefined ? { body } : {}),
    });
  const root = basic('root', 'rootpw');

  t.test('auth is off until enabled, and cannot be enabled without root', async (t) => {
    t.same((await call('GET', '/v1/auth/status')).body, { enabled: false });
    assertError(t, await call('POST', '/v1/auth/enable'), 400, 'invalid_request');
  });

  t.test('users and roles are created, updated and never show a password', async (t) => {
    const role = await call('PUT', '/v1/auth/roles/app', undefined, {
      permissions: [{ resource: 'kv', prefix: 'app/', access: 'readwrite' }],
    });
    t.equal(role.status, 201);
    t.same(role.body, {
      name: 'app',
      permissions: [{ resource: 'kv', prefix: 'app/', access: 'readwrite' }],
    });
    t.equal(
      (
        await call('PUT', '/v1/auth/roles/reader', undefined, {
          permissions: [{ resource: 'kv', prefix: 'app/', access: 'read' }],
        })
      ).status,
      201,
    );
    assertError(
      t,
      await call('PUT', '/v1/auth/roles/root', undefined, { permissions: [] }),
      400,
      'invalid_request',
      'the root role cannot be changed',
    );
    const created = await call('PUT', '/v1/auth/users/root', undefined, {
      password: 'rootpw',
      roles: ['root'],
    });
    t.equal(created.status, 201);
    t.same(created.body, { name: 'root', roles: ['root'] });
    t.equal(
      (
        await call('PUT', '/v1/auth/users/alice', undefined, {
          password: 'alicepw',
          roles: ['app'],
        })
      ).status,
      201,
    );
    t.equal(
      (await call('PUT', '/v1/auth/users/bob', undefined, { password: 'bobpw' })).status,
      201,
    );
    const updated = await call('PUT', '/v1/auth/users/bob', undefined, { roles: ['reader'] });
    t.equal(updated.status, 200);
    t.same(updated.body, { name: 'bob', roles: ['reader'] });
    assertError(
      t,
      await call('PUT', '/v1/auth/users/carol', undefined, { roles: ['nosuchrole'] }),
      404,
      'role_not_found',
    );
    const list = await call('GET', '/v1/auth/users');
    t.same(
      list.body.users.map((u: Json) => u.name),
      ['alice', 'bob', 'root'],
    );
    t.notMatch(list.text, /pw|scrypt|hash/i, 'no password or hash in the listing');
    t.same((await call('GET', '/v1/auth/users/alice')).body, { name: 'alice', roles: ['app'] });
    assertError(t, await call('GET', '/v1/auth/users/nobody'), 404, 'user_not_found');
  });

  t.test('once enabled, every request but the public ones needs credentials', async (t) => {
    t.same((await call('POST', '/v1/auth/enable')).body, { enabled: true });
    t.same((await call('GET', '/v1/auth/status')).body, { enabled: true });
    assertError(
      t,
      await call('PUT', '/v1/kv/app/x', undefined, { value: '1' }),
      401,
      'unauthenticated',
    );
    assertError(t, await call('GET', '/v1/kv/app/x'), 401, 'unauthenticated');
    assertError(t, await call('GET', '/v1/status'), 401, 'unauthenticated');
    assertError(t, await call('GET', '/v1/status', 'Bearer nonsense'), 401, 'unauthenticated');
    assertError(t, await call('GET', '/v1/status', basic('root', 'wrong')), 401, 'unauthenticated');
    t.equal((await call('GET', '/health')).status, 200);
    t.equal((await call('GET', '/metrics')).status, 200);
    t.equal((await call('GET', '/v1/status', root)).status, 200);
  });

  let aliceToken = '';
  t.test('tokens: one answer for a wrong name or password; a good one works', async (t) => {
    const wrongPassword = await call('POST', '/v1/auth/token', undefined, {
      name: 'alice',
      password: 'nope',
    });
    const wrongName = await call('POST', '/v1/auth/token', undefined, {
      name: 'nobody',
      password: 'nope',
    });
    assertError(t, wrongPassword, 401, 'unauthenticated');
    assertError(t, wrongName, 401, 'unauthenticated');
    t.equal(wrongPassword.body.error.message, wrongName.body.error.message, 'same answer');
    const ok = await call('POST', '/v1/auth/token', undefined, {
      name: 'alice',
      password: 'alicepw',
    });
    t.equal(ok.status, 200);
    t.type(ok.body.token, 'string');
    t.ok(ok.body.ttl > 0);
    aliceToken = ok.body.token;
    const put = await call('PUT', '/v1/kv/app/x', bearer(aliceToken), { value: '1' });
    t.equal(put.status, 200, put.text);
    t.equal((await call('GET', '/v1/kv/app/x', basic('alice', 'alicepw'))).body.kv.value, '1');
  });

  t.test('a user without the permission gets 403 and nothing is applied', async (t) => {
    const alice = bearer(aliceToken);
    assertError(
      t,
      await call('PUT', '/v1/kv/other/x', alice, { value: '1' }),
      403,
      'permission_denied',
    );
    assertError(
      t,
      await call('GET', '/v1/kv', alice),
      403,
      'permission_denied',
      'listing everything',
    );
    assertError(
      t,
      await call('GET', '/v1/kv?prefix=ap', alice),
      403,
      'permission_denied',
      'a wider prefix',
    );
    t.equal((await call('GET', '/v1/kv?prefix=app/', alice)).status, 200);
    const txn = await call('POST', '/v1/txn', alice, {
      compare: [],
      success: [
        { op: 'put', key: 'app/y', value: '2' },
        { op: 'put', key: 'other/y', value: '2' },
      ],
      failure: [],
    });
    assertError(t, txn, 403, 'permission_denied', 'a txn with one key outside');
    assertError(
      t,
      await call('GET', '/v1/kv/app/y', root),
      404,
      'key_not_found',
      'nothing applied',
    );
    assertError(t, await call('GET', '/v1/kv/other/x', root), 404, 'key_not_found');
    const bob = basic('bob', 'bobpw');
    t.equal((await call('GET', '/v1/kv/app/x', bob)).status, 200, 'read is enough to read');
    assertError(
      t,
      await call('PUT', '/v1/kv/app/x', bob, { value: '2' }),
      403,
      'permission_denied',
    );
    for (const [method, path, body] of [
      ['POST', '/v1/compact', { revision: 1 }],
      ['GET', '/v1/auth/users', undefined],
      ['PUT', '/v1/auth/users/mallory', { password: 'x' }],
      ['POST', '/v1/auth/disable', undefined],
      ['GET', '/v1/snapshot', undefined],
      ['POST', '/v1/cluster/leader', {}],
    ] as const)
      assertError(
        t,
        await call(method, path, alice, body),
        403,
        'permission_denied',
        `${method} ${path}`,
      );
    t.equal((await call('GET', '/v1/cluster/members', alice)).status, 200);
  });

  t.test('leases belong to the user who granted them', async (t) => {
    const alice = bearer(aliceToken);
    const bob = basic('bob', 'bobpw');
    const lease = await call('POST', '/v1/leases', alice, { ttl: 30 });
    t.equal(lease.status, 201);
    const id = lease.body.id as string;
    assertError(t, await call('POST', `/v1/leases/${id}/keepalive`, bob), 403, 'permission_denied');
    assertError(t, await call('GET', `/v1/leases/${id}`, bob), 403, 'permission_denied');
    assertError(t, await call('DELETE', `/v1/leases/${id}`, bob), 403, 'permission_denied');
    t.equal((await call('POST', `/v1/leases/${id}/keepalive`, alice)).status, 200);
    t.equal((await call('PUT', '/v1/kv/app/leased', alice, { value: 'v', lease: id })).status, 200);
    const bobLease = await call('POST', '/v1/leases', bob, { ttl: 30 });
    t.same(
      (await call('GET', '/v1/leases', bob)).body.leases.map((l: Json) => l.id),
      [bobLease.body.id],
      'a user lists only its own leases',
    );
    t.ok((await call('GET', '/v1/leases', root)).body.leases.length >= 2, 'root lists all');
    t.equal((await call('GET', `/v1/leases/${id}`, root)).status, 200, 'root may look');
  });

  t.test('Idempotency-Key results belong to the user who wrote', async (t) => {
    const alice = bearer(aliceToken);
    const first = await call(
      'PUT',
      '/v1/kv/app/idem',
      alice,
      { value: 'a' },
      { 'idempotency-key': 'k1' },
    );
    const again = await call(
      'PUT',
      '/v1/kv/app/idem',
      alice,
      { value: 'a' },
      { 'idempotency-key': 'k1' },
    );
    t.equal(
      again.body.revision,
      first.body.revision,
      'a retry by the same user is not applied twice',
    );
    const byRoot = await call(
      'PUT',
      '/v1/kv/app/idem',
      root,
      { value: 'a' },
      { 'idempotency-key': 'k1' },
    );
    t.ok(byRoot.body.revision > first.body.revision, "another user's same key is another write");
  });

  t.test('a watch ends with permission_revoked when its user loses the permission', async (t) => {
    const stream = await openSse(url, '/v1/watch/app/?prefix=true', {
      authorization: basic('alice', 'alicepw'),
    });
    t.equal(stream.status, 200);
    t.teardown(() => stream.close());
    await call('PUT', '/v1/kv/app/w', root, { value: '1' });
    const [change] = await stream.changes(1);
    t.equal(change?.data.events[0].kv.key, 'app/w');
    t.equal((await call('PUT', '/v1/auth/users/alice', root, { roles: [] })).status, 200);
    const closed = await eventually('the closed event', async () => {
      const e = await stream.next(5000);
      return e === undefined || e.event !== 'progress' ? (e ?? null) : undefined;
    });
    t.equal(closed?.event, 'closed');
    t.equal(closed?.data.reason, 'permission_revoked');
    t.equal(await stream.next(5000), undefined, 'and the stream ends');
  });

  t.test(
    'a token stops working when its user changes, is deleted, or auth is re-enabled',
    async (t) => {
      assertError(
        t,
        await call('GET', '/v1/status', bearer(aliceToken)),
        401,
        'unauthenticated',
        'roles changed',
      );
      await call('PUT', '/v1/auth/users/alice', root, { roles: ['app'] });
      const fresh = (
        await call('POST', '/v1/auth/token', undefined, { name: 'alice', password: 'alicepw' })
      ).body.token as string;
      t.equal((await call('GET', '/v1/status', bearer(fresh))).status, 200);
      await call('PUT', '/v1/auth/users/alice', root, { password: 'newpw' });
      assertError(
        t,
        await call('GET', '/v1/status', bearer(fresh)),
        401,
        'unauthenticated',
        'password changed',
      );
      assertError(
        t,
        await call('GET', '/v1/status', basic('alice', 'alicepw')),
        401,
        'unauthenticated',
      );
      const bobToken = (
        await call('POST', '/v1/auth/token', undefined, { name: 'bob', password: 'bobpw' })
      ).body.token as string;
      t.equal((await call('GET', '/v1/status', bearer(bobToken))).status, 200);
      t.equal((await call('POST', '/v1/auth/disable', root)).status, 200);
      t.equal((await call('POST', '/v1/auth/enable')).status, 200);
      assertError(
        t,
        await call('GET', '/v1/status', bearer(bobToken)),
        401,
        'unauthenticated',
        're-enabled',
      );
      t.equal((await call('DELETE', '/v1/auth/users/bob', root)).status, 200);
      assertError(
        t,
        await call('GET', '/v1/status', basic('bob', 'bobpw')),
        401,
        'unauthenticated',
        'deleted',
      );
      assertError(t, await call('DELETE', '/v1/auth/users/root', root), 400, 'invalid_request');
    },
  );

  t.test('repeated failed logins for one name get 429 with Retry-After', async (t) => {
    let last: Json;
    for (let i = 0; i < 8; i++) {
      last = await call('POST', '/v1/auth/token', undefined, { name: 'victim', password: `x${i}` });
      if (last.status === 429) break;
    }
    assertError(t, last, 429, 'too_many_requests');
    t.ok(Number(last.headers['retry-after']) >= 1, 'Retry-After is set');
    t.equal(
      (await call('POST', '/v1/auth/token', undefined, { name: 'root', password: 'rootpw' }))
        .status,
      200,
      'other names are not throttled',
    );
  });
});

t.test(
  'auth across members: any member verifies any member’s token, right after the change',
  async (t) => {
    const cluster = await startCluster(3, { requestTimeoutMs: 3000 });
    t.teardown(() => cluster.close());
    await cluster.waitForLeader();
    const urls = [0, 1, 2].map((i) => cluster.url(i));
    const root = basic('root', 'rootpw');
    const at = (
      i: number,
      method: 'GET' | 'PUT' | 'POST',
      path: string,
      auth?: string,
      body?: Json,
    ) =>
      http(urls[i]!, method, path, {
        headers: auth ? { authorization: auth } : {},
        ...(body !== undefined ? { body } : {}),
      });
    t.equal(
      (
        await at(0, 'PUT', '/v1/auth/users/root', undefined, {
          password: 'rootpw',
          roles: ['root'],
        })
      ).status,
      201,
    );
    t.equal((await at(1, 'POST', '/v1/auth/enable')).status, 200);
    // Straight away on another member: it may not have applied the change yet, and must catch up.
    t.equal((await at(2, 'GET', '/v1/status', root)).status, 200, 'Basic on a third member');
    // Member 2 hears of every change 100 ms late (half an election timeout here): it lags
    // behind what was acknowledged, yet still follows the leader.
    const lagging = (await at(2, 'GET', '/v1/status', root)).body.id as string;
    const rules = cluster.filters.map((f) => f.delay(100, undefined, lagging));
    t.equal(
      (await at(1, 'PUT', '/v1/auth/users/carol', root, { password: 'carolpw' })).status,
      201,
    );
    const token = await at(2, 'POST', '/v1/auth/token', undefined, {
      name: 'carol',
      password: 'carolpw',
    });
    t.equal(token.status, 200, `a token for a user created through another member: ${token.text}`);
    for (const i of [0, 1, 2])
      t.equal(
        (await at(i, 'GET', '/v1/status', bearer(token.body.token))).status,
        200,
        `member ${i} accepts it`,
      );
    t.equal(
      (await at(0, 'PUT', '/v1/auth/users/carol', root, { password: 'changed' })).status,
      200,
    );
    for (const i of [0, 1, 2]) {
      await eventually(`member ${i} refuses the old token`, async () =>
        (await at(i, 'GET', '/v1/status', bearer(token.body.token))).status === 401
          ? true
          : undefined,
      );
    }
    t.pass('the old token stopped working on every member');
    for (const [i, f] of cluster.filters.entries()) f.removeRule(rules[i]!);
  },
);
