/**
 * Issue 14: the OpenAPI 3.1 document at GET /v1/openapi.json and the reference
 * pages at /docs. The document is built from the routes fastify serves, so
 * these tests hold it against API.md (every route it names is there), against
 * the peer port (none of its routes is), and against the server's behaviour
 * (documented query parameters are accepted; routes documented as public
 * answer without credentials with authentication on, and no other does).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import Fastify from 'fastify';
import t, { type Test } from 'tap';
import { installAccessControl, registerWithAccess } from '../../src/api/access.js';
import { buildApp } from '../../src/api/app.js';
import type { ApiService } from '../../src/api/service.js';
import { AuthError } from '../../src/server/auth.js';
import {
  PATH_CLUSTER_INFO,
  PATH_LEASES,
  PATH_MEMBER_CHANGE,
  PATH_PROPOSE,
  PATH_TRANSFER_LEADER,
} from '../../src/server/forwarder.js';
import { PATH_STREAM } from '../../src/transport/message-stream.js';
import { PATH_HEALTH, PATH_MESSAGES, PATH_SNAPSHOT } from '../../src/transport/peer-routes.js';
import type { Json } from './helpers.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

/**
 * A service whose every call fails, with authentication on or off: the
 * document and the access checks need no data. A Proxy, so it keeps up with
 * methods added to ApiService.
 */
function fakeService(authEnabled: boolean): ApiService {
  const target: Record<string | symbol, unknown> = {
    requestTimeoutMs: 1000,
    requestDeadline: () => AbortSignal.timeout(1000),
    authState: { enabled: authEnabled },
    onAuthChange: () => () => {},
    removed: () => undefined,
    observeRequest: () => {},
    // Every credential (and none) is refused: only public routes can answer.
    authenticate: async () => {
      throw new AuthError('unauthenticated', 'credentials required');
    },
  };
  return new Proxy(target, {
    get: (o, name) => {
      if (name in o) return o[name];
      // Thrown at the call (some service methods are synchronous), not as a rejection.
      return typeof name === 'string' && name !== 'then'
        ? () => {
            throw new Error(`the fake service has no ${name}`);
          }
        : undefined;
    },
  }) as unknown as ApiService;
}

async function appWithAuth(t: Test, authEnabled: boolean): Promise<FastifyInstance> {
  const app = buildApp(fakeService(authEnabled));
  t.teardown(() => app.close());
  await app.ready();
  return app;
}

async function documentOf(app: FastifyInstance): Promise<Json> {
  const res = await app.inject({ method: 'GET', url: '/v1/openapi.json' });
  if (res.statusCode !== 200)
    throw new Error(`GET /v1/openapi.json: ${res.statusCode} ${res.body}`);
  return res.json();
}

/** Every (method, path) of the document, as `GET /v1/kv/{key}`. */
function operations(doc: Json): { method: string; path: string; op: Json }[] {
  const out: { method: string; path: string; op: Json }[] = [];
  for (const [path, item] of Object.entries<Json>(doc.paths)) {
    for (const method of METHODS) {
      if (item[method]) out.push({ method: method.toUpperCase(), path, op: item[method] });
    }
  }
  return out;
}

/** A path template with every parameter written `{}`: `/v1/kv/{key}` and `/v1/kv/{k}` are one route. */
function normalise(path: string): string {
  return path.replace(/\{[^}]*\}/g, '{}').replace(/(.)\/$/, '$1');
}

/** A concrete URL for a template: parameters filled with values every route accepts. */
function concrete(path: string): string {
  return path
    .replace('{key}', 'k')
    .replace('{name}', 'n')
    .replace('{id}', '0123456789abcdef')
    .replace(/\{[^}]*\}/g, 'x');
}

/**
 * Every `METHOD /path` API.md names in a code span, as [method, normalised path]:
 * `GET /v1/kv?prefix=P` is `GET /v1/kv`, `PUT /v1/kv/{key}` is `PUT /v1/kv/{}`.
 */
