/**
 * The client's credentials against a fake server (auth-fake.ts): tokens
 * fetched once, renewed before expiry, one bounded retry after a 401, Basic,
 * static tokens, no header without auth, typed errors, watches, and the
 * users/roles API with its read-modify-write grants.
 */
import t from 'tap';
import {
  Client,
  mergePermission,
  PermissionDeniedError,
  RaftkvError,
  TooManyRequestsError,
  UnauthenticatedError,
  type WatchResponse,
} from '../../src/client/index.js';
import { type FakeServer, startFake } from './auth-fake.js';

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as RaftkvError,
  );

async function setup(
  t: { teardown(fn: () => unknown): void },
  fakeOptions: Parameters<typeof startFake>[0] = {},
  clientOptions: Partial<ConstructorParameters<typeof Client>[0]> = {},
): Promise<{ fake: FakeServer; client: Client }> {
  const fake = await startFake(fakeOptions);
  const client = new Client({ endpoints: [fake.url], retries: 2, backoffMs: 5, ...clientOptions });
  t.teardown(async () => {
    await client.close();
    await fake.close();
  });
  return { fake, client };
}

const kvRequests = (fake: FakeServer) => fake.requests.filter((r) => r.url.startsWith('/v1/kv'));
const tokenRequests = (fake: FakeServer) => fake.requests.filter((r) => r.url === '/v1/auth/token');

t.test('without auth configured no Authorization header is sent', async (t) => {
  const { fake, client } = await setup(t, { enabled: false });
  await client.put('a', '1');
  await client.get('a');
  t.equal(kvRequests(fake).length, 2);
  t.same(
    kvRequests(fake).map((r) => r.authorization),
    [undefined, undefined],
  );
  t.equal(tokenRequests(fake).length, 0);
});

t.test(
  'without credentials an enabled cluster answers UnauthenticatedError, not retried',
  async (t) => {
    const { fake, client } = await setup(t);
    const err = await errorOf(client.get('a'));
    t.ok(err instanceof UnauthenticatedError, 'typed');
    t.ok(err instanceof RaftkvError, 'still a RaftkvError');
    t.match(err, { code: 'unauthenticated', status: 401 });
    t.equal(kvRequests(fake).length, 1);
  },
);

t.test('Basic credentials go with every request and no token is fetched', async (t) => {
  const { fake, client } = await setup(
    t,
    {},
    { auth: { name: 'root', password: 'rootpw', basic: true } },
  );
  await client.put('a', '1');
  t.equal((await client.get('a')).kv.value, '1');
  const basic = `Basic ${Buffer.from('root:rootpw').toString('base64')}`;
  t.same(
    kvRequests(fake).map((r) => r.authorization),
    [basic, basic],
  );
  t.equal(tokenRequests(fake).length, 0);
});

t.test('concurrent requests share one token request', async (t) => {
  const { fake, client } = await setup(
    t,
    { tokenDelayMs: 150 },
    { auth: { name: 'root', password: 'rootpw' } },
  );
  await client.put('a', '1'); // (as root: allowed)
  fake.requests.length = 0;
  fake.issued.length = 0;
  const fresh = new Client({ endpoints: [fake.url], auth: { name: 'root', password: 'rootpw' } });
  t.teardown(() => fresh.close());
  const results = await Promise.all(Array.from({ length: 12 }, () => fresh.get('a')));
  t.equal(results.length, 12);
  t.equal(tokenRequests(fake).length, 1, 'one POST /v1/auth/token for 12 requests');
  t.same(tokenRequests(fake)[0]!.body, { name: 'root', password: 'rootpw' });
  t.equal(tokenRequests(fake)[0]!.authorization, undefined, 'the token request is anonymous');
  const bearer = `Bearer ${fake.issued[0]}`;
  t.ok(
    kvRequests(fake).every((r) => r.authorization === bearer),
    'every request carries that token',
  );
  t.equal(kvRequests(fake).length, 12, 'no request was refused and sent again');
});

