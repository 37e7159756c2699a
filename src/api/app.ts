import type { IncomingMessage } from 'node:http';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { AuthError } from '../server/auth.js';
import { ServerError } from '../server/errors.js';
import { installAccessControl } from './access.js';
import { ClientConnections } from './client-connections.js';
import { ApiError, sendError, statusOfCode, wireCode } from './errors.js';
import { registerOpenApi } from './openapi.js';
import { alarmRoutes } from './routes/alarms.js';
import { authRoutes } from './routes/auth.js';
import { clusterRoutes } from './routes/cluster.js';
import { coordinationViewRoutes } from './routes/coordination-views.js';
import { electionRoutes } from './routes/elections.js';
import { kvRoutes } from './routes/kv.js';
import { leaseRoutes } from './routes/leases.js';
import { lockRoutes } from './routes/locks.js';
import { registryRoutes } from './routes/registry.js';
import { syncRoutes } from './routes/sync.js';
import { uiRoutes } from './routes/ui.js';
import { watchRoutes } from './routes/watch.js';
import type { ApiService } from './service.js';
import { type SchemaError, validationMessage } from './validation-message.js';

export interface AppOptions {
  /** Largest request body accepted; beyond it: 413 too_large. Defaults to value limit + 64 KiB. */
  bodyLimitBytes?: number;
  logger?: boolean | object;
  /** Serve HTTPS with these options (certificate, key, client-certificate checks). */
  https?: HttpsServerOptions;
}

/** Builds the client API of API.md over a service. No socket is opened: call listen() or inject(). */
/** What a removed member still answers. */
const PROBE_PATHS = new Set(['/livez', '/readyz', '/health', '/metrics']);

