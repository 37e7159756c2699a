/**
 * A body that fails its JSON schema is answered 400 invalid_request with a
 * message that names the field and the problem, for every schema keyword the
 * routes use (type, required, additionalProperties, const, enum, minLength,
 * maxLength, minimum, maximum, pattern, maxItems, items, oneOf), instead of
 * ajv's "body must NOT have additional properties".
 */
import t from 'tap';
import { pathOf } from '../../src/api/validation-message.js';
import { assertError, inject, kvPath, type Method, startSingleNode } from './helpers.js';

const n = await startSingleNode();
t.teardown(() => n.close());

type Row = [what: string, method: Method, url: string, body: unknown, message: string];

const put = kvPath('valid/target');
const rows: Row[] = [
  [
    'unknown field',
    'PUT',
    put,
    { value: 'x', foo: 1 },
    'body has an unknown field "foo" (known fields: value, lease, prevRevision, prevValue)',
  ],
  ['missing field', 'PUT', put, { lease: 'l1' }, 'body is missing the required field "value"'],
  ['wrong type', 'PUT', put, { value: 42 }, 'body.value must be a string, not a number'],
  ['not an object', 'PUT', put, ['x'], 'body must be an object, not an array'],
  ['a null body', 'PUT', put, 'null', 'body must be an object, not null'],
  ['integer type', 'POST', '/v1/leases', { ttl: '5' }, 'body.ttl must be an integer, not a string'],
  [
    'fraction',
    'POST',
    '/v1/leases',
    { ttl: 2.5 },
    'body.ttl must be an integer, not a number with a fraction',
  ],
  ['minimum', 'POST', '/v1/compact', { revision: 0 }, 'body.revision must be >= 1 (got 0)'],
  [
    'maximum',
    'POST',
    '/v1/locks/m',
    { lease: 'l1', timeoutMs: 10 ** 9 },
    'body.timeoutMs must be <= 300000 (got 1000000000)',
  ],
  ['empty string', 'PUT', put, { value: 'x', lease: '' }, 'body.lease must not be empty'],
  [
    'maxLength',
    'POST',
    '/v1/locks/m',
    { lease: 'l'.repeat(129) },
    'body.lease must be at most 128 characters long',
  ],
  [
    'pattern',
    'POST',
    '/v1/leases',
    { ttl: 5, id: 'a b' },
    'body.id must match the pattern ^[A-Za-z0-9._-]+$',
  ],
  [
    'txn op: missing field of its kind',
    'POST',
    '/v1/txn',
    { success: [{ op: 'put', key: 'a' }] },
    'body.success[0] is missing the required field "value"',
  ],
  [
    'txn op: wrong type in its kind',
    'POST',
    '/v1/txn',
    {
      failure: [
        { op: 'get', key: 'a' },
        { op: 'put', key: 'a', value: 1 },
      ],
    },
    'body.failure[1].value must be a string, not a number',
  ],
  [
    'txn op: a field another kind has',
    'POST',
    '/v1/txn',
    { success: [{ op: 'get', key: 'a', value: 'x' }] },
    'body.success[0] has an unknown field "value" (known fields: op, key, prefix)',
  ],
  [
    'txn op: unknown kind',
    'POST',
    '/v1/txn',
    { success: [{ op: 'upsert', key: 'a' }] },
    'body.success[0].op must be one of "put", "get", "delete" (got "upsert")',
  ],
  [
    'txn op: no kind',
    'POST',
    '/v1/txn',
    { success: [{ key: 'a' }] },
    'body.success[0] is missing the required field "op"',
  ],
  [
    'txn op: not an object',
    'POST',
    '/v1/txn',
    { success: ['put a'] },
    'body.success[0] must be an object, not a string',
  ],
  [
    'compare: enum',
    'POST',
    '/v1/txn',
    { compare: [{ key: 'a', target: 'size', op: '==', value: 1 }] },
    'body.compare[0].target must be one of "value", "version", "createRevision", "modRevision", "lease" (got "size")',
  ],
  [
    'compare: union type',
    'POST',
    '/v1/txn',
    { compare: [{ key: 'a', target: 'value', op: '==', value: {} }] },
    'body.compare[0].value must be a string, a number or null, not an object',
  ],
  [
    'fence compare: minimum',
    'POST',
    '/v1/txn',
    { compare: [{ lock: 'x', token: -1 }] },
    'body.compare[0].token must be >= 0 (got -1)',
  ],
  [
    'compare of no known form',
    'POST',
    '/v1/txn',
    { compare: [{ foo: 1 }] },
    'body.compare[0] must have one of these forms: {key, target, op, value} or {lock, token}',
  ],
  [
    'array type',
    'POST',
    '/v1/txn',
    { success: {} },
    'body.success must be an array, not an object',
  ],
  [
    'maxItems',
    'PUT',
    '/v1/auth/users/u1',
    { roles: Array.from({ length: 101 }, (_, i) => `r${i}`) },
    'body.roles must have at most 100 items',
  ],
  [
    'enum inside an array item',
    'PUT',
    '/v1/auth/roles/r1',
    { permissions: [{ resource: 'files', prefix: '', access: 'read' }] },
    'body.permissions[0].resource must be one of "kv", "registry", "locks", "elections" (got "files")',
  ],
  [
    'boolean type',
    'POST',
    '/v1/cluster/members',
    { name: 'n9', peerUrl: 'http://127.0.0.1:1', clientUrl: 'http://127.0.0.1:2', learner: 'yes' },
    'body.learner must be true or false, not a string',
  ],
  [
    'registry: missing lease',
    'PUT',
    '/v1/registry/svc',
    { value: 'x' },
    'body is missing the required field "lease"',
  ],
  [
    'campaign: unknown field',
    'POST',
    '/v1/elections/e/campaign',
    { lease: 'l1', value: 'v', ttl: 3 },
    'body has an unknown field "ttl" (known fields: lease, value, timeoutMs)',
  ],
  [
    'token: a wrong-typed password is not echoed',
    'POST',
    '/v1/auth/token',
    { name: 'root', password: 12345678 },
    'body.password must be a string, not a number',
  ],
];

t.test('each bad body: 400 invalid_request, and a message naming the field', async (t) => {
  const before = (await inject(n.app, 'GET', '/v1/status')).body.revision;
  for (const [what, method, url, body, message] of rows) {
    const opts =
      typeof body === 'string'
        ? { body, headers: { 'content-type': 'application/json' } }
        : { body };
    const res = await inject(n.app, method, url, opts);
    assertError(t, res, 400, 'invalid_request', what);
    t.equal(res.body?.error?.message, message, what);
  }
  t.equal((await inject(n.app, 'GET', '/v1/status')).body.revision, before, 'nothing written');
});

t.test('paths: array indexes in brackets, odd field names quoted', async (t) => {
  t.equal(pathOf('body', ''), 'body');
  t.equal(pathOf('body', '/success/0/op'), 'body.success[0].op');
  t.equal(pathOf('body', '/a b/x~1y/~0z'), 'body["a b"]["x/y"]["~z"]');
  t.equal(pathOf('querystring', '/limit'), 'querystring.limit');
});
