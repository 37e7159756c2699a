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
