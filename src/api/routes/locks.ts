import type { FastifyInstance } from 'fastify';
import { ApiError, sendError, wireCode } from '../errors.js';
import { type Query, rejectUnknown, requesterOf, stringParam, writeOptionsOf } from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService } from '../service.js';

const MAX_WAIT_MS = 5 * 60_000;

const acquireBody = {
  type: 'object',
  required: ['lease'],
  additionalProperties: false,
  properties: {
    lease: { type: 'string', minLength: 1, maxLength: 128 },
    timeoutMs: { type: 'integer', minimum: 0, maximum: MAX_WAIT_MS },
  },
} as const;

/** Lock and election names: no '/', so one name's line never contains another's. */
export function coordinationName(params: unknown): string {
  const name = (params as { name?: string }).name ?? '';
  if (name.length < 1 || name.length > 256 || name.includes('/') || name.includes('\u0000')) {
    throw new ApiError('invalid_request', 'a name is 1 to 256 characters without "/"');
  }
  return name;
}

/** API.md "Locks": a fair FIFO queue per name; the fencing token is the holder key's createRevision. */
export function lockRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.post(
      '/v1/locks/:name',
      {
        schema: {
          ...routeDoc('locks', 'Acquire a lock: wait in line, then hold it', {
            description:
              "The fencing token (the lock key's createRevision) strictly increases from one holder to the next. 409 `lock_timeout` if not acquired within `timeoutMs` (the place in line is given up).",
          }),
          body: acquireBody,
        },
        config: {
          access: (req) => [
            { resource: 'locks', key: coordinationName(req.params), access: 'write' },
            { lease: (req.body as { lease: string }).lease },
          ],
        },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const name = coordinationName(req.params);
        const { lease, timeoutMs } = req.body as { lease: string; timeoutMs?: number };
        const result = await service.lockAcquire(
          name,
          lease,
          timeoutMs ?? service.requestTimeoutMs,
          requesterOf(req),
        );
        if (!result.ok) return sendError(reply, result.code, result.message);
        return { name: result.name, key: result.key, fencingToken: result.fencingToken };
      },
    );

    app.delete(
      '/v1/locks/:name',
      {
        schema: routeDoc('locks', 'Release a lock (the holder key is ?key=K)', {
          queryParams: ['key'],
        }),
        config: {
          access: (req) => [
            { resource: 'locks', key: coordinationName(req.params), access: 'write' },
          ],
        },
      },
      async (req, reply) => {
        const query = req.query as Query;
        rejectUnknown(query, ['key']);
        const name = coordinationName(req.params);
        const key = stringParam(query, 'key');
        if (!key) throw new ApiError('invalid_request', 'the holder key is required: ?key=K');
        const result = await service.lockRelease(name, key, writeOptionsOf(req, service));
        if (!result.ok) return sendError(reply, wireCode(result.code), result.message);
        return { released: true, revision: result.revision };
      },
    );
  };
}
