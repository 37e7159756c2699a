import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ELECTION_PREFIX } from '../../kv/coordination-keys.js';
import type { KeyValue, RevisionChange } from '../../kv/mvcc/key-value.js';
import { ApiError, sendError, wireCode } from '../errors.js';
import {
  boolParam,
  type Query,
  rejectUnknown,
  requesterOf,
  stringParam,
  writeOptionsOf,
} from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService } from '../service.js';
import { coordinationName } from './locks.js';
import { streamWatch } from './watch.js';

const campaignBody = {
  type: 'object',
  required: ['lease', 'value'],
  additionalProperties: false,
  properties: {
    lease: { type: 'string', minLength: 1, maxLength: 128 },
    value: { type: 'string' },
    timeoutMs: { type: 'integer', minimum: 0, maximum: 5 * 60_000 },
  },
} as const;

const proclaimBody = {
  type: 'object',
  required: ['key', 'value'],
  additionalProperties: false,
  properties: { key: { type: 'string', minLength: 1 }, value: { type: 'string' } },
} as const;

type Leader = { key: string; value: string; revision: number };

/** API.md: looking and watching need read on the election's name; everything else write. */
function electionNeed(access: 'read' | 'write') {
  return (req: FastifyRequest) => [
    { resource: 'elections' as const, key: coordinationName(req.params), access },
  ];
}

function leaderOf(line: Map<string, KeyValue>): Leader | null {
  let first: KeyValue | undefined;
  for (const kv of line.values())
    if (!first || kv.createRevision < first.createRevision) first = kv;
  return first ? { key: first.key, value: first.value, revision: first.createRevision } : null;
}

/** API.md "Locks and elections": campaign, leader (and observe), proclaim, resign. */
export function electionRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.post(
      '/v1/elections/:name/campaign',
      {
        schema: {
          ...routeDoc('elections', 'Campaign: answers once this candidate leads'),
          body: campaignBody,
        },
        config: {
          access: (req) => [
            ...electionNeed('write')(req),
            { lease: (req.body as { lease: string }).lease },
          ],
        },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const name = coordinationName(req.params);
        const { lease, value, timeoutMs } = req.body as {
          lease: string;
          value: string;
          timeoutMs?: number;
        };
        const result = await service.campaign(
          name,
          lease,
          value,
          timeoutMs ?? service.requestTimeoutMs,
          requesterOf(req),
        );
        if (!result.ok) return sendError(reply, result.code, result.message);
        return { leader: result.leader };
      },
    );

    app.get(
      '/v1/elections/:name',
      {
        schema: routeDoc(
          'elections',
          'The current leader; with watch=true, a stream of leader changes',
          {
            description:
              '404 `no_leader_elected` when nobody leads. With `watch=true`: Server-Sent Events, the current leader first, then one `change` event per revision in which the leader or its value changed.',
            produces: ['application/json', 'text/event-stream'],
            queryParams: ['watch'],
          },
        ),
        config: { access: electionNeed('read') },
      },
      async (req, reply) => {
        const query = req.query as Query;
        rejectUnknown(query, ['watch']);
        const name = coordinationName(req.params);
        if (!boolParam(query, 'watch')) {
          const leader = await service.electionLeader(name, service.requestDeadline());
          if (!leader) return sendError(reply, 'no_leader_elected', `no leader of "${name}"`);
          return { leader };
        }
        // Observe: the current line, then one event per revision in which the leader (or its value) changed.
        const prefix = `${ELECTION_PREFIX}${name}/`;
        const initial = await service.range(
          { prefix, keysOnly: false },
          { consistency: 'linearizable', signal: service.requestDeadline() },
        );
        if ('code' in initial) return sendError(reply, wireCode(initial.code), initial.message);
        const line = new Map(initial.kvs.map((kv) => [kv.key, kv]));
        let last = leaderOf(line);
        await streamWatch(
          service,
          req,
          reply,
          { key: prefix, prefix: true, prevKv: false, fromRevision: initial.revision + 1 },
          (change: RevisionChange) => {
            for (const e of change.events) {
              if (e.type === 'delete') line.delete(e.kv.key);
              else line.set(e.kv.key, e.kv);
            }
            const leader = leaderOf(line);
            if (JSON.stringify(leader) === JSON.stringify(last)) return undefined;
            last = leader;
            return { revision: change.revision, leader };
          },
          {
            event: 'change',
            data: { revision: initial.revision, leader: last },
            id: initial.revision,
          },
        );
      },
    );

    app.post(
      '/v1/elections/:name/proclaim',
      {
        schema: {
          ...routeDoc('elections', 'Proclaim: the leader changes its value'),
          body: proclaimBody,
        },
        config: { access: electionNeed('write') },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const name = coordinationName(req.params);
        const { key, value } = req.body as { key: string; value: string };
        const result = await service.proclaim(name, key, value, writeOptionsOf(req, service));
        if (!result.ok) return sendError(reply, wireCode(result.code), result.message);
        return { leader: result.leader };
      },
    );

    app.delete(
      '/v1/elections/:name/leader',
      {
        schema: routeDoc('elections', 'Resign: the leader (?key=K) steps down', {
          queryParams: ['key'],
        }),
        config: { access: electionNeed('write') },
      },
      async (req, reply) => {
        const query = req.query as Query;
        rejectUnknown(query, ['key']);
        const name = coordinationName(req.params);
        const key = stringParam(query, 'key');
        if (!key) throw new ApiError('invalid_request', 'the leader key is required: ?key=K');
        const result = await service.resign(name, key, writeOptionsOf(req, service));
        if (!result.ok) return sendError(reply, wireCode(result.code), result.message);
        return { resigned: true, revision: result.revision };
      },
    );
  };
}