function routesNamedIn(text: string): Set<string> {
  const routes = new Set<string>();
  for (const m of text.matchAll(/`(GET|PUT|POST|DELETE|PATCH) (\/[^\s`?]*)/g))
    routes.add(`${m[1]} ${normalise(m[2]!)}`);
  return routes;
}

/** The repository's copy of the contract with its additions, and the project's own beside the repository (CI puts it there). */
const API_MDS = [
  { what: "the repository's docs/API.md", url: new URL('../../docs/API.md', import.meta.url) },
  {
    what: "the project's ../shared/API.md",
    url: new URL('../../../shared/API.md', import.meta.url),
  },
];

t.test('the document is OpenAPI 3.1 and well formed', async (t) => {
  const doc = await documentOf(await appWithAuth(t, false));
  t.match(doc.openapi, /^3\.1\.\d+$/, 'openapi is 3.1.x');
  t.type(doc.info?.title, 'string', 'info.title');
  t.type(doc.info?.version, 'string', 'info.version');
  const tagNames = new Set((doc.tags as Json[]).map((tag) => tag.name));
  t.same(
    [...tagNames],
    ['kv', 'watch', 'leases', 'registry', 'locks', 'elections', 'cluster', 'auth', 'operations'],
    'the groups, in order',
  );
  const problems: string[] = [];
  const operationIds = new Set<string>();
  for (const { method, path, op } of operations(doc)) {
    const where = `${method} ${path}`;
    if (!path.startsWith('/')) problems.push(`${where}: the path does not start with /`);
    if (typeof op.summary !== 'string' || op.summary === '') problems.push(`${where}: no summary`);
    if (!Array.isArray(op.tags) || op.tags.length !== 1 || !tagNames.has(op.tags[0]))
      problems.push(`${where}: not in exactly one known group`);
    const responses = Object.entries<Json>(op.responses ?? {});
    if (!responses.some(([status]) => /^[23]\d\d$/.test(status)))
      problems.push(`${where}: no success response`);
    for (const [status, response] of responses) {
      if (!/^([1-5]\d\d|[1-5]XX|default)$/.test(status))
        problems.push(`${where}: response key ${status}`);
      if (typeof response.description !== 'string')
        problems.push(`${where} ${status}: no description`);
    }
    if (
      op.responses?.default?.content?.['application/json']?.schema?.$ref !==
      '#/components/schemas/ApiError'
    )
      problems.push(`${where}: failures are not API.md's JSON error body`);
    if (op.operationId !== undefined) {
      if (operationIds.has(op.operationId)) problems.push(`${where}: operationId used twice`);
      operationIds.add(op.operationId);
    }
    // Path parameters: each one in the template is declared (required), and none else.
    const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    const declared = (op.parameters ?? []).filter((p: Json) => p.in === 'path');
    for (const name of inPath) {
      const p = declared.find((d: Json) => d.name === name);
      if (!p) problems.push(`${where}: path parameter ${name} not declared`);
      else if (p.required !== true) problems.push(`${where}: path parameter ${name} not required`);
    }
    for (const p of declared)
      if (!inPath.includes(p.name)) problems.push(`${where}: ${p.name} is not in the path`);
    for (const p of op.parameters ?? []) {
      if (!['path', 'query', 'header', 'cookie'].includes(p.in))
        problems.push(`${where}: parameter ${p.name} in ${p.in}`);
      if (p.schema === undefined) problems.push(`${where}: parameter ${p.name} has no schema`);
    }
  }
  // Every reference points at a schema the document holds.
  const text = JSON.stringify(doc);
  for (const [, name] of text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) {
    if (doc.components?.schemas?.[name!] === undefined) problems.push(`dangling $ref ${name}`);
  }
  t.same(problems, [], 'no operation breaks the rules above');
  t.ok(
    doc.paths['/v1/watch/{key}'].get.responses['200'].content['text/event-stream'],
    'a watch answers Server-Sent Events',
  );
  t.same(
    Object.keys(doc.paths['/v1/leases'].post.responses).sort(),
    ['201', 'default'],
    'a lease grant answers 201',
  );
  t.ok(
    operations(doc).length >= 40,
    `the document has the whole API (${operations(doc).length} operations)`,
  );
});

