/**
 * API.md's error table for outcomes a healthy node rarely produces (backpressure,
 * no leader, unknown outcome, a bug), through buildApp() over a fake ApiService.
 */
import t from 'tap';
import { Client } from 'undici';
import { buildApp } from '../../src/api/app.js';
import type { ApiService, WatchSink } from '../../src/api/service.js';
import { ServerError } from '../../src/server/errors.js';
import { assertError, inject, type Json } from './helpers.js';

/**
 * A service whose every method fails with `failure`, except what a test
 * overrides. A Proxy, so it keeps up with methods added to ApiService.
 */
function fakeService(failure: () => never, overrides: Partial<ApiService> = {}): ApiService {
  const fail = async () => failure();
  const target: Record<string | symbol, unknown> = {
    requestTimeoutMs: 1000,
    requestDeadline: () => AbortSignal.timeout(1000),
    authState: { enabled: false },
    onAuthChange: () => () => {},
    // Not removed from the cluster (a failing stub would read as a reason).
    removed: () => undefined,
    // Instrumentation, called after every response: not a service call that can fail.
    observeRequest: () => {},
    observeWrite: () => {},
    ...overrides,
  };
  return new Proxy(target, {
    get: (o, name) => {
      if (name in o) return o[name];
      // Not a thenable, and no symbols: only method names get the failing stub.
      return typeof name === 'string' && name !== 'then' ? fail : undefined;
    },
  }) as unknown as ApiService;
}

const requests: [string, 'GET' | 'PUT' | 'POST' | 'DELETE', string, unknown][] = [
  ['PUT', 'PUT', '/v1/kv/a', { value: 'x' }],
  ['DELETE', 'DELETE', '/v1/kv/a', undefined],
  ['txn', 'POST', '/v1/txn', {}],
  ['compact', 'POST', '/v1/compact', { revision: 1 }],
  ['GET', 'GET', '/v1/kv/a', undefined],
  ['list', 'GET', '/v1/kv', undefined],
  ['status', 'GET', '/v1/status', undefined],
  ['watch', 'GET', '/v1/watch/a', undefined],
];

const outcomes: [string, () => never, number, string, string | undefined][] = [
  [
    'backpressure',
    () => {
      throw new ServerError('too_many_requests', 'too many writes', { retryAfterSeconds: 2 });
    },
    429,
    'too_many_requests',
    '2',
  ],
  [
    'no leader',
    () => {
      throw new ServerError('unavailable', 'no leader');
    },
    503,
    'unavailable',
    '1',
  ],
  [
    'not the leader',
    () => {
      throw new ServerError('not_leader', 'not the leader');
    },
    503,
    'unavailable',
    '1',
  ],
  [
    'outcome unknown',
    () => {
      throw new ServerError('timeout', 'timed out');
    },
    504,
    'timeout',
    undefined,
  ],
  [
    'a bug',
    () => {
      throw new TypeError('cannot read properties of undefined');
    },
    500,
    'internal',
    undefined,
  ],
];

for (const [what, failure, status, code, retryAfter] of outcomes) {
  t.test(`${what}: ${status} ${code}`, async (t) => {
    const app = buildApp(fakeService(failure));
    t.teardown(() => app.close());
    for (const [name, method, url, body] of requests) {
      const r = await inject(app, method, url, body === undefined ? {} : { body });
      assertError(t, r, status, code, name);
      t.equal(
        r.headers['retry-after'],
        retryAfter,
        `${name}: Retry-After ${retryAfter ?? 'absent'}`,
      );
      if (code === 'internal')
        t.notMatch(r.text, /cannot read properties/, 'no internals leak into the body');
    }
  });
}

