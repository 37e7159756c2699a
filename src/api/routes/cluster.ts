import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.js';
import { consistencyParam, type Query, rejectUnknown } from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService } from '../service.js';

export function clusterRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    const status = routeDoc(
      'cluster',
      "This member's status: role, leader, term, indexes, revision",
    );
    app.get('/v1/status', { schema: status, config: { access: 'authenticated' } }, async (req) => {
      rejectUnknown(req.query as Query, []);
      return service.status();
    });

    const members = routeDoc('cluster', 'The members and the leader', {
      description:
        'Linearizable: after a read barrier, so a membership change already acknowledged shows ' +
        'whichever member answers. `consistency=serializable` answers from this member alone, ' +
        'also without a leader (what the dashboard and `kvctl status` use to find the members).',
      queryParams: ['consistency'],
    });
    app.get(
      '/v1/cluster/members',
      { schema: members, config: { access: 'authenticated' } },
      async (req) => {
        const query = req.query as Query;
        rejectUnknown(query, ['consistency']);
        return service.members({
          consistency: consistencyParam(query),
          signal: service.requestDeadline(),
        });
      },
    );

    app.post(
      '/v1/cluster/members',
      {
        schema: {
          ...routeDoc('cluster', 'Add a member (a voter, or a learner)', { successStatus: [201] }),
          body: addMemberBody,
        },
        config: { access: 'root' },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const body = req.body as {
          name: string;
          peerUrl: string;
          clientUrl: string;
          learner?: boolean;
        };
        for (const field of ['peerUrl', 'clientUrl'] as const) {
          if (!isHttpUrl(body[field])) {
            throw new ApiError('invalid_request', `"${field}" must be an http:// or https:// URL`);
          }
        }
        const member = await service.changeMembers(
          { type: 'add', ...body, learner: body.learner ?? false },
          service.requestDeadline(),
        );
        return reply.code(201).send(member);
      },
    );
    const promote = routeDoc('cluster', 'Promote a learner to a voter');
    app.post(
      '/v1/cluster/members/:id/promote',
      { schema: promote, config: { access: 'root' } },
      async (req) => {
        rejectUnknown(req.query as Query, []);
        return service.changeMembers(
          { type: 'promote', id: memberIdParam(req.params) },
          service.requestDeadline(),
        );
      },
    );
    const remove = routeDoc('cluster', 'Remove a member');
    app.delete(
      '/v1/cluster/members/:id',
      { schema: remove, config: { access: 'root' } },
      async (req) => {
        rejectUnknown(req.query as Query, []);
        const id = memberIdParam(req.params);
        await service.changeMembers({ type: 'remove', id }, service.requestDeadline());
        return { id, removed: true };
      },
    );
    const transfer = routeDoc('cluster', 'Move leadership (body `{"to"?: member id}`, or none)', {
      description: 'Answers after leadership moved.',
    });
    app.post(
      '/v1/cluster/leader',
      { schema: transfer, config: { access: 'root' } },
      async (req) => {
        rejectUnknown(req.query as Query, []);
        return service.transferLeader(transferTarget(req.body), service.requestDeadline());
      },
    );
    const snapshot = routeDoc(
      'operations',
      'A consistent backup, restorable with `raftkv restore`',
      {
        produces: ['application/octet-stream'],
      },
    );
    app.get(
      '/v1/snapshot',
      { schema: snapshot, config: { access: 'root' } },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const { header, bytes } = await service.backup(service.requestDeadline());
        return reply
          .type('application/octet-stream')
          .header('content-disposition', `attachment; filename="raftkv-r${header.revision}.snap"`)
          .header('x-raftkv-revision', String(header.revision))
          .header('x-raftkv-applied-index', String(header.appliedIndex))
          .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      },
    );

    const health = routeDoc(
      'operations',
      'Health: a leader is known and this member has caught up',
      {
        description: '503 `{"status": "unhealthy", "reason"}` otherwise.',
      },
    );
    app.get('/health', { schema: health, config: { access: 'public' } }, async (_req, reply) => {
      const h = await service.health();
      if (h.healthy) return { status: 'ok' };
      return reply
        .code(503)
        .header('retry-after', '1')
        .send({ status: 'unhealthy', reason: h.reason ?? 'unknown' });
    });

    // Probes (Kubernetes and the like). Liveness does not depend on the quorum: a
    // liveness probe must not restart every member while the cluster has no leader.
    const livez = routeDoc('operations', 'Liveness probe: the process and its Raft loop run', {
      description:
        'Whatever the quorum; 503 `{"status": "failed", "reason", "detail"}` after a failed disk write.',
    });
    app.get('/livez', { schema: livez, config: { access: 'public' } }, async (_req, reply) => {
      const l = service.liveness();
      if (l.live) return { status: 'ok' };
      return reply.code(503).send({
        status: 'failed',
        reason: l.reason ?? 'unknown',
        ...(l.detail !== undefined ? { detail: l.detail } : {}),
      });
    });
    const readyz = routeDoc(
      'operations',
      'Readiness probe: knows a leader and has applied what is committed',
      {
        description: '503 `{"status": "unavailable", "reason"}` with Retry-After otherwise.',
      },
    );
    app.get('/readyz', { schema: readyz, config: { access: 'public' } }, async (_req, reply) => {
      const r = service.readiness();
      if (r.ready) return { status: 'ok' };
      return reply
        .code(503)
        .header('retry-after', '1')
        .send({ status: 'unavailable', reason: r.reason ?? 'unknown' });
    });

    const metrics = routeDoc('operations', 'Prometheus metrics', { produces: ['text/plain'] });
    app.get('/metrics', { schema: metrics, config: { access: 'public' } }, async (_req, reply) => {
      const m = await service.metrics();
      return reply.type(m.contentType).send(m.body);
    });
  };
}

const addMemberBody = {
  type: 'object',
  required: ['name', 'peerUrl', 'clientUrl'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' },
    peerUrl: { type: 'string', minLength: 1, maxLength: 2048 },
    clientUrl: { type: 'string', minLength: 1, maxLength: 2048 },
    learner: { type: 'boolean' },
  },
} as const;

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host !== '';
  } catch {
    return false;
  }
}

function memberIdParam(params: unknown): string {
  const id = (params as { id?: string }).id ?? '';
  if (!/^[0-9a-f]{16}$/.test(id)) throw new ApiError('invalid_request', `not a member id: "${id}"`);
  return id;
}

/** `{"to"?: id}`, or no body at all: the member to hand leadership to, if named. */
function transferTarget(body: unknown): string | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError('invalid_request', 'expected a JSON object {"to"?: member id}');
  }
  const extra = Object.keys(body).filter((k) => k !== 'to');
  if (extra.length > 0) throw new ApiError('invalid_request', `unknown field "${extra[0]}"`);
  const to = (body as { to?: unknown }).to;
  if (to === undefined) return undefined;
  if (typeof to !== 'string' || to.length === 0 || to.length > 128) {
    throw new ApiError('invalid_request', '"to" must be a member id (a non-empty string)');
  }
  return to;
}