t.test('a token is reused until 80 % of its ttl, then renewed before it expires', async (t) => {
  const { fake, client } = await setup(
    t,
    { ttlSeconds: 2 },
    { auth: { name: 'root', password: 'rootpw' } },
  );
  await client.put('a', '1');
  await client.get('a');
  t.equal(fake.issued.length, 1, 'reused well before 80 %');
  await new Promise((r) => setTimeout(r, 1_700)); // past 1.6 s, before the 2 s expiry
  await client.get('a');
  t.equal(fake.issued.length, 2, 'renewed on the next request');
  const last = kvRequests(fake).at(-1)!;
  t.equal(last.authorization, `Bearer ${fake.issued[1]}`, 'sent with the new token');
  t.equal(
    fake.requests.filter((r) => r.url.startsWith('/v1/kv') && r.url === '/v1/kv/a').length,
    3,
    'renewed before sending: no request was refused',
  );
});

t.test(
  'a token the server stopped accepting is replaced and the request sent once more',
  async (t) => {
    const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'rootpw' } });
    await client.put('a', '1');
    fake.invalidateTokens(); // e.g. the password was changed elsewhere
    fake.requests.length = 0;
    t.equal((await client.get('a')).kv.value, '1');
    t.same(
      fake.requests.map((r) => `${r.method} ${r.url}`),
      ['GET /v1/kv/a', 'POST /v1/auth/token', 'GET /v1/kv/a'],
    );
    t.equal(fake.requests[2]!.authorization, `Bearer ${fake.issued[1]}`);
    t.not(fake.requests[0]!.authorization, fake.requests[2]!.authorization);
  },
);

t.test('a write refused with 401 is sent again with the same Idempotency-Key', async (t) => {
  const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'rootpw' } });
  await client.get('a').catch(() => {});
  fake.invalidateTokens();
  fake.requests.length = 0;
  await client.put('b', '2');
  const puts = fake.requests.filter((r) => r.method === 'PUT');
  t.equal(puts.length, 2);
  t.ok(puts[0]!.idempotencyKey);
  t.equal(puts[0]!.idempotencyKey, puts[1]!.idempotencyKey);
});

t.test('repeated 401s: one fresh token, one more try, then UnauthenticatedError', async (t) => {
  const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'rootpw' } });
  await client.put('a', '1');
  fake.requests.length = 0;
  fake.reject401(1_000);
  const err = await errorOf(client.get('a'));
  fake.reject401(0);
  t.ok(err instanceof UnauthenticatedError);
  t.match(err?.message, /freshly fetched token of user "root"/);
  t.equal(kvRequests(fake).length, 2, 'exactly two tries');
  t.equal(tokenRequests(fake).length, 1, 'exactly one new token');
});

t.test('concurrent requests refused with the same token share one new token', async (t) => {
  const { fake, client } = await setup(
    t,
    { tokenDelayMs: 100 },
    { auth: { name: 'root', password: 'rootpw' } },
  );
  await client.put('a', '1');
  fake.invalidateTokens();
  fake.requests.length = 0;
  await Promise.all(Array.from({ length: 8 }, () => client.get('a')));
  t.equal(tokenRequests(fake).length, 1);
  t.equal(kvRequests(fake).length, 16, 'each sent twice');
});

t.test(
  'a wrong password is UnauthenticatedError from the token request; nothing else is sent',
  async (t) => {
    const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'nope' } });
    const err = await errorOf(client.put('a', '1'));
    t.ok(err instanceof UnauthenticatedError);
    t.match(err?.message, /authenticating as "root" failed: wrong user name or password/);
    t.equal(kvRequests(fake).length, 0);
    t.equal(tokenRequests(fake).length, 1, 'a refused password is not tried again');
  },
);

t.test(
  'a throttled token request is TooManyRequestsError with retryAfterMs, not retried',
  async (t) => {
    const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'rootpw' } });
    fake.state.throttleToken = true;
    const err = await errorOf(client.get('a'));
    t.ok(err instanceof TooManyRequestsError);
    t.match(err, { code: 'too_many_requests', status: 429, retryAfterMs: 7_000 });
    t.equal(tokenRequests(fake).length, 1);
  },
);

