/**
 * Bad input, endpoint by endpoint: each request gets the right status and
 * API.md's `{"error": {"code", "message"}}` body (never a 500, never a hang),
 * applies nothing, and leaves the stored data readable.
 */
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import {
  assertError,
  type Case,
  http,
  inject,
  kvPath,
  type Method,
  type RequestOptions,
  type SingleNode,
  startSingleNode,
} from './helpers.js';

let n: SingleNode;
let sentinelRevision = 0;
t.before(async () => {
  n = await startSingleNode();
  const w = await inject(n.app, 'PUT', kvPath('sentinel/key'), { body: { value: 'keep me' } });
  sentinelRevision = w.body.revision;
});
t.teardown(() => n?.close());

const JSON_CT = { 'content-type': 'application/json' };

async function currentRevision(): Promise<number> {
  return (await inject(n.app, 'GET', '/v1/status')).body.revision as number;
}

/** Runs each case, checks its error, and that the revision did not move. */
async function expectAll(t: Test, cases: Case[]): Promise<void> {
  const before = await currentRevision();
  for (const [what, method, url, opts, status, code] of cases) {
    const r = await inject(n.app, method, url, opts);
    assertError(t, r, status, code, what);
  }
  t.equal(await currentRevision(), before, 'none of them wrote anything');
}

const put = (body: unknown, key = 'bad/target'): [Method, string, RequestOptions] => [
  'PUT',
  kvPath(key),
  typeof body === 'string' ? { body, headers: JSON_CT } : { body },
];

t.test('malformed JSON bodies', (t) =>
  expectAll(t, [
    ['not JSON', ...put('{bad'), 400, 'invalid_request'],
    ['truncated', ...put('{"value": "x"'), 400, 'invalid_request'],
    ['trailing garbage', ...put('{"value": "x"} tail'), 400, 'invalid_request'],
    ['deeply nested', ...put('['.repeat(100_000)), 400, 'invalid_request'],
    ['single quotes', ...put("{'value': 'x'}"), 400, 'invalid_request'],
    ['empty body', ...put(''), 400, 'invalid_request'],
    ['null', ...put('null'), 400, 'invalid_request'],
    ['an array', ...put('[{"value": "x"}]'), 400, 'invalid_request'],
    ['a string', ...put('"x"'), 400, 'invalid_request'],
    ['a number', ...put('5'), 400, 'invalid_request'],
    [
      'txn: not JSON',
      'POST',
      '/v1/txn',
      { body: '{"success": [', headers: JSON_CT },
      400,
      'invalid_request',
    ],
    [
      'compact: not JSON',
      'POST',
      '/v1/compact',
      { body: 'revision=3', headers: JSON_CT },
      400,
      'invalid_request',
    ],
  ]),
);