t.test('the service errors of the KV state machine keep their extra fields', async (t) => {
  const app = buildApp(
    fakeService(
      () => {
        throw new Error('unused');
      },
      {
        get: async () => ({
          ok: false,
          code: 'compacted',
          message: 'compacted',
          revision: 9,
          compactRevision: 5,
        }),
        put: async () => ({ ok: false, code: 'future_revision', message: 'future', revision: 9 }),
      },
    ),
  );
  t.teardown(() => app.close());
  const old = await inject(app, 'GET', '/v1/kv/a?revision=2');
  assertError(t, old, 410, 'compacted');
  t.equal(old.body.revision, 9);
  t.equal(old.body.compactRevision, 5);
  const future = await inject(app, 'PUT', '/v1/kv/a', { body: { value: 'x' } });
  assertError(t, future, 400, 'invalid_request', 'an internal code never reaches the wire');
});

t.test('/health: 503 with Retry-After when the node is not ready', async (t) => {
  const app = buildApp(
    fakeService(
      () => {
        throw new Error('unused');
      },
      { health: async () => ({ healthy: false, reason: 'no leader' }) },
    ),
  );
  t.teardown(() => app.close());
  const r = await inject(app, 'GET', '/health');
  t.equal(r.status, 503);
  t.equal(r.headers['retry-after'], '1');
  t.equal(r.body.status, 'unhealthy');
  t.equal(r.body.reason, 'no leader');
});

t.test('a watch the server closes ends with a closed event', async (t) => {
  let sink: WatchSink | undefined;
  const app = buildApp(
    fakeService(
      () => {
        throw new Error('unused');
      },
      {
        watch: async (_req, s) => {
          sink = s;
          queueMicrotask(() => {
            s.change({ revision: 7, events: [] });
            s.closed('shutdown', 7);
          });
          return { cancel() {} };
        },
      },
    ),
  );
  t.teardown(() => app.close());
  const r = await inject(app, 'GET', '/v1/watch/a');
  t.ok(sink, 'the service got a sink');
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /^text\/event-stream/);
  t.equal(
    r.text,
    'event: change\nid: 7\ndata: {"revision":7,"events":[]}\n\n' +
      'event: closed\ndata: {"reason":"shutdown","revision":7}\n\n',
  );
});

t.test(
  'a request pipelined behind one in flight while the server closes is shed (503, Retry-After) or never read',
  async (t) => {
    let entered: () => void = () => {};
    let release: () => void = () => {};
    const inService = new Promise<void>((r) => {
      entered = r;
    });
    const blocked = new Promise<void>((r) => {
      release = r;
    });
    const app = buildApp(
      fakeService(
        () => {
          throw new Error('unused');
        },
        {
          put: async (req) => {
            entered();
            await blocked;
            const kv = {
              key: req.key,
              value: req.value,
              createRevision: 1,
              modRevision: 1,
              version: 1,
              lease: null,
            };
            return { ok: true, op: 'put', revision: 1, kv, prevKv: null };
          },
        },
      ),
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    // Two requests pipelined on one connection: the second is read only after the first is answered.
    const client = new Client(`http://127.0.0.1:${port}`, { pipelining: 2 });
    t.teardown(() => client.destroy());
    const request = (path: string) =>
      client
        .request({
          method: 'PUT',
          path,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ value: 'x' }),
          signal: AbortSignal.timeout(5000),
        })
        .then(async (res) => ({
          status: res.statusCode,
          headers: res.headers,
          body: (await res.body.json()) as Json,
        }));
    const first = request('/v1/kv/first');
    const second = request('/v1/kv/second');
    await inService;
    const closed = app.close();
    await new Promise((r) => setTimeout(r, 50));
    release();
    const a = await first;
    t.equal(a.status, 200, 'the request in flight is answered');
    t.equal(a.headers.connection, 'close', 'and tells the client not to send more on it');
    // The pipelined request behind it is either read and shed with 503, or never read: the
    // connection closes after the first answer (its Connection: close), and the client's retry
    // finds the port closed. Never is it applied.
    const b = await second.catch((err: NodeJS.ErrnoException) => err);
    if (b instanceof Error) {
      t.match(b.code, /^(ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET|UND_ERR_CLOSED)$/, 'not read');
    } else {
      t.equal(b.status, 503, 'the next one is shed');
      t.equal(b.body.error?.code, 'unavailable');
      t.type(b.body.error?.message, 'string');
      t.equal(b.headers['retry-after'], '1');
    }
    await closed;
  },
);
