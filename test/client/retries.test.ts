/**
 * Retries, failover and the Idempotency-Key, against fake servers that fail
 * on purpose: what is retried, where, after how long, and with which key.
 */
import { createServer } from 'node:net';
import t from 'tap';
import { Client, RaftkvError } from '../../src/client/index.js';
import { apiError, fakeServer, kv, sendJson } from './helpers.js';

const putOk = (revision: number) => ({
  revision,
  kv: kv('k', 'v', revision),
  prevKv: null,
});

/** A port with nothing listening on it. */
async function deadPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

t.test('a write applied but cut off before its answer is retried with the same key', async (t) => {
  const applied = new Map<string, number>();
  let revision = 0;
  const srv = await fakeServer((req, res, n) => {
    const key = req.headers['idempotency-key'] as string;
    // Apply at most once per key, as the server's dedup table does.
    if (!applied.has(key)) applied.set(key, ++revision);
    if (n === 1) {
      res.socket?.destroy(); // applied, then the connection dies: outcome unknown to the client
      return;
    }
    sendJson(res, 200, putOk(applied.get(key)!));
  });
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url], backoffMs: 1 });
  t.teardown(() => client.close());

  const res = await client.put('k', 'v');
  t.equal(res.revision, 1, 'the retry got the first attempt’s result');
  t.equal(srv.requests.length, 2, 'one retry');
  const [a, b] = srv.requests;
  t.match(a!.headers['idempotency-key'], /^[\x21-\x7e]{1,128}$/, 'a key is sent');
  t.equal(
    a!.headers['idempotency-key'],
    b!.headers['idempotency-key'],
    'the same key on the retry',
  );
  t.equal(a!.body, b!.body, 'the same body');
  t.strictSame(JSON.parse(a!.body), { value: 'v' });

  await client.put('k', 'v');
  t.not(
    srv.requests[2]!.headers['idempotency-key'],
    a!.headers['idempotency-key'],
    'a new logical call gets a new key',
  );
  t.equal(revision, 2, 'each logical write applied exactly once');

  await client.put('k', 'v', { idempotencyKey: 'my-own-key' });
  t.equal(srv.requests[3]!.headers['idempotency-key'], 'my-own-key', 'a caller’s key is used');
});

t.test('every kind of write carries a key; reads do not', async (t) => {
  const srv = await fakeServer((req, res) => {
    if (req.url.startsWith('/v1/txn'))
      return sendJson(res, 200, { succeeded: true, revision: 1, results: [] });
    if (req.url.startsWith('/v1/compact'))
      return sendJson(res, 200, { revision: 1, compactRevision: 1 });
    if (req.method === 'DELETE')
      return sendJson(res, 200, { deleted: 0, revision: 1, prevKvs: [] });
    if (req.method === 'GET') return sendJson(res, 200, { kv: kv('k', 'v', 1), revision: 1 });
    sendJson(res, 200, putOk(1));
  });
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url] });
  t.teardown(() => client.close());
  await client.put('k', 'v');
  await client.delete('k', { prefix: true, prevRevision: 3 });
  await client.txn({ success: [{ op: 'put', key: 'a', value: 'b' }] });
  await client.compact(1);
  await client.get('k', { revision: 2, consistency: 'serializable', minRevision: 1 });
  const keys = srv.requests.map((r) => r.headers['idempotency-key']);
  t.equal(new Set(keys.slice(0, 4)).size, 4, 'four writes, four distinct keys');
  t.equal(keys[4], undefined, 'no key on a read');
  t.strictSame(
    srv.requests.map((r) => `${r.method} ${r.url}`),
    [
      'PUT /v1/kv/k',
      'DELETE /v1/kv/k?prefix=true&prevRevision=3',
      'POST /v1/txn',
      'POST /v1/compact',
      'GET /v1/kv/k?revision=2&consistency=serializable&minRevision=1',
    ],
  );
  t.strictSame(JSON.parse(srv.requests[2]!.body), {
    compare: [],
    success: [{ op: 'put', key: 'a', value: 'b' }],
    failure: [],
  });
  t.equal(srv.requests[0]!.headers['content-type'], 'application/json');
});

t.test('a dead endpoint first: the next one answers at once', async (t) => {
  const srv = await fakeServer((_req, res) => sendJson(res, 200, putOk(7)));
  t.teardown(() => srv.close());
  const dead = `http://127.0.0.1:${await deadPort()}`;
  const client = new Client({ endpoints: [dead, srv.url] });
  t.teardown(() => client.close());
  const started = Date.now();
  t.equal((await client.put('k', 'v')).revision, 7);
  t.ok(Date.now() - started < 1000, 'no backoff before trying a fresh endpoint');
  await client.put('k', 'v');
  t.equal(srv.requests.length, 2);
  t.equal(client.transport.current, srv.url, 'the endpoint that answered is preferred');
});

t.test('503: the next endpoint is tried at once, with the same key', async (t) => {
  const a = await fakeServer((_req, res) =>
    apiError(res, 503, 'unavailable', {}, { 'retry-after': '5' }),
  );
  const b = await fakeServer((_req, res) => sendJson(res, 200, putOk(3)));
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const client = new Client({ endpoints: [a.url, b.url] });
  t.teardown(() => client.close());
  const started = Date.now();
  t.equal((await client.put('k', 'v')).revision, 3);
  t.ok(Date.now() - started < 1000, 'Retry-After does not hold back a fresh endpoint');
  t.equal(a.requests[0]!.headers['idempotency-key'], b.requests[0]!.headers['idempotency-key']);
});

