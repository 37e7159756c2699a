import type { FastifyInstance } from 'fastify';
import { sendError, wireCode } from '../errors.js';
import { type Query, rejectUnknown, writeOptionsOf } from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService } from '../service.js';

/**
 * `POST /v1/sync` (raftkv 0.2.0): a barrier through the Raft log. It answers
 * once a no-op command proposed after the request arrived is applied on this
 * member, with the revision then: every write acknowledged before the call is
 * in it. Below cluster version 0.2.0 it is refused (409 cluster_version_too_old)
 * before anything is proposed, as every command the cluster version lacks is.
 */
export function syncRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    const sync = routeDoc(
      'kv',
      'A barrier: answers once every write acknowledged before it is applied here',
      {
        description: 'Needs cluster version 0.2.0 (else 409 `cluster_version_too_old`).',
      },
    );
    app.post(
      '/v1/sync',
      { schema: sync, config: { access: 'authenticated' } },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const result = await service.sync(writeOptionsOf(req, service));
        if (!result.ok)
          return sendError(reply, wireCode(result.code), result.message, {
            revision: result.revision,
          });
        return { revision: result.revision };
      },
    );
  };
}
