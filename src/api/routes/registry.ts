import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { REGISTRY_PREFIX } from '../../kv/coordination-keys.js';
import type { KeyValue, RevisionChange } from '../../kv/mvcc/key-value.js';
import { ApiError, sendError, wireCode } from '../errors.js';
import {
  boolParam,
  consistencyParam,
  intParam,
  type Query,
  rejectUnknown,
  stringParam,
  writeOptionsOf,
} from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService, WriteOptions } from '../service.js';
import { streamWatch } from './watch.js';

/** API.md's registry Entry. */
export interface RegistryEntry {
  name: string;
  value: string;
  lease: string | null;
  createRevision: number;
  modRevision: number;
}

export function entryOf(kv: KeyValue): RegistryEntry {
  return {
    name: kv.key.slice(REGISTRY_PREFIX.length),
    value: kv.value,
    lease: kv.lease,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
  };
}

const registerBody = {
  type: 'object',
  required: ['value', 'lease'],
  additionalProperties: false,
  properties: { value: { type: 'string' }, lease: { type: 'string', minLength: 1 } },
} as const;

function nameParam(params: unknown): string {
  const name = (params as { '*'?: string })['*'] ?? '';
  if (name === '' || name.length > 1024 || name.includes('\u0000')) {
    throw new ApiError(
      'invalid_request',
      'a registry name is 1 to 1024 characters, without U+0000',
    );
  }
  return name;
}

/** API.md: looking and watching need read on the name (or prefix); registering and unregistering write. */
function nameNeed(access: 'read' | 'write') {
  return (req: FastifyRequest) => [
    { resource: 'registry' as const, key: nameParam(req.params), access },
  ];
}

function registryPrefix(query: Query): string {
  const prefix = stringParam(query, 'prefix') ?? '';
  if (prefix.includes('\u0000'))
    throw new ApiError('invalid_request', 'a prefix cannot contain U+0000');
  return prefix;
}

/**
 * The options of a re-registration's second step (the owner updates its value).
 * With an Idempotency-Key it carries its own key, derived from the request's, so
 * a retry replays the update: the first step alone would replay its "held by this
 * lease" answer and send the retry down the update path to write again.
 */
function updateStepOptions(opts: WriteOptions, signal: AbortSignal): WriteOptions {
  const step: WriteOptions = { signal };
  if (opts.user !== undefined) step.user = opts.user;
  if (opts.anonymous) step.anonymous = true;
  if (opts.idempotencyKey !== undefined) {
    const hash = createHash('sha256').update(opts.idempotencyKey).digest('base64url');
    step.idempotencyKey = `registry-update:${hash}`;
    if (opts.requestDigest !== undefined) step.requestDigest = `${opts.requestDigest}:update`;
  }
  return step;
}

/**
 * API.md "Registry": unique names owned by leases, kept as ordinary keys under
 * a reserved prefix and changed only by guarded txns, so two leases can never
 * hold one name.
 */
