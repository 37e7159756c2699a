import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { VERSION } from '../server/version.js';
import { type RouteAccess, registerWithAccess } from './access.js';
import { statusOfCode } from './errors.js';
import { QUERY_PARAMS, type RouteDoc, TAGS, wireName } from './route-docs.js';

/** Where the document is served (API.md addition), and the reference pages. */
export const OPENAPI_PATH = '/v1/openapi.json';
export const DOCS_PREFIX = '/docs';

/**
 * The names of the wildcard routes' tails: `/v1/kv/*` is `/v1/kv/{key}` in
 * the document (a key may contain `/`, so the router matches the rest of the
 * path). A new wildcard route must be named here, or the document refuses to build.
 */
const WILDCARD_NAMES: Readonly<Record<string, { name: string; description: string }>> = {
  '/v1/kv/': { name: 'key', description: 'the key, URL-encoded; it may contain "/"' },
  '/v1/watch/': {
    name: 'key',
    description: 'the key (or with prefix=true the prefix), URL-encoded; it may contain "/"',
  },
  '/v1/registry/': {
    name: 'name',
    description: 'the registry name, URL-encoded; it may contain "/"',
  },
};

/** API.md's error body; its codes are the error table's (errors.ts), so they cannot drift. */
const errorReply = {
  $id: 'ApiError',
  description: "API.md's error body; the status follows from `code` (see API.md's error table)",
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: Object.keys(statusOfCode) },
        message: { type: 'string' },
      },
    },
  },
  additionalProperties: true,
} as const;

const PUBLIC_NOTE = 'No credentials needed, even with authentication enabled.';
const ACCESS_NOTES: Record<Exclude<RouteAccess, (...args: never[]) => unknown>, string> = {
  public: PUBLIC_NOTE,
  authenticated: 'Any authenticated user (when authentication is enabled).',
  root: 'Root only (when authentication is enabled).',
};
const NEEDS_NOTE =
  'Needs the permissions API.md\'s "What needs which permission" lists (when authentication is enabled).';

interface TransformInput {
  schema: Record<string, unknown> | undefined;
  url: string;
  route: { config?: { access?: RouteAccess } };
}

/**
 * A route as the document shows it: wildcards named, query parameters from
 * route-docs.ts, who may call it, and API.md's error body for every failure.
 * It changes only the document: fastify validates with the route's own schema.
 */
function documentRoute({ schema = {}, url, route }: TransformInput): {
  schema: Record<string, unknown>;
  url: string;
} {
  // Routes that hide themselves (the reference pages' own files) are left as they are.
  if (schema.hide === true) return { schema, url };
  // Peer-port paths never belong to the client API's document, even if one were mounted here.
  if (url.startsWith('/raft/')) return { schema: { ...schema, hide: true }, url };
  const doc = schema as Partial<RouteDoc> & Record<string, unknown>;
  const out: Record<string, unknown> = { ...schema };
  let docUrl = url;
  if (url.endsWith('*')) {
    const stem = url.slice(0, -1);
    const wildcard = WILDCARD_NAMES[stem];
    if (!wildcard) throw new Error(`openapi: name the wildcard of ${url} in WILDCARD_NAMES`);
    docUrl = `${stem}{${wildcard.name}}`;
    out.params = {
      type: 'object',
      required: [wildcard.name],
      properties: {
        [wildcard.name]: { type: 'string', minLength: 1, description: wildcard.description },
      },
    };
  }
  if (doc.queryParams && doc.queryParams.length > 0) {
    out.querystring = {
      type: 'object',
      properties: Object.fromEntries(
        doc.queryParams.map((p) => [
          wireName(p),
          { ...QUERY_PARAMS[p].schema, description: QUERY_PARAMS[p].description },
        ]),
      ),
    };
  }
  const access = route.config?.access;
  const note = typeof access === 'function' ? NEEDS_NOTE : access ? ACCESS_NOTES[access] : '';
  out.description = [doc.description, note].filter(Boolean).join('\n\n');
  if (access === 'public') out.security = [];
  // A route without a response schema: its success status(es) and content types, any body.
  const produces = doc.produces ?? ['application/json'];
  const success = schema.response
    ? (schema.response as Record<string, unknown>)
    : Object.fromEntries(
        (doc.successStatus ?? [200]).map((status) => [
          status,
          {
            description: 'Success: the body API.md gives for this route',
            content: Object.fromEntries(produces.map((type) => [type, { schema: {} }])),
          },
        ]),
      );
  // Failures are JSON whatever a success is (a stream, a backup, metrics).
  const failure = {
    description: errorReply.description,
    content: { 'application/json': { schema: { $ref: 'ApiError#' } } },
  };
  out.response = { ...success, default: failure };
  return { schema: out, url: docUrl };
}

/**
 * Registers the OpenAPI 3.1 document of every route added after it (its
 * onRoute hook must see them: call it before the routes are registered),
 * serves it at GET /v1/openapi.json and the reference pages (swagger-ui,
 * bundled, no CDN) under /docs.
 *
 * Both are public with authentication on: they describe the API and hold no
 * data (the same for every cluster), like the health probes; etcd serves its
 * API description the same way. Every route's document says who may call it.
 */
export function registerOpenApi(app: FastifyInstance): void {
  app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'raftkv client API',
        version: VERSION,
        description:
          'A Raft-replicated coordination service: KV with watches and transactions, leases, a registry, locks and elections. The contract is API.md; this document is generated from the route schemas the server validates with. Writes may carry an `Idempotency-Key` header (1 to 128 printable ASCII characters): a retry within 10 minutes is applied at most once and gets the first answer. Reads take `consistency` and `minRevision`.',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'a token from POST /v1/auth/token',
          },
          basic: { type: 'http', scheme: 'basic', description: 'user name and password' },
        },
      },
      // Either scheme (or, with --client-ca-file, a client certificate) while auth is enabled.
      security: [{ bearer: [] }, { basic: [] }],
    },
    transform: documentRoute as never,
    // Shared schemas keep their $id as their name under components.schemas.
    refResolver: {
      buildLocalReference: (
        json: { $id?: unknown },
        _base: unknown,
        _fragment: unknown,
        i: number,
      ) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });
  // Named once, referenced by every operation's `default` response.
  app.addSchema(errorReply);

  // In a plugin, so that it is added after the document's onRoute hook and is part of it.
  app.register(async (scope) => {
    scope.get(
      OPENAPI_PATH,
      {
        schema: {
          tags: ['operations'],
          summary: 'This OpenAPI 3.1 document of the client API',
          description: `The reference pages that render it are at ${DOCS_PREFIX}.`,
        },
        config: { access: 'public' },
      },
      async () => app.swagger(),
    );
  });

  // swagger-ui and @fastify/static add their own routes, which cannot declare config.access.
  registerWithAccess(app, 'public', fastifySwaggerUi, {
    routePrefix: DOCS_PREFIX,
    uiConfig: { deepLinking: true, docExpansion: 'list' },
    theme: { title: 'raftkv API reference' },
    // Never ask validator.swagger.io: the pages work offline.
    validatorUrl: false,
  });
}