t.test('health() needs no credentials: no token is fetched for it', async (t) => {
  const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'wrong' } });
  t.same(await client.health(), { healthy: true, status: 'ok' });
  t.equal(tokenRequests(fake).length, 0);
  t.equal(fake.requests.at(-1)!.authorization, undefined);
});

t.test('{token}: sent as is, never renewed; a 401 is not retried', async (t) => {
  const fake = await startFake();
  t.teardown(() => fake.close());
  const admin = new Client({ endpoints: [fake.url] });
  t.teardown(() => admin.close());
  const { token } = await admin.auth.token('root', 'rootpw');
  const client = new Client({ endpoints: [fake.url], auth: { token } });
  t.teardown(() => client.close());
  await client.put('a', '1');
  t.equal(kvRequests(fake)[0]!.authorization, `Bearer ${token}`);
  fake.invalidateTokens();
  const err = await errorOf(client.get('a'));
  t.ok(err instanceof UnauthenticatedError);
  t.match(err?.message, /the token given/);
  t.equal(kvRequests(fake).length, 2, 'one try only');
  t.equal(tokenRequests(fake).length, 1, "only the admin's token request");
});

t.test('403 is PermissionDeniedError', async (t) => {
  const { fake, client } = await setup(t, {}, { auth: { name: 'bob', password: 'pw' } });
  fake.users.set('bob', { password: 'pw', roles: ['reader'] });
  fake.roles.set('reader', [{ resource: 'kv', prefix: 'pub/', access: 'read' }]);
  const err = await errorOf(client.put('pub/x', '1'));
  t.ok(err instanceof PermissionDeniedError);
  t.match(err, { code: 'permission_denied', status: 403 });
  t.equal(kvRequests(fake).length, 1, 'not retried');
});

t.test('a watch sends the header, and re-authenticates when it reconnects', async (t) => {
  const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'rootpw' } });
  const watch = client.watch('w', { fromRevision: 5 });
  const it = watch[Symbol.asyncIterator]();
  const first = it.next();
  await until(() => fake.requests.some((r) => r.url.startsWith('/v1/watch/')));
  fake.emit('change', { revision: 5, events: [{ type: 'put', kv: { key: 'w', value: 'x' } }] }, 5);
  t.equal(((await first).value as WatchResponse).revision, 5);
  const watchRequests = () => fake.requests.filter((r) => r.url.startsWith('/v1/watch/'));
  t.equal(watchRequests()[0]!.authorization, `Bearer ${fake.issued[0]}`);

  fake.invalidateTokens(); // the token dies while the stream is up…
  fake.dropWatches(); // …and then the stream drops
  const second = it.next();
  await until(() => watchRequests().length >= 3);
  fake.emit('change', { revision: 6, events: [{ type: 'put', kv: { key: 'w', value: 'y' } }] }, 6);
  t.equal(((await second).value as WatchResponse).revision, 6);
  const [, refused, accepted] = watchRequests();
  t.equal(refused!.authorization, `Bearer ${fake.issued[0]}`, 'reconnected with the old token');
  t.equal(accepted!.authorization, `Bearer ${fake.issued[1]}`, 'then with a fresh one');
  t.equal(accepted!.lastEventId, '5', 'resuming where it was');
  watch.close();
});

t.test('a watch ends with PermissionDeniedError on closed/permission_revoked', async (t) => {
  const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'rootpw' } });
  const watch = client.watch('w', { fromRevision: 5 });
  const next = watch.next();
  await until(() => fake.requests.some((r) => r.url.startsWith('/v1/watch/')));
  fake.emit('closed', { reason: 'permission_revoked', revision: 7 });
  // A watch that resumed instead would wait forever: give it 5 s.
  const err = await errorOf(
    Promise.race([
      next,
      new Promise((_, reject) => setTimeout(() => reject(new Error('still watching')), 5_000)),
    ]),
  );
  t.ok(err instanceof PermissionDeniedError);
  t.match(err?.message, /permission revoked/);
  t.equal(fake.requests.filter((r) => r.url.startsWith('/v1/watch/')).length, 1, 'no resume');
});