export function buildApp(service: ApiService, options: AppOptions = {}): FastifyInstance {
  const app = Fastify({
    ...(options.https ? { https: options.https } : {}),
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimitBytes ?? 6 * 1024 * 1024 + 64 * 1024,
    // Strict validation: no coercion of body types, no silent removal of unknown fields.
    ajv: {
      customOptions: {
        coerceTypes: false,
        removeAdditional: false,
        allErrors: false,
        allowUnionTypes: true,
        // Errors carry their schema and data, so a message can name the field and the problem.
        verbose: true,
      },
    },
    // Each route checks its own path parameters (lease ids and user names up to 128 characters,
    // lock and election names up to 256, each up to 12 bytes percent-encoded): the router's
    // default limit of 100 refused longer ones as a malformed URL before any route saw them.
    routerOptions: { maxParamLength: 16 * 1024 },
    schemaErrorFormatter: (errors, dataVar) =>
      new Error(validationMessage(errors as SchemaError[], dataVar)),
    // Requests that still arrive while the server closes get API.md's 503 (see the onRequest hook).
    return503OnClosing: false,
    // A path that is not valid percent-encoding (`/v1/kv/%E0%A4%A`) never reaches a route:
    // answer it with API.md's error body rather than fastify's own.
    frameworkErrors: (err, _req, reply) =>
      sendError(reply, 'invalid_request', `invalid request URL: ${err.message}`),
    // Errors of the HTTP parser itself (before there is a request): API.md's body too.
    clientErrorHandler: onClientError,
  });

  // Node hands a CONNECT request to 'connect' listeners and, with none, closes the connection
  // without a word: answer it like any unknown route instead. (An Upgrade request with no
  // 'upgrade' listener is served as an ordinary request.)
  app.server.on('connect', refuseConnect);

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

  // Shedding load while closing, as fastify's return503OnClosing does, but with API.md's body
  // and Retry-After: nothing is applied, and another node can take the request. Idle
  // connections are closed at once, busy ones after their response (client-connections.ts).
  const connections = new ClientConnections(app.server, options.https !== undefined);
  connectionsOfApp.set(app, connections);
  app.addHook('preClose', async () => {
    connections.closeIdle();
  });
  // Callback style, not async: this runs on every request, and an async hook costs a promise
  // and a trip through the microtask queue each time.
  app.addHook('onRequest', (_req, reply, done) => {
    if (!connections.closing) return done();
    reply.header('connection', 'close');
    sendError(reply, 'unavailable', 'the node is shutting down', {}, 1);
  });

  // A member removed from the cluster serves nothing but its probes and metrics.
  app.addHook('onRequest', (req, reply, done) => {
    if (service.removed() === undefined || PROBE_PATHS.has(req.url.split('?')[0]!)) return done();
    reply.header('connection', 'close');
    sendError(
      reply,
      'unavailable',
      'this member was removed from the cluster: use another member',
      {},
      1,
    );
  });

  // Request durations by route pattern (bounded label values: never the raw path), and the
  // latency accounting of single-write requests (timedWriteOptionsOf): fastify's elapsedTime
  // runs from the request routed to the response finished, both on performance.now().
  app.decorateRequest('writeStamps', null);
  const observe = service.observeRequest?.bind(service);
  const observeWrite = service.observeWrite?.bind(service);
  if (observe || observeWrite)
    app.addHook('onResponse', (req, reply, done) => {
      const elapsedMs = reply.elapsedTime;
      observe?.(
        req.method,
        req.routeOptions.url ?? 'unmatched',
        reply.statusCode,
        elapsedMs / 1000,
      );
      if (req.writeStamps !== null) observeWrite?.(req.writeStamps, elapsedMs, performance.now());
      done();
    });

  app.setErrorHandler((err, _req: FastifyRequest, reply: FastifyReply) =>
    replyWithError(reply, err),
  );
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`),
  );

  installAccessControl(app, service);
  // Before the routes: the document is built from every route added after it.
  registerOpenApi(app);
  app.register(uiRoutes(service));
  app.register(authRoutes(service));
  app.register(kvRoutes(service));
  app.register(watchRoutes(service));
  app.register(leaseRoutes(service));
  app.register(registryRoutes(service));
  app.register(lockRoutes(service));
  app.register(electionRoutes(service));
  app.register(coordinationViewRoutes(service));
  app.register(clusterRoutes(service));
  app.register(syncRoutes(service));
  app.register(alarmRoutes(service));
  return app;
}

const connectionsOfApp = new WeakMap<FastifyInstance, ClientConnections>();

/** The connections of an app made by buildApp: a graceful stop begins closing them before app.close(). */
export function clientConnections(app: FastifyInstance): ClientConnections {
  const connections = connectionsOfApp.get(app);
  if (!connections) throw new Error('not an app made by buildApp');
  return connections;
}

/** Every failure becomes API.md's error body; nothing escapes as a bare 500. */
export function replyWithError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof ApiError) return sendError(reply, err.code, err.message, err.extra);
  if (err instanceof AuthError)
    return sendError(reply, err.code, err.message, {}, err.retryAfterSeconds);
  if (err instanceof ServerError) {
    return sendError(reply, wireCode(err.code), err.message, {}, err.retryAfterSeconds);
  }
  const e = err as { validation?: unknown; statusCode?: number; code?: string; message?: string };
  if (e.validation) return sendError(reply, 'invalid_request', e.message ?? 'invalid request');
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return sendError(reply, 'too_large', 'request body too large');
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return sendError(reply, 'invalid_request', e.message ?? 'bad request');
  }
  reply.log.error({ err }, 'unexpected error');
  return reply.code(500).send({ error: { code: 'internal', message: 'internal error' } });
}

/** A CONNECT request: no route serves one (API.md's 404 `not_found` body), then close. */
function refuseConnect(req: IncomingMessage, socket: Duplex): void {
  const path = (req.url ?? '').split('?')[0];
  const body = JSON.stringify({
    error: {
      code: 'not_found',
      message: `no route ${req.method} ${path} (this API tunnels nothing)`,
    },
  });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${statusOfCode.not_found} Not Found\r\n` +
        `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `connection: close\r\n\r\n${body}`,
    );
  }
  socket.end();
  socket.on('error', () => {});
}

/**
 * The HTTP parser rejected what the client sent before fastify saw a request:
 * a request line and headers over Node's limit (16 KiB; a key of 4 KiB always
 * fits, even fully percent-encoded) is 413 too_large, anything else 400.
 */
function onClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'too_large' : 'invalid_request';
  const message =
    code === 'too_large'
      ? 'the request line and headers are too large'
      : `malformed HTTP request (${err.code ?? 'client error'})`;
  const body = JSON.stringify({ error: { code, message } });
  const status = statusOfCode[code]!;
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${code === 'too_large' ? 'Payload Too Large' : 'Bad Request'}\r\n` +
        `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
