/**
 * What the API fuzzer (fuzz.test.ts) found, one case each, over raw HTTP to
 * one node: each must get an answer with API.md's error body.
 */
import t from 'tap';
import { problemsOf } from './fuzz/oracle.js';
import { send } from './fuzz/wire.js';
import { type SingleNode, startSingleNode } from './helpers.js';

let n: SingleNode;
let port = 0;
t.before(async () => {
  n = await startSingleNode();
  port = Number(new URL(n.url).port);
});
t.teardown(() => n?.close());

function errorOf(body: Buffer): { code?: string; message?: string } | undefined {
  try {
    return (JSON.parse(body.toString('utf8')) as { error?: { code?: string; message?: string } })
      .error;
  } catch {
    return undefined;
  }
}

t.test('a CONNECT request is answered 404 not_found, not dropped without a word', async (t) => {
  for (const target of ['/v1/status', '127.0.0.1:443', '/V1/STATUS']) {
    const reply = await send(
      port,
      { method: 'CONNECT', target, headers: [] },
      { headersWithinMs: 5000 },
    );
    t.equal(reply.status, 404, `CONNECT ${target}: 404`);
    t.equal(errorOf(reply.body)?.code, 'not_found', `CONNECT ${target}: code not_found`);
    t.strictSame(
      problemsOf(
        {
          route: 'unknown route',
          node: 0,
          method: 'CONNECT',
          target,
          headers: [],
          kind: 'read',
          mutation: [],
          dedup: false,
          waitMs: 0,
          publicRoute: false,
          reachesAuth: false,
        },
        reply,
      ),
      [],
      `CONNECT ${target}: API.md's error body`,
    );
  }
  // The server still serves ordinary requests afterwards.
  const status = await send(
    port,
    { method: 'GET', target: '/v1/status', headers: [] },
    { headersWithinMs: 5000 },
  );
  t.equal(status.status, 200);
});

t.test(
  'path parameters as long as API.md allows reach their routes (the router refused over 100 characters)',
  async (t) => {
    const get = (path: string) =>
      send(port, { method: 'GET', target: path, headers: [] }, { headersWithinMs: 5000 });
    const post = (path: string, body?: unknown) =>
      send(
        port,
        {
          method: 'POST',
          target: path,
          headers: body === undefined ? [] : [['content-type', 'application/json']],
          ...(body === undefined ? {} : { body: Buffer.from(JSON.stringify(body)) }),
        },
        { headersWithinMs: 5000 },
      );
    // A lease id of 128 characters is granted: it must be usable.
    const id = 'l'.repeat(128);
    t.equal(
      (await post('/v1/leases', { ttl: 600, id })).status,
      201,
      'a 128-character lease id is granted',
    );
    t.equal((await get(`/v1/leases/${id}`)).status, 200, 'and looked up');
    t.equal((await post(`/v1/leases/${id}/keepalive`)).status, 200, 'and kept alive');
    // Lock and election names of 256 characters, even fully percent-encoded.
    const name = 'é'.repeat(256);
    const lock = await post(`/v1/locks/${encodeURIComponent(name)}`, {
      lease: id,
      timeoutMs: 1000,
    });
    t.equal(lock.status, 200, 'a lock named with 256 characters is acquired');
    t.equal(
      (await get(`/v1/elections/${encodeURIComponent(name)}`)).status,
      404,
      'an election of 256 characters has no leader (404, not 400)',
    );
    // User names of 128 characters: looked up (404: no such user), not refused as a bad URL.
    const user = await get(`/v1/auth/users/${'u'.repeat(128)}`);
    t.equal(user.status, 404, 'a 128-character user name is looked up');
    t.equal(errorOf(user.body)?.code, 'user_not_found');
    // Beyond the limits, the route itself says what is wrong.
    const tooLong = await get(`/v1/elections/${'e'.repeat(257)}`);
    t.equal(tooLong.status, 400);
    t.match(
      errorOf(tooLong.body)?.message ?? '',
      /name is 1 to 256 characters/,
      'the route names the limit',
    );
  },
);
