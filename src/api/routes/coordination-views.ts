import type { FastifyInstance, FastifyReply } from 'fastify';
import { ELECTION_PREFIX, LOCK_PREFIX, waiterName } from '../../kv/coordination-keys.js';
import type { KeyValue } from '../../kv/mvcc/key-value.js';
import { ApiError, sendError, wireCode } from '../errors.js';
import { consistencyParam, type Query, rejectUnknown, stringParam } from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService } from '../service.js';

/**
 * Listings of lock queues and elections (additions to API.md, for operators
 * and the dashboard): every name under a prefix with its line in order. The
 * first in line (lowest createRevision) holds the lock or leads, as in
 * src/server/locks.ts; the holder's fencing token is its createRevision.
 *
 * - `GET /v1/locks?prefix=P` → `{"locks": [{"name", "holder": Waiter, "waiters": [Waiter...]}], "revision"}`
 * - `GET /v1/elections?prefix=P` → `{"elections": [{"name", "leader": {"key", "value", "revision"}, "candidates": [Waiter...]}], "revision"}`
 *
 * `Waiter = {"key", "lease", "createRevision", "value"}`; `waiters` excludes the
 * holder. Looking needs `read` on the prefix (API.md's rule for prefix reads).
 */
export function coordinationViewRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.get(
      '/v1/locks',
      {
        schema: routeDoc(
          'locks',
          'List lock queues by name prefix: holder, fencing token, waiters',
          {
            description:
              "An addition to API.md. Each lock held under the prefix, its holder (with its fencing token, the holder key's createRevision) and who waits, in order.",
            queryParams: ['prefix', 'consistency'],
          },
        ),
        config: {
          access: (req) => [
            { resource: 'locks', key: prefixOf(req.query as Query), access: 'read' },
          ],
        },
      },
      async (req, reply) => {
        const lines = await linesUnder(service, LOCK_PREFIX, req.query as Query, reply);
        if (lines === undefined) return reply;
        return {
          locks: lines.lines.map(([name, line]) => ({
            name,
            holder: { ...waiter(line[0]!), fencingToken: line[0]!.createRevision },
            waiters: line.slice(1).map(waiter),
          })),
          revision: lines.revision,
        };
      },
    );
    app.get(
      '/v1/elections',
      {
        schema: routeDoc('elections', 'List elections by name prefix: leader and candidates', {
          description:
            'An addition to API.md. Each election under the prefix with a leader, and its candidates in order (the first leads).',
          queryParams: ['prefix', 'consistency'],
        }),
        config: {
          access: (req) => [
            { resource: 'elections', key: prefixOf(req.query as Query), access: 'read' },
          ],
        },
      },
      async (req, reply) => {
        const lines = await linesUnder(service, ELECTION_PREFIX, req.query as Query, reply);
        if (lines === undefined) return reply;
        return {
          elections: lines.lines.map(([name, line]) => ({
            name,
            leader: { key: line[0]!.key, value: line[0]!.value, revision: line[0]!.createRevision },
            candidates: line.map(waiter),
          })),
          revision: lines.revision,
        };
      },
    );
  };
}

function prefixOf(query: Query): string {
  const prefix = stringParam(query, 'prefix') ?? '';
  if (prefix.includes('\u0000') || prefix.includes('/')) {
    throw new ApiError('invalid_request', 'a prefix of names cannot contain "/" or U+0000');
  }
  return prefix;
}

function waiter(kv: KeyValue) {
  return { key: kv.key, lease: kv.lease, createRevision: kv.createRevision, value: kv.value };
}

/** Each name under `prefix` with its line, ordered by createRevision (first = holder/leader). */
async function linesUnder(
  service: ApiService,
  reserved: string,
  query: Query,
  reply: FastifyReply,
): Promise<{ lines: [string, KeyValue[]][]; revision: number } | undefined> {
  rejectUnknown(query, ['prefix', 'consistency']);
  const prefix = prefixOf(query);
  const result = await service.range(
    { prefix: reserved + prefix, keysOnly: false },
    { consistency: consistencyParam(query), signal: service.requestDeadline() },
  );
  if ('code' in result) {
    sendError(reply, wireCode(result.code), result.message, { revision: result.revision });
    return undefined;
  }
  const byName = new Map<string, KeyValue[]>();
  for (const kv of result.kvs) {
    const name = waiterName(kv.key, reserved);
    const line = byName.get(name);
    if (line === undefined) byName.set(name, [kv]);
    else line.push(kv);
  }
  for (const line of byName.values()) line.sort((a, b) => a.createRevision - b.createRevision);
  return { lines: [...byName.entries()], revision: result.revision };
}