export function registryRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.put(
      '/v1/registry/*',
      {
        schema: {
          ...routeDoc('registry', 'Register a name, owned by a lease', {
            description:
              '201 with the new Entry; re-registering with the same lease updates the value (200); a name held by another lease is 409 `name_taken` with `{"entry"}`.',
            successStatus: [201, 200],
          }),
          body: registerBody,
        },
        config: {
          access: (req) => [
            ...nameNeed('write')(req),
            { lease: (req.body as { lease: string }).lease },
          ],
        },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const name = nameParam(req.params);
        const key = REGISTRY_PREFIX + name;
        const { value, lease } = req.body as { value: string; lease: string };
        const opts = writeOptionsOf(req, service);
        // New name: only if the key does not exist.
        const created = await service.txn(
          {
            compare: [{ key, target: 'createRevision', op: '==', value: 0 }],
            success: [{ op: 'put', key, value, lease }],
            failure: [{ op: 'get', key }],
          },
          opts,
        );
        if (!created.ok)
          return sendError(reply, wireCode(created.code), created.message, {
            revision: created.revision,
          });
        if (created.succeeded) {
          const put = created.results[0] as { op: 'put'; kv: KeyValue };
          return reply.code(201).send(entryOf(put.kv));
        }
        const current = (created.results[0] as { op: 'get'; kvs: KeyValue[] }).kvs[0];
        if (current && current.lease === lease) {
          // The owner re-registers: update the value, still guarded by ownership.
          const updated = await service.txn(
            {
              compare: [{ key, target: 'lease', op: '==', value: lease }],
              success: [{ op: 'put', key, value, lease }],
              failure: [{ op: 'get', key }],
            },
            updateStepOptions(opts, service.requestDeadline()),
          );
          if (!updated.ok)
            return sendError(reply, wireCode(updated.code), updated.message, {
              revision: updated.revision,
            });
          if (updated.succeeded)
            return entryOf((updated.results[0] as { op: 'put'; kv: KeyValue }).kv);
          const now = (updated.results[0] as { op: 'get'; kvs: KeyValue[] }).kvs[0];
          return sendError(reply, 'name_taken', `name "${name}" is taken`, {
            entry: now ? entryOf(now) : null,
          });
        }
        return sendError(reply, 'name_taken', `name "${name}" is held by lease ${current?.lease}`, {
          entry: current ? entryOf(current) : null,
        });
      },
    );

    const lookUp = routeDoc('registry', 'Look up a name', { queryParams: ['consistency'] });
    app.get(
      '/v1/registry/*',
      { schema: lookUp, config: { access: nameNeed('read') } },
      async (req, reply) => {
        const query = req.query as Query;
        rejectUnknown(query, ['consistency']);
        const name = nameParam(req.params);
        const result = await service.get(REGISTRY_PREFIX + name, {
          consistency: consistencyParam(query),
          signal: service.requestDeadline(),
        });
        if ('code' in result)
          return sendError(reply, wireCode(result.code), result.message, {
            revision: result.revision,
          });
        if (!result.kv)
          return sendError(reply, 'key_not_found', `name "${name}" is not registered`, {
            revision: result.revision,
          });
        return entryOf(result.kv);
      },
    );

    app.get(
      '/v1/registry',
      {
        schema: routeDoc('registry', 'List names by prefix; with watch=true, a stream of changes', {
          description:
            'With `watch=true`: Server-Sent Events as for watches, whose events carry registry entries.',
          produces: ['application/json', 'text/event-stream'],
          queryParams: ['prefix', 'watch', 'fromRevision', 'consistency'],
        }),
        config: {
          access: (req) => [
            { resource: 'registry', key: registryPrefix(req.query as Query), access: 'read' },
          ],
        },
      },
      async (req, reply) => {
        const query = req.query as Query;
        rejectUnknown(query, ['prefix', 'watch', 'fromRevision', 'consistency']);
        const prefix = registryPrefix(query);
        if (boolParam(query, 'watch')) {
          const fromRevision = intParam(query, 'fromRevision', 1);
          const lastEventId = req.headers['last-event-id'];
          const resume =
            typeof lastEventId === 'string' && /^\d+$/.test(lastEventId)
              ? Number(lastEventId) + 1
              : undefined;
          const from = resume ?? fromRevision;
          await streamWatch(
            service,
            req,
            reply,
            {
              key: REGISTRY_PREFIX + prefix,
              prefix: true,
              prevKv: false,
              ...(from !== undefined ? { fromRevision: from } : {}),
            },
            (change: RevisionChange) => ({
              revision: change.revision,
              events: change.events.map((e) => ({ type: e.type, entry: entryOf(e.kv) })),
            }),
          );
          return;
        }
        const result = await service.range(
          { prefix: REGISTRY_PREFIX + prefix, keysOnly: false },
          {
            consistency: consistencyParam(query),
            signal: service.requestDeadline(),
          },
        );
        if ('code' in result)
          return sendError(reply, wireCode(result.code), result.message, {
            revision: result.revision,
          });
        return { entries: result.kvs.map(entryOf), revision: result.revision };
      },
    );

    app.delete(
      '/v1/registry/*',
      {
        schema: routeDoc('registry', 'Unregister a name', {
          description:
            'With `lease`, only if that lease owns the name (else 409 `compare_failed`).',
          queryParams: ['lease'],
        }),
        config: {
          access: (req) => {
            const lease = stringParam(req.query as Query, 'lease');
            return [...nameNeed('write')(req), ...(lease !== undefined ? [{ lease }] : [])];
          },
        },
      },
      async (req, reply) => {
        const query = req.query as Query;
        rejectUnknown(query, ['lease']);
        const name = nameParam(req.params);
        const key = REGISTRY_PREFIX + name;
        const lease = stringParam(query, 'lease');
        const result = await service.txn(
          {
            compare:
              lease === undefined
                ? [{ key, target: 'createRevision', op: '>', value: 0 }]
                : [{ key, target: 'lease', op: '==', value: lease }],
            success: [{ op: 'delete', key }],
            failure: [{ op: 'get', key }],
          },
          writeOptionsOf(req, service),
        );
        if (!result.ok)
          return sendError(reply, wireCode(result.code), result.message, {
            revision: result.revision,
          });
        if (result.succeeded) return { deleted: 1, revision: result.revision };
        const current = (result.results[0] as { op: 'get'; kvs: KeyValue[] }).kvs[0];
        if (!current)
          return sendError(reply, 'key_not_found', `name "${name}" is not registered`, {
            revision: result.revision,
          });
        return sendError(reply, 'compare_failed', `name "${name}" is held by another lease`, {
          entry: entryOf(current),
          revision: result.revision,
        });
      },
    );
  };
}
