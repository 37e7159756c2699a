/**
 * The 200 bodies of the KV routes are written by compiled response schemas
 * (fast-json-stringify), not JSON.stringify: they must come out byte for byte
 * as JSON.stringify writes the service's results, with API.md's field order,
 * for any key, value, lease and revision. A fake ApiService returns generated
 * results through buildApp() and inject().
 */
import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import t from 'tap';
import { buildApp } from '../../src/api/app.js';
import type { ApiService } from '../../src/api/service.js';
import type { KeyValue } from '../../src/kv/mvcc/key-value.js';
import type { TxnOpResult } from '../../src/kv/results.js';

// Well-formed text (the store rejects lone surrogates), with quotes, control characters,
// U+2028 and astral characters, short and long (fast-json-stringify switches strategy at ~42).
const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 60 }),
  fc.string({
    unit: fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\u2028', 'é', '😀', 'a'),
    maxLength: 80,
  }),
);
const revision = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const keyValue: fc.Arbitrary<KeyValue> = fc.record({
  key: text,
  value: text,
  createRevision: revision,
  modRevision: revision,
  version: fc.nat(),
  lease: fc.option(fc.stringMatching(/^[0-9a-f]{1,16}$/), { nil: null }),
});
const opResult: fc.Arbitrary<TxnOpResult> = fc.oneof(
  fc.record({ op: fc.constant('put' as const), kv: keyValue }),
  fc.record({ op: fc.constant('get' as const), kvs: fc.array(keyValue, { maxLength: 3 }) }),
  fc.record({ op: fc.constant('delete' as const), deleted: fc.nat() }),
);

/** Every route answers `result` (set per run); anything else is not called. */
function serviceAnswering(result: { current: unknown }): ApiService {
  const answer = async () => result.current;
  return {
    requestTimeoutMs: 1000,
    requestDeadline: () => AbortSignal.timeout(1000),
    authState: { enabled: false },
    removed: () => undefined,
    get: answer,
    range: answer,
    put: answer,
    delete: answer,
    txn: answer,
  } as unknown as ApiService;
}

t.test('KV 200 bodies are exactly JSON.stringify of the results', async (t) => {
  const result: { current: unknown } = { current: undefined };
  const app = buildApp(serviceAnswering(result));
  t.teardown(() => app.close());
  const cases: [string, fc.Arbitrary<object>, () => InjectOptions, (r: object) => object][] = [
    [
      'GET /v1/kv/{key}',
      fc.record({ ok: fc.constant(true), kv: keyValue, revision }),
      () => ({ method: 'GET', url: '/v1/kv/a' }),
      (r) => {
        const { kv, revision } = r as { kv: KeyValue; revision: number };
        return { kv, revision };
      },
    ],
    [
      'GET /v1/kv',
      fc.record({ kvs: fc.array(keyValue, { maxLength: 4 }), more: fc.boolean(), revision }),
      () => ({ method: 'GET', url: '/v1/kv?prefix=a' }),
      (r) => r,
    ],
    [
      'PUT /v1/kv/{key}',
      fc.record({
        ok: fc.constant(true),
        op: fc.constant('put'),
        revision,
        kv: keyValue,
        prevKv: fc.option(keyValue, { nil: null }),
      }),
      () => ({ method: 'PUT', url: '/v1/kv/a', payload: { value: 'v' } }),
      (r) => {
        const { revision, kv, prevKv } = r as { revision: number; kv: KeyValue; prevKv: unknown };
        return { revision, kv, prevKv };
      },
    ],
    [
      'DELETE /v1/kv/{key}',
      fc.record({
        ok: fc.constant(true),
        op: fc.constant('delete'),
        revision,
        deleted: fc.nat(),
        prevKvs: fc.array(keyValue, { maxLength: 3 }),
      }),
      () => ({ method: 'DELETE', url: '/v1/kv/a' }),
      (r) => {
        const { deleted, revision, prevKvs } = r as {
          deleted: number;
          revision: number;
          prevKvs: unknown;
        };
        return { deleted, revision, prevKvs };
      },
    ],
    [
      'POST /v1/txn',
      fc.record({
        ok: fc.constant(true),
        op: fc.constant('txn'),
        revision,
        succeeded: fc.boolean(),
        results: fc.array(opResult, { maxLength: 4 }),
      }),
      () => ({ method: 'POST', url: '/v1/txn', payload: {} }),
      (r) => {
        const { succeeded, revision, results } = r as {
          succeeded: boolean;
          revision: number;
          results: unknown;
        };
        return { succeeded, revision, results };
      },
    ],
  ];
  for (const [name, arbitrary, request, expected] of cases) {
    await fc.assert(
      fc.asyncProperty(arbitrary, async (r) => {
        result.current = r;
        const res = await app.inject(request());
        if (res.statusCode !== 200) throw new Error(`${name}: ${res.statusCode} ${res.body}`);
        if (res.body !== JSON.stringify(expected(r)))
          throw new Error(`${name}:\n${res.body}\n!==\n${JSON.stringify(expected(r))}`);
        if (res.headers['content-type'] !== 'application/json; charset=utf-8')
          throw new Error(`${name}: content-type ${res.headers['content-type']}`);
      }),
      { numRuns: 150 },
    );
    t.pass(`${name}: 150 generated results`);
  }
});