t.test('users: put (201/200), get, list, delete, password, with exact bodies', async (t) => {
  const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'rootpw' } });
  const created = await client.auth.putUser('bob', { password: 'pw1', roles: ['r1'] });
  t.same(created, { name: 'bob', roles: ['r1'], created: true });
  const updated = await client.auth.putUser('bob', { roles: ['r1', 'r2'] });
  t.same(updated, { name: 'bob', roles: ['r1', 'r2'], created: false });
  const puts = fake.requests.filter((r) => r.method === 'PUT');
  t.same(
    puts.map((r) => [r.url, r.body]),
    [
      ['/v1/auth/users/bob', { password: 'pw1', roles: ['r1'] }],
      ['/v1/auth/users/bob', { roles: ['r1', 'r2'] }],
    ],
  );
  t.ok(
    puts.every((r) => r.idempotencyKey),
    'writes carry an Idempotency-Key',
  );
  t.same(await client.auth.getUser('bob'), { name: 'bob', roles: ['r1', 'r2'] });
  t.same(
    (await client.auth.listUsers()).map((u) => u.name),
    ['root', 'bob'],
  );
  await client.auth.changePassword('bob', 'pw2');
  t.same(fake.requests.at(-1)!.body, { password: 'pw2' });
  t.equal(fake.users.get('bob')?.password, 'pw2');
  await client.auth.deleteUser('bob');
  t.match(fake.requests.at(-1), { method: 'DELETE', url: '/v1/auth/users/bob' });
  const err = await errorOf(client.auth.getUser('bob'));
  t.match(err, { status: 404 });
  await client.auth.putUser('a/b c', {});
  t.equal(fake.requests.at(-1)!.url, '/v1/auth/users/a%2Fb%20c', 'a name is one path segment');
});

t.test('grantRole/revokeRole read the user, then PUT the whole new list', async (t) => {
  const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'rootpw' } });
  fake.users.set('bob', { password: 'pw', roles: ['r1'] });
  fake.requests.length = 0;
  const granted = await client.auth.grantRole('bob', 'r2');
  t.same(granted, { changed: true, value: { name: 'bob', roles: ['r1', 'r2'] } });
  t.same(
    fake.requests.filter((r) => r.url !== '/v1/auth/token').map((r) => [r.method, r.url, r.body]),
    [
      ['GET', '/v1/auth/users/bob', undefined],
      ['PUT', '/v1/auth/users/bob', { roles: ['r1', 'r2'] }],
    ],
  );
  fake.requests.length = 0;
  t.same(await client.auth.grantRole('bob', 'r2'), {
    changed: false,
    value: { name: 'bob', roles: ['r1', 'r2'] },
  });
  t.equal(fake.requests.filter((r) => r.method === 'PUT').length, 0, 'nothing to write');
  const revoked = await client.auth.revokeRole('bob', 'r1');
  t.same(revoked.value.roles, ['r2']);
  t.same(fake.requests.at(-1)!.body, { roles: ['r2'] }, 'the password is left out: kept');
  t.equal((await client.auth.revokeRole('bob', 'r1')).changed, false);
});