t.test('wrong or missing content-type', (t) =>
  expectAll(t, [
    [
      'text/plain',
      'PUT',
      kvPath('bad/ct'),
      { body: '{"value":"x"}', headers: { 'content-type': 'text/plain' } },
      400,
      'invalid_request',
    ],
    ['no content-type', 'PUT', kvPath('bad/ct'), { body: '{"value":"x"}' }, 400, 'invalid_request'],
    [
      'form encoded',
      'PUT',
      kvPath('bad/ct'),
      { body: 'value=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      400,
      'invalid_request',
    ],
    [
      'xml',
      'PUT',
      kvPath('bad/ct'),
      { body: '<value>x</value>', headers: { 'content-type': 'application/xml' } },
      400,
      'invalid_request',
    ],
    [
      'octet-stream',
      'PUT',
      kvPath('bad/ct'),
      { body: 'xx', headers: { 'content-type': 'application/octet-stream' } },
      400,
      'invalid_request',
    ],
    [
      'txn as text',
      'POST',
      '/v1/txn',
      { body: '{}', headers: { 'content-type': 'text/plain' } },
      400,
      'invalid_request',
    ],
  ]),
);

t.test('PUT: wrong types, missing and unknown fields', (t) =>
  expectAll(t, [
    ['value: 5', ...put({ value: 5 }), 400, 'invalid_request'],
    ['value: null', ...put({ value: null }), 400, 'invalid_request'],
    ['value: true', ...put({ value: true }), 400, 'invalid_request'],
    ['value: object', ...put({ value: { a: 1 } }), 400, 'invalid_request'],
    ['value: array', ...put({ value: ['x'] }), 400, 'invalid_request'],
    ['no value', ...put({}), 400, 'invalid_request'],
    ['only prevValue', ...put({ prevValue: 'x' }), 400, 'invalid_request'],
    ['lease: 5', ...put({ value: 'x', lease: 5 }), 400, 'invalid_request'],
    ['lease: ""', ...put({ value: 'x', lease: '' }), 400, 'invalid_request'],
    ['lease: null', ...put({ value: 'x', lease: null }), 400, 'invalid_request'],
    ['prevRevision: "3"', ...put({ value: 'x', prevRevision: '3' }), 400, 'invalid_request'],
    ['prevRevision: -1', ...put({ value: 'x', prevRevision: -1 }), 400, 'invalid_request'],
    ['prevRevision: 1.5', ...put({ value: 'x', prevRevision: 1.5 }), 400, 'invalid_request'],
    ['prevRevision: null', ...put({ value: 'x', prevRevision: null }), 400, 'invalid_request'],
    ['prevRevision: true', ...put({ value: 'x', prevRevision: true }), 400, 'invalid_request'],
    ['prevRevision: 2^60', ...put({ value: 'x', prevRevision: 2 ** 60 }), 400, 'invalid_request'],
    ['prevValue: 5', ...put({ value: 'x', prevValue: 5 }), 400, 'invalid_request'],
    ['prevValue: null', ...put({ value: 'x', prevValue: null }), 400, 'invalid_request'],
    ['unknown field', ...put({ value: 'x', ttl: 5 }), 400, 'invalid_request'],
    ['misspelt field', ...put({ value: 'x', prev_revision: 1 }), 400, 'invalid_request'],
    ['wrong case', ...put({ Value: 'x' }), 400, 'invalid_request'],
    [
      '__proto__ field',
      ...put('{"value": "x", "__proto__": {"admin": true}}'),
      400,
      'invalid_request',
    ],
    [
      'constructor field',
      ...put('{"value": "x", "constructor": {"prototype": {}}}'),
      400,
      'invalid_request',
    ],
    ['lone surrogate', ...put('{"value": "\\ud800"}'), 400, 'invalid_request'],
    [
      'unknown query parameter',
      'PUT',
      kvPath('bad/target', '?ttl=5'),
      { body: { value: 'x' } },
      400,
      'invalid_request',
    ],
  ]),
);

t.test('sizes: value > 1 MiB, key > 4 KiB, txn > 128 ops are 413 too_large', async (t) => {
  const MiB = 1024 * 1024;
  await expectAll(t, [
    ['value of 1 MiB + 1', ...put({ value: 'v'.repeat(MiB + 1) }), 413, 'too_large'],
    [
      'value of 1 MiB + 1 in UTF-8 bytes',
      ...put({ value: `${'v'.repeat(MiB - 1)}é` }),
      413,
      'too_large',
    ],
    ['body of 3 MiB', ...put({ value: 'v'.repeat(3 * MiB) }), 413, 'too_large'],
    [
      'prevValue of 1 MiB + 1',
      ...put({ value: 'x', prevValue: 'v'.repeat(MiB + 1) }),
      413,
      'too_large',
    ],
    ['key of 4097 bytes', ...put({ value: 'x' }, 'k'.repeat(4097)), 413, 'too_large'],
    ['key of 4098 UTF-8 bytes', ...put({ value: 'x' }, 'é'.repeat(2049)), 413, 'too_large'],
    ['DELETE key of 4097 bytes', 'DELETE', kvPath('k'.repeat(4097)), {}, 413, 'too_large'],
    [
      'txn: 129 success ops',
      'POST',
      '/v1/txn',
      {
        body: {
          success: Array.from({ length: 129 }, (_, i) => ({
            op: 'put',
            key: `t/${i}`,
            value: 'x',
          })),
        },
      },
      413,
      'too_large',
    ],
    [
      'txn: 129 failure ops',
      'POST',
      '/v1/txn',
      { body: { failure: Array.from({ length: 129 }, (_, i) => ({ op: 'get', key: `t/${i}` })) } },
      413,
      'too_large',
    ],
    [
      'txn: 129 compares',
      'POST',
      '/v1/txn',
      {
        body: {
          compare: Array.from({ length: 129 }, (_, i) => ({
            key: `t/${i}`,
            target: 'version',
            op: '==',
            value: 0,
          })),
        },
      },
      413,
      'too_large',
    ],
    [
      'txn: key of 4097 bytes',
      'POST',
      '/v1/txn',
      { body: { success: [{ op: 'put', key: 'k'.repeat(4097), value: 'x' }] } },
      413,
      'too_large',
    ],
    [
      'txn: value of 1 MiB + 1',
      'POST',
      '/v1/txn',
      { body: { success: [{ op: 'put', key: 'k', value: 'v'.repeat(MiB + 1) }] } },
      413,
      'too_large',
    ],
  ]);

  // The limits themselves are allowed.
  const atLimit = await inject(n.app, 'PUT', kvPath('k'.repeat(4096)), {
    body: { value: 'v'.repeat(MiB) },
  });
  t.equal(atLimit.status, 200, 'a 4096-byte key with a 1 MiB value');
  t.equal(atLimit.body.kv.value.length, MiB);
  const unicodeKey = await inject(n.app, 'PUT', kvPath('é'.repeat(2048)), { body: { value: 'x' } });
  t.equal(unicodeKey.status, 200, 'a 4096-byte UTF-8 key');
  const ops128 = await inject(n.app, 'POST', '/v1/txn', {
    body: {
      compare: Array.from({ length: 128 }, (_, i) => ({
        key: `t/${i}`,
        target: 'version',
        op: '==',
        value: 0,
      })),
      success: Array.from({ length: 128 }, (_, i) => ({ op: 'put', key: `t/${i}`, value: 'x' })),
    },
  });
  t.equal(ops128.status, 200, '128 compares and 128 ops');
  t.equal(ops128.body.results.length, 128);
});

t.test('a value of 1 MiB is accepted whatever its JSON escaping costs', async (t) => {
  const r = await inject(n.app, 'PUT', kvPath('bad/escaped'), {
    body: { value: `{"k":"${'"'.repeat(1024 * 1024 - 8)}"}` },
  });
  t.equal(r.status, 200);
});

t.test('query parameters: bad revisions, numbers, booleans, unknown names', (t) =>
  expectAll(t, [
    ['revision=abc', 'GET', kvPath('sentinel/key', '?revision=abc'), {}, 400, 'invalid_request'],
    ['revision=-1', 'GET', kvPath('sentinel/key', '?revision=-1'), {}, 400, 'invalid_request'],
    ['revision=1.5', 'GET', kvPath('sentinel/key', '?revision=1.5'), {}, 400, 'invalid_request'],
    ['revision=1e3', 'GET', kvPath('sentinel/key', '?revision=1e3'), {}, 400, 'invalid_request'],
    ['revision=0x10', 'GET', kvPath('sentinel/key', '?revision=0x10'), {}, 400, 'invalid_request'],
    ['revision= (empty)', 'GET', kvPath('sentinel/key', '?revision='), {}, 400, 'invalid_request'],
    ['revision=%201', 'GET', kvPath('sentinel/key', '?revision=%201'), {}, 400, 'invalid_request'],
    [
      'revision=2^70',
      'GET',
      kvPath('sentinel/key', '?revision=1180591620717411303424'),
      {},
      400,
      'invalid_request',
    ],
    [
      'revision twice',
      'GET',
      kvPath('sentinel/key', '?revision=1&revision=2'),
      {},
      400,
      'invalid_request',
    ],
    [
      'revision in the future',
      'GET',
      kvPath('sentinel/key', '?revision=1000000'),
      {},
      400,
      'invalid_request',
    ],
    ['list: revision=abc', 'GET', '/v1/kv?revision=abc', {}, 400, 'invalid_request'],
    ['list: revision=-1', 'GET', '/v1/kv?revision=-1', {}, 400, 'invalid_request'],
    ['list: revision in the future', 'GET', '/v1/kv?revision=1000000', {}, 400, 'invalid_request'],
    [
      'minRevision=abc',
      'GET',
      kvPath('sentinel/key', '?minRevision=abc'),
      {},
      400,
      'invalid_request',
    ],
    [
      'minRevision=-1',
      'GET',
      kvPath('sentinel/key', '?minRevision=-1'),
      {},
      400,
      'invalid_request',
    ],
    [
      'consistency=strong',
      'GET',
      kvPath('sentinel/key', '?consistency=strong'),
      {},
      400,
      'invalid_request',
    ],
    [
      'consistency= (empty)',
      'GET',
      kvPath('sentinel/key', '?consistency='),
      {},
      400,
      'invalid_request',
    ],
    ['limit=abc', 'GET', '/v1/kv?limit=abc', {}, 400, 'invalid_request'],
    ['limit=-1', 'GET', '/v1/kv?limit=-1', {}, 400, 'invalid_request'],
    ['limit=0', 'GET', '/v1/kv?limit=0', {}, 400, 'invalid_request'],
    ['keysOnly=yes', 'GET', '/v1/kv?keysOnly=yes', {}, 400, 'invalid_request'],
    ['prefix twice', 'GET', '/v1/kv?prefix=a&prefix=b', {}, 400, 'invalid_request'],
    ['GET: unknown parameter', 'GET', kvPath('sentinel/key', '?foo=1'), {}, 400, 'invalid_request'],
    [
      'GET: prefix on a key read',
      'GET',
      kvPath('sentinel/key', '?prefix=true'),
      {},
      400,
      'invalid_request',
    ],
    ['list: unknown parameter', 'GET', '/v1/kv?sort=desc', {}, 400, 'invalid_request'],
    [
      'DELETE: prevRevision=abc',
      'DELETE',
      kvPath('sentinel/key', '?prevRevision=abc'),
      {},
      400,
      'invalid_request',
    ],
    [
      'DELETE: prevRevision=-1',
      'DELETE',
      kvPath('sentinel/key', '?prevRevision=-1'),
      {},
      400,
      'invalid_request',
    ],
    [
      'DELETE: prefix=yes',
      'DELETE',
      kvPath('sentinel/', '?prefix=yes'),
      {},
      400,
      'invalid_request',
    ],
    [
      'DELETE: unknown parameter',
      'DELETE',
      kvPath('sentinel/key', '?recursive=true'),
      {},
      400,
      'invalid_request',
    ],
    [
      'DELETE: prefix with prevRevision',
      'DELETE',
      kvPath('sentinel/', `?prefix=true&prevRevision=${sentinelRevision}`),
      {},
      400,
      'invalid_request',
    ],
    ['txn: query parameter', 'POST', '/v1/txn?dryRun=true', { body: {} }, 400, 'invalid_request'],
  ]),
);

t.test('Idempotency-Key must be 1 to 128 printable ASCII characters', async (t) => {
  const key = (k: string): RequestOptions => ({
    body: { value: 'x' },
    headers: { 'idempotency-key': k },
  });
  await expectAll(t, [
    ['empty', 'PUT', kvPath('bad/idem'), key(''), 400, 'invalid_request'],
    ['129 characters', 'PUT', kvPath('bad/idem'), key('i'.repeat(129)), 400, 'invalid_request'],
    ['non-ASCII', 'PUT', kvPath('bad/idem'), key('clé'), 400, 'invalid_request'],
    ['a tab', 'PUT', kvPath('bad/idem'), key('a\tb'), 400, 'invalid_request'],
    ['DEL (0x7f)', 'PUT', kvPath('bad/idem'), key('a\x7fb'), 400, 'invalid_request'],
    [
      'on DELETE',
      'DELETE',
      kvPath('sentinel/key'),
      { headers: { 'idempotency-key': '' } },
      400,
      'invalid_request',
    ],
    [
      'on txn',
      'POST',
      '/v1/txn',
      { body: {}, headers: { 'idempotency-key': 'x'.repeat(200) } },
      400,
      'invalid_request',
    ],
    [
      'on compact',
      'POST',
      '/v1/compact',
      { body: { revision: 1 }, headers: { 'idempotency-key': 'ü' } },
      400,
      'invalid_request',
    ],
  ]);
  const longest = await inject(
    n.app,
    'PUT',
    kvPath('bad/idem'),
    key(`${'~'.repeat(64)} !${'A'.repeat(62)}`),
  );
  t.equal(longest.status, 200, '128 printable characters, spaces included, are fine');
  const one = await inject(n.app, 'PUT', kvPath('bad/idem'), key('1'));
  t.equal(one.status, 200, 'so is one');
});

t.test('empty keys', (t) =>
  expectAll(t, [
    ['PUT /v1/kv/', 'PUT', '/v1/kv/', { body: { value: 'x' } }, 400, 'invalid_request'],
    ['GET /v1/kv/', 'GET', '/v1/kv/', {}, 400, 'invalid_request'],
    ['DELETE /v1/kv/ without prefix', 'DELETE', '/v1/kv/', {}, 400, 'invalid_request'],
    ['DELETE /v1/kv without prefix', 'DELETE', '/v1/kv', {}, 404, 'not_found'],
    [
      'txn put with an empty key',
      'POST',
      '/v1/txn',
      { body: { success: [{ op: 'put', key: '', value: 'x' }] } },
      400,
      'invalid_request',
    ],
    [
      'txn delete of an empty key',
      'POST',
      '/v1/txn',
      { body: { success: [{ op: 'delete', key: '' }] } },
      400,
      'invalid_request',
    ],
    [
      'txn compare on an empty key',
      'POST',
      '/v1/txn',
      { body: { compare: [{ key: '', target: 'version', op: '==', value: 0 }] } },
      400,
      'invalid_request',
    ],
  ]),
);

t.test('txn: malformed compares and ops', (t) => {
  const txn = (body: unknown): [Method, string, RequestOptions] => ['POST', '/v1/txn', { body }];
  const cmp = (c: unknown) => txn({ compare: [c] });
  const op = (o: unknown) => txn({ success: [o] });
  return expectAll(t, [
    ['not an object', ...txn([]), 400, 'invalid_request'],
    ['no body', 'POST', '/v1/txn', {}, 400, 'invalid_request'],
    ['unknown top-level field', ...txn({ compare: [], else: [] }), 400, 'invalid_request'],
    ['compare is not an array', ...txn({ compare: {} }), 400, 'invalid_request'],
    ['success is null', ...txn({ success: null }), 400, 'invalid_request'],
    [
      'unknown target',
      ...cmp({ key: 'a', target: 'size', op: '==', value: 1 }),
      400,
      'invalid_request',
    ],
    [
      'unknown operator',
      ...cmp({ key: 'a', target: 'version', op: '>=', value: 1 }),
      400,
      'invalid_request',
    ],
    ['missing value', ...cmp({ key: 'a', target: 'version', op: '==' }), 400, 'invalid_request'],
    ['missing key', ...cmp({ target: 'version', op: '==', value: 1 }), 400, 'invalid_request'],
    [
      'extra field',
      ...cmp({ key: 'a', target: 'version', op: '==', value: 1, prefix: true }),
      400,
      'invalid_request',
    ],
    [
      'version compared with a string',
      ...cmp({ key: 'a', target: 'version', op: '==', value: '1' }),
      400,
      'invalid_request',
    ],
    [
      'modRevision compared with null',
      ...cmp({ key: 'a', target: 'modRevision', op: '==', value: null }),
      400,
      'invalid_request',
    ],
    [
      'version compared with -1',
      ...cmp({ key: 'a', target: 'version', op: '>', value: -1 }),
      400,
      'invalid_request',
    ],
    [
      'value compared with a number',
      ...cmp({ key: 'a', target: 'value', op: '==', value: 5 }),
      400,
      'invalid_request',
    ],
    [
      'value compared with an object',
      ...cmp({ key: 'a', target: 'value', op: '==', value: {} }),
      400,
      'invalid_request',
    ],
    ['fence with a negative token', ...cmp({ lock: 'l', token: -1 }), 400, 'invalid_request'],
    ['fence with a string token', ...cmp({ lock: 'l', token: '1' }), 400, 'invalid_request'],
    ['fence with an empty name', ...cmp({ lock: '', token: 1 }), 400, 'invalid_request'],
    ['unknown op', ...op({ op: 'patch', key: 'a' }), 400, 'invalid_request'],
    ['op without op', ...op({ key: 'a', value: 'x' }), 400, 'invalid_request'],
    ['put without value', ...op({ op: 'put', key: 'a' }), 400, 'invalid_request'],
    ['put with a number', ...op({ op: 'put', key: 'a', value: 1 }), 400, 'invalid_request'],
    [
      'put with prevRevision',
      ...op({ op: 'put', key: 'a', value: 'x', prevRevision: 1 }),
      400,
      'invalid_request',
    ],
    ['get with a value', ...op({ op: 'get', key: 'a', value: 'x' }), 400, 'invalid_request'],
    [
      'delete with prefix "yes"',
      ...op({ op: 'delete', key: 'a', prefix: 'yes' }),
      400,
      'invalid_request',
    ],
    [
      'put and delete of one key',
      ...txn({
        success: [
          { op: 'put', key: 'a', value: 'x' },
          { op: 'delete', key: 'a' },
        ],
      }),
      400,
      'invalid_request',
    ],
  ]);
});

t.test('compact: bad bodies', (t) => {
  const compact = (body: unknown): [Method, string, RequestOptions] => [
    'POST',
    '/v1/compact',
    { body },
  ];
  return expectAll(t, [
    ['no revision', ...compact({}), 400, 'invalid_request'],
    ['revision: "5"', ...compact({ revision: '5' }), 400, 'invalid_request'],
    ['revision: 0', ...compact({ revision: 0 }), 400, 'invalid_request'],
    ['revision: -1', ...compact({ revision: -1 }), 400, 'invalid_request'],
    ['revision: 1.5', ...compact({ revision: 1.5 }), 400, 'invalid_request'],
    ['unknown field', ...compact({ revision: 1, physical: true }), 400, 'invalid_request'],
    ['future revision', ...compact({ revision: 1_000_000 }), 400, 'invalid_request'],
    ['no body', 'POST', '/v1/compact', {}, 400, 'invalid_request'],
  ]);
});

t.test('paths that are not valid percent-encoding', (t) =>
  expectAll(t, [
    ['truncated UTF-8 escape', 'GET', '/v1/kv/%E0%A4%A', {}, 400, 'invalid_request'],
    ['not hex', 'GET', '/v1/kv/%zz', {}, 400, 'invalid_request'],
    ['invalid UTF-8', 'PUT', '/v1/kv/%FF%FE', { body: { value: 'x' } }, 400, 'invalid_request'],
    [
      'a lone surrogate',
      'PUT',
      '/v1/kv/%ED%A0%80',
      { body: { value: 'x' } },
      400,
      'invalid_request',
    ],
  ]),
);

t.test('over real HTTP: oversized heads, bodies and garbage get JSON errors', async (t) => {
  const before = await currentRevision();
  const hugeKey = await http(n.url, 'GET', `/v1/kv/${'k'.repeat(20_000)}`, { timeoutMs: 5000 });
  assertError(t, hugeKey, 413, 'too_large', 'a request line over 16 KiB');
  const badUrl = await http(n.url, 'GET', '/v1/kv/%E0%A4%A', { timeoutMs: 5000 });
  assertError(t, badUrl, 400, 'invalid_request', 'bad percent-encoding');
  const hugeBody = await http(n.url, 'PUT', kvPath('bad/huge'), {
    body: { value: 'v'.repeat(3 * 1024 * 1024) },
    timeoutMs: 10_000,
  });
  assertError(t, hugeBody, 413, 'too_large', 'a 3 MiB body');
  const malformed = await http(n.url, 'PUT', kvPath('bad/json'), {
    body: '{"value":',
    headers: JSON_CT,
    timeoutMs: 5000,
  });
  assertError(t, malformed, 400, 'invalid_request', 'malformed JSON');

  // Not HTTP at all: the parser's error, still as API.md's body.
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(new URL(n.url).port), '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer to garbage within 5 s'));
    }, 5000);
    socket.on('connect', () => socket.write('THIS IS NOT HTTP\r\n\r\n'));
    socket.on('data', (d) => {
      data += d.toString();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
  });
  t.match(raw, /^HTTP\/1\.1 400 /, 'garbage gets a 400');
  const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  t.equal(body.error.code, 'invalid_request');
  t.equal(await currentRevision(), before, 'nothing was written');
});

t.test('after all that, the stored data is intact and the node still works', async (t) => {
  const r = await inject(n.app, 'GET', kvPath('sentinel/key'));
  t.equal(r.status, 200);
  t.equal(r.body.kv.value, 'keep me');
  t.equal(r.body.kv.modRevision, sentinelRevision);
  t.equal(r.body.kv.version, 1);
  t.equal((await inject(n.app, 'GET', kvPath('bad/target'))).status, 404, 'no bad PUT landed');
  t.equal((await inject(n.app, 'GET', kvPath('bad/ct'))).status, 404);
  const w = await inject(n.app, 'PUT', kvPath('sentinel/key'), { body: { value: 'still works' } });
  t.equal(w.status, 200);
  t.equal(w.body.prevKv.value, 'keep me');
  const health = await inject(n.app, 'GET', '/health');
  t.equal(health.status, 200);
});
