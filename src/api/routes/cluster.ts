import type { FastifyInstance } from 'fastify';
import { ApiError, sendError } from '../errors.js';
import { type Query, rejectUnknown } from '../params.js';
import type { ApiService } from '../service.js';

export function clusterRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.get('/v1/status', async (req) => {
      rejectUnknown(req.query as Query, []);
      return service.status();
    });

    app.get('/v1/cluster/members', async (req) => {
      rejectUnknown(req.query as Query, []);
      return service.members();
    });

    // Membership changes come with the operations work.
    const notYet = (what: string) => async (_req: unknown, reply: import('fastify').FastifyReply) =>
      sendError(
        reply,
        'not_implemented',
        `${what} is not implemented yet in this version of raftkv`,
      );
    app.post('/v1/cluster/members', notYet('adding a member'));
    app.post('/v1/cluster/members/:id/promote', notYet('promoting a learner'));
    app.delete('/v1/cluster/members/:id', notYet('removing a member'));
    app.post('/v1/cluster/leader', async (req) => {
      rejectUnknown(req.query as Query, []);
      return service.transferLeader(transferTarget(req.body), service.requestDeadline());
    });
    app.get('/v1/snapshot', async (req, reply) => {
      rejectUnknown(req.query as Query, []);
      const { header, bytes } = await service.backup(service.requestDeadline());
      return reply
        .type('application/octet-stream')
        .header('content-disposition', `attachment; filename="raftkv-r${header.revision}.snap"`)
        .header('x-raftkv-revision', String(header.revision))
        .header('x-raftkv-applied-index', String(header.appliedIndex))
        .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    });

    app.get('/health', async (_req, reply) => {
      const h = await service.health();
      if (h.healthy) return { status: 'ok' };
      return reply
        .code(503)
        .header('retry-after', '1')
        .send({ status: 'unhealthy', reason: h.reason ?? 'unknown' });
    });

    app.get('/metrics', async (_req, reply) => {
      const m = await service.metrics();
      return reply.type(m.contentType).send(m.body);
    });
  };
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