for (const apiMd of API_MDS) {
  const present = existsSync(apiMd.url);
  t.test(
    `every route ${apiMd.what} names is in the document`,
    present ? {} : { skip: `${apiMd.what} is not there (${apiMd.url.pathname})` },
    async (t) => {
      const named = routesNamedIn(readFileSync(apiMd.url, 'utf8'));
      t.ok(named.size >= 40, `API.md names its routes (${named.size} found)`);
      const doc = await documentOf(await appWithAuth(t, false));
      const documented = new Set(operations(doc).map((o) => `${o.method} ${normalise(o.path)}`));
      // The reference pages render the document; they are not an operation of it.
      named.delete('GET /docs');
      for (const route of [...named].sort()) t.ok(documented.has(route), route);
    },
  );
}

t.test(
  'a key in a path may hold "/": the KV, watch and registry paths name their tail',
  async (t) => {
    const doc = await documentOf(await appWithAuth(t, false));
    for (const [path, name] of [
      ['/v1/kv/{key}', 'key'],
      ['/v1/watch/{key}', 'key'],
      ['/v1/registry/{name}', 'name'],
    ] as const) {
      t.ok(doc.paths[path], `${path} is documented`);
      const params = Object.values<Json>(doc.paths[path] ?? {}).flatMap(
        (op) => op.parameters ?? [],
      );
      t.ok(
        params.some((p: Json) => p.in === 'path' && p.name === name && /"\/"/.test(p.description)),
        `${path}: {${name}} says it may contain "/"`,
      );
    }
    t.notOk(
      Object.keys(doc.paths).some((p) => p.includes('*')),
      'no path keeps the router wildcard',
    );
  },
);

t.test('internal peer routes are not in the document', async (t) => {
  const doc = await documentOf(await appWithAuth(t, false));
  const paths = Object.keys(doc.paths);
  const internal = [
    PATH_PROPOSE,
    PATH_LEASES,
    PATH_TRANSFER_LEADER,
    PATH_MEMBER_CHANGE,
    PATH_CLUSTER_INFO,
    PATH_STREAM,
    PATH_MESSAGES,
    PATH_SNAPSHOT,
    PATH_HEALTH,
  ];
  for (const path of internal) t.notOk(paths.includes(path), `${path} is not documented`);
  t.same(
    paths.filter((p) => p.startsWith('/raft')),
    [],
    'no /raft path at all',
  );
  t.same(
    paths.filter((p) => p.startsWith('/docs')),
    [],
    "the reference pages' own files are not operations",
  );
});

t.test('every query parameter the document lists is one its route accepts', async (t) => {
  const app = await appWithAuth(t, false);
  const doc = await documentOf(app);
  let checked = 0;
  for (const { method, path, op } of operations(doc)) {
    for (const p of (op.parameters ?? []).filter((q: Json) => q.in === 'query')) {
      // The handler names the first query parameter it does not know: with the documented one
      // first and an unknown one after it, the answer must name the unknown one.
      const url = `${concrete(path)}?${p.name}=1&not_a_parameter=1`;
      const res = await app.inject({ method: method as 'GET', url });
      t.equal(
        res.json()?.error?.message,
        'unknown query parameter "not_a_parameter"',
        `${method} ${path} accepts ${p.name}`,
      );
      checked++;
    }
  }
  t.ok(checked >= 20, `query parameters were checked (${checked})`);
});

