import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ServerError } from '../server/errors.js';
import { ApiError, sendError } from './errors.js';
import { clusterRoutes } from './routes/cluster.js';
import { kvRoutes } from './routes/kv.js';
import { watchRoutes } from './routes/watch.js';
import type { ApiService } from './service.js';

export interface AppOptions {
  /** Largest request body accepted; beyond it: 413 too_large. Defaults to value limit + 64 KiB. */
  bodyLimitBytes?: number;
  logger?: boolean | object;
}

/** Builds the client API of API.md over a service. No socket is opened: call listen() or inject(). */
export function buildApp(service: ApiService, options: AppOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimitBytes ?? 1024 * 1024 + 64 * 1024,
    // Strict validation: no coercion of body types, no silent removal of unknown fields.
    ajv: {
      customOptions: {
        coerceTypes: false,
        removeAdditional: false,
        allErrors: false,
        allowUnionTypes: true,
      },
    },
    return503OnClosing: true,
  });

  // JSON bodies only; an empty body on a route that takes none is fine.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      done(new ApiError('invalid_request', `malformed JSON: ${(err as Error).message}`), undefined);
    }
  });
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined);
    done(
      new ApiError(
        'invalid_request',
        'request bodies must be JSON (content-type: application/json)',
      ),
      undefined,
    );
  });

  app.setErrorHandler((err, _req: FastifyRequest, reply: FastifyReply) =>
    replyWithError(reply, err),
  );
  app.setNotFoundHandler((req, reply) => {
    sendError(reply, 'invalid_request', `no route ${req.method} ${req.url.split('?')[0]}`);
    reply.code(404);
  });

  app.register(kvRoutes(service));
  app.register(watchRoutes(service));
  app.register(clusterRoutes(service));
  return app;
}

/** Every failure becomes API.md's error body; nothing escapes as a bare 500. */
export function replyWithError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof ApiError) return sendError(reply, err.code, err.message, err.extra);
  if (err instanceof ServerError) {
    if (err.code === 'not_leader') return sendError(reply, 'unavailable', err.message, {}, 1);
    return sendError(reply, err.code, err.message, {}, err.retryAfterSeconds);
  }
  const e = err as { validation?: unknown; statusCode?: number; code?: string; message?: string };
  if (e.validation) return sendError(reply, 'invalid_request', `invalid request: ${e.message}`);
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return sendError(reply, 'too_large', 'request body too large');
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return sendError(reply, 'invalid_request', e.message ?? 'bad request');
  }
  reply.log.error({ err }, 'unexpected error');
  return reply.code(500).send({ error: { code: 'internal', message: 'internal error' } });
}