t.test('roles: put, get, list, delete, and permission grants merged per prefix', async (t) => {
  const { fake, client } = await setup(t, {}, { auth: { name: 'root', password: 'rootpw' } });
  const created = await client.auth.putRole('app', [
    { resource: 'kv', prefix: 'app/', access: 'read' },
  ]);
  t.same(created, {
    name: 'app',
    permissions: [{ resource: 'kv', prefix: 'app/', access: 'read' }],
    created: true,
  });
  t.same(fake.requests.at(-1)!.body, {
    permissions: [{ resource: 'kv', prefix: 'app/', access: 'read' }],
  });
  const g = await client.auth.grantPermission('app', {
    resource: 'kv',
    prefix: 'app/',
    access: 'write',
  });
  t.same(g.value.permissions, [{ resource: 'kv', prefix: 'app/', access: 'readwrite' }]);
  await client.auth.grantPermission('app', { resource: 'locks', prefix: '', access: 'write' });
  t.same(fake.roles.get('app'), [
    { resource: 'kv', prefix: 'app/', access: 'readwrite' },
    { resource: 'locks', prefix: '', access: 'write' },
  ]);
  const r = await client.auth.revokePermission('app', {
    resource: 'kv',
    prefix: 'app/',
    access: 'read',
  });
  t.same(r.value.permissions, [
    { resource: 'kv', prefix: 'app/', access: 'write' },
    { resource: 'locks', prefix: '', access: 'write' },
  ]);
  const none = await client.auth.revokePermission('app', {
    resource: 'registry',
    prefix: 'x',
    access: 'read',
  });
  t.equal(none.changed, false);
  t.same(await client.auth.getRole('app'), { name: 'app', permissions: fake.roles.get('app') });
  t.same(
    (await client.auth.listRoles()).map((x) => x.name),
    ['app'],
  );
  await client.auth.deleteRole('app');
  t.notOk(fake.roles.has('app'));
  const bad = await errorOf(
    client.auth.putRole('x', [{ resource: 'files', prefix: '', access: 'read' } as never]),
  );
  t.match(bad, { code: 'invalid_request', message: /resource must be one of kv, registry/ });
});

t.test('enable, disable, status and token', async (t) => {
  const { fake, client } = await setup(
    t,
    { enabled: false },
    { auth: { name: 'root', password: 'rootpw' } },
  );
  t.same(await client.auth.status(), { enabled: false });
  t.same(await client.auth.enable(), { enabled: true });
  t.equal(fake.state.enabled, true);
  t.same(await client.auth.status(), { enabled: true });
  t.equal(
    fake.requests.filter((r) => r.url === '/v1/auth/status').every((r) => !r.authorization),
    true,
    'status needs no credentials and gets none',
  );
  t.same(await client.auth.disable(), { enabled: false });
  t.match(fake.requests.at(-1), { method: 'POST', url: '/v1/auth/disable' });
  t.match(fake.requests.at(-1)!.authorization, /^Bearer /);
  const tok = await client.auth.token('root', 'rootpw');
  t.equal(tok.token, fake.issued.at(-1));
  t.equal(tok.ttl, 300);
});

t.test('mergePermission combines access on one exact prefix and keeps the others', async (t) => {
  const kv = (prefix: string, access: 'read' | 'write' | 'readwrite') =>
    ({ resource: 'kv', prefix, access }) as const;
  t.same(mergePermission([], kv('a', 'read'), 'grant'), [kv('a', 'read')]);
  t.same(mergePermission([kv('a', 'read')], kv('a', 'write'), 'grant'), [kv('a', 'readwrite')]);
  t.same(mergePermission([kv('a', 'readwrite')], kv('a', 'read'), 'revoke'), [kv('a', 'write')]);
  t.same(mergePermission([kv('a', 'read')], kv('a', 'readwrite'), 'revoke'), []);
  t.same(mergePermission([kv('a', 'read'), kv('ab', 'read')], kv('a', 'read'), 'revoke'), [
    kv('ab', 'read'),
  ]);
  t.same(
    mergePermission([kv('a', 'read'), kv('b', 'read'), kv('a', 'write')], kv('a', 'read'), 'grant'),
    [kv('a', 'readwrite'), kv('b', 'read')],
    'duplicates on one prefix become one entry',
  );
  t.same(
    mergePermission(
      [kv('a', 'read')],
      { resource: 'locks', prefix: 'a', access: 'read' },
      'revoke',
    ),
    [kv('a', 'read')],
    'another resource is another permission',
  );
});

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
