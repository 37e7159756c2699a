/**
 * The one error table (src/api/errors.ts) against API.md, and the codes of
 * each inner layer (KV state machine, server) through it to their statuses.
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import t from 'tap';
import { replyWithError } from '../../src/api/app.js';
import { type ErrorCode, sendError, statusOfCode, wireCode } from '../../src/api/errors.js';
import type { KvErrorCode } from '../../src/kv/errors.js';
import { errorResult } from '../../src/kv/results.js';
import { ServerError, type ServerErrorCode } from '../../src/server/errors.js';

/** API.md's error table as code → status (a `401 / 403` row pairs statuses and codes in order). */
function apiMdTable(): Map<string, number> {
  const text = readFileSync(new URL('../../docs/API.md', import.meta.url), 'utf8');
  const table = new Map<string, number>();
  for (const line of text.split('\n')) {
    const row = /^\| ([\d /]+) \| (.+?) \|/.exec(line);
    if (!row) continue;
    const statuses = row[1]!.split('/').map((s) => Number(s.trim()));
    const groups = statuses.length > 1 ? row[2]!.split(' / ') : [row[2]!];
    groups.forEach((group, i) => {
      for (const [, code] of group.matchAll(/`([a-z_]+)`/g)) table.set(code!, statuses[i]!);
    });
  }
  return table;
}

/** Codes the API answers with beyond API.md's table (an unknown route). */
const additions = new Set(['not_found', 'user_not_found', 'role_not_found']);
/** Codes API.md lists that nothing produces yet. */
const notYetProduced = new Set<string>();

t.test('every code in the table has the status API.md gives it', async (t) => {
  const doc = apiMdTable();
  t.ok(doc.size >= 15, `API.md's table was found (${doc.size} codes)`);
  const documentedStatuses = new Set(doc.values());
  for (const [code, status] of Object.entries(statusOfCode)) {
    t.ok(documentedStatuses.has(status), `${code}: ${status} is a status API.md lists`);
    if (additions.has(code)) t.notOk(doc.has(code), `${code} is an addition`);
    else t.equal(status, doc.get(code), `${code}: ${doc.get(code)} as in API.md`);
  }
  for (const code of doc.keys()) {
    if (notYetProduced.has(code)) continue;
    t.ok(code in statusOfCode, `API.md's ${code} is in the table`);
  }
});

// Typed as Record<…Code, number>: a code added to a layer fails to compile here until it is listed.
const kvStatus: Record<KvErrorCode, number> = {
  invalid_request: 400,
  too_large: 413,
  compare_failed: 409,
  key_not_found: 404,
  lease_not_found: 404,
  user_not_found: 404,
  role_not_found: 404,
  permission_denied: 403,
  unauthenticated: 401,
  compacted: 410,
  quota_exceeded: 507,
  future_revision: 400, // internal: a read past the current revision is invalid_request
};
const serverStatus: Record<ServerErrorCode, number> = {
  unavailable: 503,
  too_many_requests: 429,
  timeout: 504,
  not_leader: 503, // internal: never proposed here, so unavailable
  invalid_request: 400,
  member_not_found: 404,
  quota_exceeded: 507,
  cluster_version_too_old: 409,
};

t.test('every code of each layer maps to its status', async (t) => {
  for (const [code, status] of Object.entries(kvStatus) as [KvErrorCode, number][]) {
    t.equal(statusOfCode[wireCode(code)], status, `kv ${code} → ${status}`);
  }
  for (const [code, status] of Object.entries(serverStatus) as [ServerErrorCode, number][]) {
    t.equal(statusOfCode[wireCode(code)], status, `server ${code} → ${status}`);
  }
  t.equal(wireCode('future_revision'), 'invalid_request');
  t.equal(wireCode('not_leader'), 'unavailable');
});

t.test('on the wire: an ErrorResult, a ServerError and an API code', async (t) => {
  const app = Fastify();
  t.teardown(() => app.close());
  const kv = errorResult('lease_not_found', 'lease 1 not found', 7);
  app.get('/kv', (_req, reply) =>
    sendError(reply, wireCode(kv.code), kv.message, { revision: kv.revision }),
  );
  app.get('/server', (_req, reply) =>
    replyWithError(reply, new ServerError('member_not_found', 'no member with id 1')),
  );
  app.get('/leader', (_req, reply) =>
    replyWithError(reply, new ServerError('not_leader', 'not the leader')),
  );
  const api: ErrorCode = 'lock_timeout';
  app.get('/api', (_req, reply) => sendError(reply, api, 'gave up'));

  const cases: [string, number, string, string | undefined][] = [
    ['/kv', 404, 'lease_not_found', undefined],
    ['/server', 404, 'member_not_found', undefined],
    ['/leader', 503, 'unavailable', '1'],
    ['/api', 409, 'lock_timeout', undefined],
  ];
  for (const [url, status, code, retryAfter] of cases) {
    const r = await app.inject({ method: 'GET', url });
    t.equal(r.statusCode, status, `${url}: ${status}`);
    t.equal(r.json().error.code, code, `${url}: ${code}`);
    t.equal(r.headers['retry-after'], retryAfter, `${url}: Retry-After ${retryAfter ?? 'absent'}`);
  }
  t.equal(
    (await app.inject({ method: 'GET', url: '/kv' })).json().revision,
    7,
    'extra fields kept',
  );
});