t.test('GET /docs serves the reference pages from this server, without a CDN', async (t) => {
  const app = await appWithAuth(t, false);
  const page = await app.inject({ method: 'GET', url: '/docs' });
  t.equal(page.statusCode, 200, '/docs answers');
  t.match(page.headers['content-type'], /^text\/html/, 'as HTML');
  t.match(page.body, /swagger-ui/, 'the swagger-ui page');
  const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  t.ok(assets.length >= 4, `the page loads its scripts and styles (${assets.length})`);
  for (const asset of assets) {
    t.notMatch(asset, /^(https?:)?\/\//, `${asset} is served by this server`);
    const res = await app.inject({ method: 'GET', url: asset });
    t.equal(res.statusCode, 200, `${asset} answers`);
  }
  const init = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
  t.match(init.body, /validatorUrl: null/, 'the pages never ask validator.swagger.io');
  const json = await app.inject({ method: 'GET', url: '/docs/json' });
  t.same(json.json(), await documentOf(app), 'the pages render the same document');
});

t.test('with authentication on, the document and the pages need no credentials', async (t) => {
  const app = await appWithAuth(t, true);
  const refused = await app.inject({ method: 'GET', url: '/v1/status' });
  t.equal(refused.statusCode, 401, 'the API itself still needs credentials');
  for (const url of [
    '/v1/openapi.json',
    '/docs',
    '/docs/static/swagger-ui-bundle.js',
    '/docs/json',
  ]) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 200, `${url} answers without credentials`);
  }
  const doc = await documentOf(app);
  t.same(doc, await documentOf(await appWithAuth(t, false)), 'the same document as with auth off');
  t.ok(doc.components.securitySchemes.bearer, 'bearer tokens are a security scheme');
  t.ok(doc.components.securitySchemes.basic, 'Basic credentials are a security scheme');
});

t.test(
  'the routes the document calls public are exactly those that answer without credentials',
  async (t) => {
    const app = await appWithAuth(t, true);
    const doc = await documentOf(app);
    const publicRoutes: string[] = [];
    for (const { method, path, op } of operations(doc)) {
      const documentedPublic = Array.isArray(op.security) && op.security.length === 0;
      if (documentedPublic) publicRoutes.push(`${method} ${path}`);
      const res = await app.inject({ method: method as 'GET', url: concrete(path) });
      t.equal(
        res.statusCode === 401,
        !documentedPublic,
        `${method} ${path}: ${documentedPublic ? 'public' : 'needs credentials'} (${res.statusCode})`,
      );
    }
    // API.md: everything needs credentials except these (plus the probes and this reference).
    for (const route of [
      'GET /health',
      'GET /metrics',
      'GET /v1/auth/status',
      'POST /v1/auth/token',
    ])
      t.ok(publicRoutes.includes(route), `${route} is public`);
  },
);

t.test(
  'a plugin registered with an access gives it to its routes; a bare route still refuses to build',
  async (t) => {
    const service = fakeService(true);
    const app = Fastify();
    t.teardown(() => app.close());
    installAccessControl(app, service);
    registerWithAccess(
      app,
      'public',
      async (scope: FastifyInstance) => {
        scope.get('/outside', async () => ({ ok: true }));
        // Its own registrations inherit the access too.
        scope.register(async (inner: FastifyInstance) => {
          inner.get('/outside/inner', async () => ({ ok: true }));
        });
      },
      {},
    );
    await app.ready();
    t.equal((await app.inject({ method: 'GET', url: '/outside' })).statusCode, 200, 'public');
    t.equal((await app.inject({ method: 'GET', url: '/outside/inner' })).statusCode, 200, 'public');

    const bare = Fastify();
    t.teardown(() => bare.close());
    installAccessControl(bare, service);
    bare.register(async (scope) => {
      scope.get('/undeclared', async () => ({}));
    });
    await t.rejects(
      async () => bare.ready(),
      /declares no access/,
      'a route without config.access',
    );
  },
);
