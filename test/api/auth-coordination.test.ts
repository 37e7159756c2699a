/**
 * API.md "What needs which permission": registering, unregistering, acquiring,
 * releasing, campaigning, proclaiming and resigning need `write` (and nothing
 * more) on the name; `read` alone is refused. The server turns these into txns
 * that also compare and get the name's key, and the state machine checks every
 * user's command again when it applies: that check must ask only `write` too.
 */
import t from 'tap';
import { assertError, http, type Json, type Method, startSingleNode } from './helpers.js';

const basic = (name: string, password: string) =>
  `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}`;

t.test(
  'write-only users use the registry, locks and elections; read-only ones cannot',
  async (t) => {
    const node = await startSingleNode();
    t.teardown(() => node.close());
    const call = (method: Method, path: string, authorization?: string, body?: Json) =>
      http(node.url, method, path, {
        headers: authorization ? { authorization } : {},
        ...(body !== undefined ? { body } : {}),
      });
    const all = (access: string) =>
      (['registry', 'locks', 'elections'] as const).map((resource) => ({
        resource,
        prefix: '',
        access,
      }));
    t.equal(
      (await call('PUT', '/v1/auth/roles/w', undefined, { permissions: all('write') })).status,
      201,
    );
    t.equal(
      (await call('PUT', '/v1/auth/roles/r', undefined, { permissions: all('read') })).status,
      201,
    );
    for (const [name, roles] of [
      ['root', ['root']],
      ['writer', ['w']],
      ['reader', ['r']],
    ] as const)
      t.equal(
        (await call('PUT', `/v1/auth/users/${name}`, undefined, { password: 'pw', roles })).status,
        201,
      );
    t.equal((await call('POST', '/v1/auth/enable')).status, 200);
    const writer = basic('writer', 'pw');
    const reader = basic('reader', 'pw');
    const lease = (await call('POST', '/v1/leases', writer, { ttl: 60 })).body.id as string;
    const readerLease = (await call('POST', '/v1/leases', reader, { ttl: 60 })).body.id as string;

    const reg = await call('PUT', '/v1/registry/svc', writer, { value: 'a', lease });
    t.equal(reg.status, 201, `register: ${reg.text}`);
    const again = await call('PUT', '/v1/registry/svc', writer, { value: 'b', lease });
    t.equal(again.status, 200, `re-register: ${again.text}`);
    t.equal(again.body?.value, 'b');
    assertError(
      t,
      await call('PUT', '/v1/registry/other', reader, { value: 'a', lease: readerLease }),
      403,
      'permission_denied',
      'read-only register',
    );
    assertError(t, await call('DELETE', '/v1/registry/svc', reader), 403, 'permission_denied');
    const unreg = await call('DELETE', `/v1/registry/svc?lease=${lease}`, writer);
    t.equal(unreg.status, 200, `unregister: ${unreg.text}`);

    const held = await call('POST', '/v1/locks/l', writer, { lease });
    t.equal(held.status, 200, `acquire: ${held.text}`);
    const lockKey = encodeURIComponent(held.body.key as string);
    assertError(
      t,
      await call('DELETE', `/v1/locks/l?key=${lockKey}`, reader),
      403,
      'permission_denied',
    );
    t.equal((await call('DELETE', `/v1/locks/l?key=${lockKey}`, writer)).status, 200, 'release');

    const won = await call('POST', '/v1/elections/e/campaign', writer, { lease, value: 'x' });
    t.equal(won.status, 200, `campaign: ${won.text}`);
    const key = won.body.leader.key as string;
    assertError(
      t,
      await call('POST', '/v1/elections/e/proclaim', reader, { key, value: 'z' }),
      403,
      'permission_denied',
      'read-only proclaim',
    );
    const proclaimed = await call('POST', '/v1/elections/e/proclaim', writer, { key, value: 'y' });
    t.equal(proclaimed.status, 200, `proclaim: ${proclaimed.text}`);
    t.equal(proclaimed.body?.leader?.value, 'y');
    const leaderPath = `/v1/elections/e/leader?key=${encodeURIComponent(key)}`;
    assertError(t, await call('DELETE', leaderPath, reader), 403, 'permission_denied');
    t.equal((await call('DELETE', leaderPath, writer)).status, 200, 'resign');
  },
);