t.test('503 on the only endpoint: Retry-After is honoured up to the cap', async (t) => {
  const srv = await fakeServer((_req, res, n) =>
    n === 1
      ? apiError(res, 503, 'unavailable', {}, { 'retry-after': '30' })
      : sendJson(res, 200, putOk(1)),
  );
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url], retryAfterMaxMs: 300, backoffMs: 1 });
  t.teardown(() => client.close());
  const started = Date.now();
  await client.put('k', 'v');
  const ms = Date.now() - started;
  t.ok(ms >= 250 && ms < 3000, `waited ${ms} ms (cap 300 ms, not 30 s)`);
});

t.test('429 is retried on the same endpoint after Retry-After', async (t) => {
  const a = await fakeServer((_req, res, n) =>
    n === 1
      ? apiError(res, 429, 'too_many_requests', {}, { 'retry-after': '0' })
      : sendJson(res, 200, putOk(1)),
  );
  const b = await fakeServer((_req, res) => sendJson(res, 200, putOk(2)));
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const client = new Client({ endpoints: [a.url, b.url], backoffMs: 1 });
  t.teardown(() => client.close());
  t.equal((await client.put('k', 'v')).revision, 1);
  t.equal(a.requests.length, 2);
  t.equal(b.requests.length, 0);
});

t.test(
  '504 on a write is retried (it carries a key); exhausted retries report timeout',
  async (t) => {
    const srv = await fakeServer((_req, res) => apiError(res, 504, 'timeout'));
    t.teardown(() => srv.close());
    const client = new Client({ endpoints: [srv.url], retries: 2, backoffMs: 1 });
    t.teardown(() => client.close());
    const err = await client.put('k', 'v').catch((e: unknown) => e);
    t.ok(err instanceof RaftkvError);
    t.match(err, { code: 'timeout', status: 504 });
    t.equal(srv.requests.length, 3, 'first attempt + 2 retries');
    t.equal(
      new Set(srv.requests.map((r) => r.headers['idempotency-key'])).size,
      1,
      'one key across them',
    );
  },
);

t.test('definite failures are not retried; compare_failed carries kv and revision', async (t) => {
  const current = kv('k', 'other', 4);
  const srv = await fakeServer((req, res) => {
    if (req.method === 'PUT')
      return apiError(res, 409, 'compare_failed', { kv: current, revision: 9 });
    if (req.url.startsWith('/v1/kv/missing'))
      return apiError(res, 404, 'key_not_found', { revision: 9 });
    apiError(res, 400, 'invalid_request');
  });
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url] });
  t.teardown(() => client.close());
  const cas = await client.put('k', 'v', { prevValue: 'x' }).catch((e: unknown) => e);
  t.match(cas, { name: 'RaftkvError', code: 'compare_failed', status: 409, revision: 9 });
  t.strictSame((cas as RaftkvError).kv, current);
  const missing = await client.get('missing').catch((e: unknown) => e);
  t.match(missing, { code: 'key_not_found', status: 404, revision: 9 });
  t.match(await client.list({ limit: 0 }).catch((e: unknown) => e), { code: 'invalid_request' });
  t.equal(srv.requests.length, 3, 'one attempt each');
});

t.test('a request that gets no answer in time is retried with the same key', async (t) => {
  const srv = await fakeServer((_req, res, n) => {
    if (n === 1) return; // never answer the first attempt
    sendJson(res, 200, putOk(1));
  });
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url], timeoutMs: 200, backoffMs: 1 });
  t.teardown(() => client.close());
  await client.put('k', 'v');
  t.equal(srv.requests.length, 2);
  t.equal(srv.requests[0]!.headers['idempotency-key'], srv.requests[1]!.headers['idempotency-key']);
});

t.test('when every attempt fails: unavailable, status 0, after retries + 1 attempts', async (t) => {
  const srv = await fakeServer((_req, res) => {
    res.socket?.destroy();
  });
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url], retries: 3, backoffMs: 1 });
  t.teardown(() => client.close());
  const err = await client.get('k').catch((e: unknown) => e);
  t.match(err, { code: 'unavailable', status: 0, endpoint: srv.url });
  t.equal(srv.requests.length, 4);

  const dead = new Client({
    endpoints: [`http://127.0.0.1:${await deadPort()}`],
    retries: 2,
    backoffMs: 1,
  });
  t.teardown(() => dead.close());
  t.match(await dead.status().catch((e: unknown) => e), { code: 'unavailable', status: 0 });
});

t.test('an aborted call stops retrying and rejects with the abort reason', async (t) => {
  const srv = await fakeServer((_req, res) =>
    apiError(res, 503, 'unavailable', {}, { 'retry-after': '1' }),
  );
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url], retries: 100 });
  t.teardown(() => client.close());
  const err = await client
    .put('k', 'v', { signal: AbortSignal.timeout(300) })
    .catch((e: unknown) => e);
  t.equal((err as Error).name, 'TimeoutError');
  t.ok(srv.requests.length < 5, `stopped after ${srv.requests.length} attempts`);
});

t.test('health: an unhealthy node’s 503 is an answer', async (t) => {
  const srv = await fakeServer((_req, res) =>
    sendJson(res, 503, { status: 'unhealthy', reason: 'no leader' }, { 'retry-after': '1' }),
  );
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url] });
  t.teardown(() => client.close());
  t.strictSame(await client.health(), {
    healthy: false,
    status: 'unhealthy',
    reason: 'no leader',
  });
  t.equal(srv.requests.length, 1);
});

t.test('bad options are rejected', async (t) => {
  t.throws(() => new Client({ endpoints: [] }), { code: 'invalid_request' });
  t.throws(() => new Client({ endpoints: ['x:1'], timeoutMs: 0 }), { code: 'invalid_request' });
  t.throws(() => new Client({ endpoints: ['ftp://x'] }), { code: 'invalid_request' });
});
