/**
 * A request that arrives while the node closes gets API.md's 503 `unavailable`
 * (with Retry-After and `connection: close`) from the onRequest hook: nothing
 * is applied, and the client may go to another node.
 */
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { buildApp } from '../../src/api/app.js';
import type { ApiService } from '../../src/api/service.js';

t.test('requests during close get 503 unavailable, and the service is not called', async (t) => {
  let called = 0;
  const service = {
    requestTimeoutMs: 1000,
    requestDeadline: () => AbortSignal.timeout(1000),
    put: async () => {
      called++;
      throw new Error('must not be called while closing');
    },
  } as unknown as ApiService;
  const app = buildApp(service);
  let answer: { status: number; headers: Record<string, unknown>; body: unknown } | undefined;
  // Runs after buildApp's own preClose hook, while the server still accepts requests.
  app.addHook('preClose', async () => {
    const port = (app.server.address() as AddressInfo).port;
    const res = await request(`http://127.0.0.1:${port}/v1/kv/a`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'x' }),
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    answer = { status: res.statusCode, headers: res.headers, body: await res.body.json() };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  await app.close();
  t.equal(answer?.status, 503);
  t.equal(answer?.headers['retry-after'], '1');
  t.equal(answer?.headers.connection, 'close');
  t.match(answer?.body, { error: { code: 'unavailable', message: /shutting down/ } });
  t.equal(called, 0);
});
