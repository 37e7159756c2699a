import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError, sendError, wireCode } from '../errors.js';
import { type Query, rejectUnknown, writeOptionsOf } from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService } from '../service.js';

/** A year: longer TTLs are almost certainly a unit mistake (ms for s). */
const MAX_TTL_SECONDS = 365 * 24 * 3600;

const grantBody = {
  type: 'object',
  required: ['ttl'],
  additionalProperties: false,
  properties: {
    ttl: { type: 'integer', minimum: 1, maximum: MAX_TTL_SECONDS },
    id: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._-]+$' },
  },
} as const;

function leaseIdParam(params: unknown): string {
  const id = (params as { id?: string }).id ?? '';
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) {
    throw new ApiError(
      'invalid_request',
      'a lease id is 1 to 128 letters, digits, dots, dashes or underscores',
    );
  }
  return id;
}

/** API.md: only the user who granted a lease (or root) may keep it alive, revoke it or look it up. */
const ownLease = { access: (req: FastifyRequest) => [{ lease: leaseIdParam(req.params) }] };

/** API.md "Leases". */
export function leaseRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.post(
      '/v1/leases',
      {
        schema: {
          ...routeDoc('leases', 'Grant a lease', { successStatus: [201] }),
          body: grantBody,
        },
        config: { access: 'authenticated' },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const body = req.body as { ttl: number; id?: string };
        const result = await service.leaseGrant(body, writeOptionsOf(req, service));
        if (!result.ok)
          return sendError(reply, wireCode(result.code), result.message, {
            revision: result.revision,
          });
        return reply.code(201).send({ id: result.id, ttl: result.ttl });
      },
    );

    const keepAlive = routeDoc('leases', 'Keep a lease alive: its TTL restarts');
    app.post(
      '/v1/leases/:id/keepalive',
      { schema: keepAlive, config: ownLease },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const id = leaseIdParam(req.params);
        const result = await service.leaseKeepAlive(id, writeOptionsOf(req, service));
        if (!result.ok)
          return sendError(reply, wireCode(result.code), result.message, {
            revision: result.revision,
          });
        return { id: result.id, ttl: result.ttl };
      },
    );

    const info = routeDoc('leases', 'A lease: its TTL, the time remaining and its keys');
    app.get('/v1/leases/:id', { schema: info, config: ownLease }, async (req, reply) => {
      rejectUnknown(req.query as Query, []);
      const id = leaseIdParam(req.params);
      const lease = await service.leaseInfo(id, service.requestDeadline());
      if (!lease) return sendError(reply, 'lease_not_found', `lease ${id} not found`);
      return lease;
    });

    const list = routeDoc('leases', 'List leases (a user sees its own; root sees all)');
    app.get('/v1/leases', { schema: list, config: { access: 'authenticated' } }, async (req) => {
      rejectUnknown(req.query as Query, []);
      const leases = await service.leaseList(service.requestDeadline());
      // API.md: a user lists its own leases; root (and everyone while auth is off) sees all.
      const { user, root } = req.principal;
      return { leases: root ? leases : leases.filter((l) => l.owner === user) };
    });

    const revoke = routeDoc('leases', 'Revoke a lease: its keys are deleted in one revision');
    app.delete('/v1/leases/:id', { schema: revoke, config: ownLease }, async (req, reply) => {
      rejectUnknown(req.query as Query, []);
      const id = leaseIdParam(req.params);
      const result = await service.leaseRevoke(id, writeOptionsOf(req, service));
      if (!result.ok)
        return sendError(reply, wireCode(result.code), result.message, {
          revision: result.revision,
        });
      return { revoked: true, deleted: result.deleted };
    });
  };
}
