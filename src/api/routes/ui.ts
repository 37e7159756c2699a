import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sendError } from '../errors.js';
import type { ApiService } from '../service.js';

/**
 * The operators' dashboard at /ui (README "Dashboard"): static files only.
 *
 * 1. The page's own files are the plain ESM files under src/ui, served as
 *    they are; the browser libraries are served from their packages in
 *    node_modules under /ui/vendor/<package>@<version>/, so the page works
 *    offline and a new version is a new URL. The page names its own files
 *    with their content hash (`?v=`, through its import map), so a browser
 *    keeps them for good and a changed file is a new URL: a reload asks for
 *    the page alone.
 * 2. The page preloads the modules its first frame needs (the static imports
 *    reachable from app.js); the other tabs' modules load when opened.
 * 3. Only the files found at startup are served (a fixed table, not a path
 *    joined onto a directory): no request can name a file outside it.
 * 4. The page holds no data: it is public, and every data call it makes goes
 *    to the public API with the user's own credentials.
 * 5. The page talks to every member (their status, and another member when
 *    its own goes away), so the API answers cross-origin requests from the
 *    members' own client URLs, and from nowhere else (CORS).
 */
export function uiRoutes(service: ApiService) {
  const files = uiFiles();
  const plugin = async function routes(app: FastifyInstance): Promise<void> {
    // Hidden from the OpenAPI document: the page is not part of the API.
    app.get('/ui', { schema: { hide: true }, config: { access: 'public' } }, async (_req, reply) =>
      reply.redirect('/ui/', 302),
    );
    app.get(
      '/ui/*',
      { schema: { hide: true }, config: { access: 'public' } },
      async (req, reply) => {
        const path = (req.params as { '*': string })['*'] || 'index.html';
        const file = files.get(path);
        if (file === undefined) {
          return sendError(reply, 'not_found', `no dashboard file ${JSON.stringify(path)}`);
        }
        const version = (req.query as { v?: unknown }).v;
        return sendFile(req, reply, file, version !== undefined && version === file.version);
      },
    );
    installMemberCors(app, service);
  };
  // Not encapsulated: the CORS hook must see every route of the API, not only /ui.
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return plugin;
}

/** One file the dashboard serves, read once at startup. */
interface UiFile {
  body: Buffer;
  contentType: string;
  etag: string;
  /** The content hash the page names this file by (`?v=`). */
  version: string;
  cacheControl: string;
  /** The page's Content-Security-Policy (index.html only). */
  csp?: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

const IMMUTABLE = 'public, max-age=31536000, immutable';

/** The browser libraries: import name → package and file inside it. */
const VENDOR: readonly { name: string; pkg: string; file: string }[] = [
  { name: 'preact', pkg: 'preact', file: 'dist/preact.mjs' },
  { name: 'preact/hooks', pkg: 'preact', file: 'hooks/dist/hooks.mjs' },
  { name: 'htm', pkg: 'htm', file: 'dist/htm.mjs' },
  { name: 'uplot', pkg: 'uplot', file: 'dist/uPlot.esm.js' },
  { name: 'uplot.css', pkg: 'uplot', file: 'dist/uPlot.min.css' },
];

/**
 * Where src/ui is: two levels up in the sources (src/api/routes), else the
 * package's src/ui found by walking up from this file — from dist/src/api/routes
 * in the published package, or from a bundle of the server anywhere inside it.
 */
function uiDirectory(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(here, '../../ui/index.html'))) return join(here, '../../ui');
  for (let dir = here; ; dir = dirname(dir)) {
    const candidate = join(dir, 'src', 'ui');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new Error(`the dashboard's files (src/ui) are missing above ${here}`);
}

/** The package directory of `pkg`, found from its resolved entry point. */
function packageDirectory(pkg: string): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve(pkg));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const json = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version: string };
      if (json.name === pkg) return { dir, version: json.version };
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`package ${pkg} not found`);
    dir = up;
  }
}

/** Every file the dashboard serves, by its path under /ui/. */
export function uiFiles(): Map<string, UiFile> {
  const root = uiDirectory();
  const files = new Map<string, UiFile>();
  const importMap: Record<string, string> = {};
  for (const v of VENDOR) {
    const { dir, version } = packageDirectory(v.pkg);
    const url = `vendor/${v.pkg}@${version}/${v.file.split('/').pop()}`;
    if (!v.name.endsWith('.css')) importMap[v.name] = `/ui/${url}`;
    // Versioned URLs never change: the browser may keep them.
    files.set(url, file(readFileSync(join(dir, v.file)), v.file, IMMUTABLE));
  }
  for (const path of walk(root)) {
    const name = relative(root, path).split(sep).join('/');
    // Type declarations are for the Node tests of the page's logic, not the browser.
    if (name.endsWith('.d.ts') || !(extname(name) in CONTENT_TYPES)) continue;
    // The page's own files: revalidated each load (an upgraded server serves new ones).
    files.set(name, file(readFileSync(path), name, 'no-cache'));
  }
  const index = files.get('index.html');
  if (index === undefined) throw new Error('src/ui/index.html is missing');
  // The page's own modules by their hashed URLs: a relative import resolves to
  // /ui/<name>, which the map turns into /ui/<name>?v=<hash>.
  for (const [name, f] of files) {
    if (!name.startsWith('vendor/') && /\.m?js$/.test(name))
      importMap[`/ui/${name}`] = urlOf(name, f);
  }
  // The import map names every versioned URL; the policy allows only it inline.
  const mapText = JSON.stringify({ imports: importMap });
  const cssUrl = [...files.keys()].find((k) => k.startsWith('vendor/uplot@') && k.endsWith('.css'));
  const firstFrame = staticImports(files, 'app.js', importMap);
  const html = index.body
    .toString('utf8')
    .replace(
      '<!--importmap-->',
      // The first frame's modules at once: the browser need not find them import by import.
      `<script type="importmap">${mapText}</script>\n${firstFrame
        .map((url) => `<link rel="modulepreload" href="${url}">`)
        .join('\n')}`,
    )
    .replace('<!--vendor-css-->', `<link rel="stylesheet" href="/ui/${cssUrl}">`)
    .replace('href="/ui/style.css"', `href="${urlOf('style.css', files.get('style.css'))}"`)
    .replace('src="/ui/app.js"', `src="${importMap['/ui/app.js']}"`);
  const mapHash = createHash('sha256').update(mapText).digest('base64');
  files.set('index.html', {
    ...file(Buffer.from(html), 'index.html', 'no-cache'),
    csp: [
      "default-src 'self'",
      `script-src 'self' 'sha256-${mapHash}'`,
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
      // The other members' client URLs (status, failover); their CORS answer decides.
      "connect-src 'self' http: https:",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'none'",
    ].join('; '),
  });
  return files;
}

/** The URL the page names one of its own files by: with its content hash. */
function urlOf(name: string, f: UiFile | undefined): string {
  if (f === undefined) throw new Error(`src/ui/${name} is missing`);
  return `/ui/${name}?v=${f.version}`;
}

/**
 * The URLs of the modules that `entry` imports statically, directly or not,
 * itself included: what the first frame needs. Dynamic `import()`s (the
 * other tabs, the charts) are left to load when used.
 */
function staticImports(
  files: Map<string, UiFile>,
  entry: string,
  importMap: Record<string, string>,
): string[] {
  const seen = new Set<string>();
  const urls: string[] = [];
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    const f = files.get(name);
    if (f === undefined) throw new Error(`src/ui: ${name} is imported but missing`);
    urls.push(name.startsWith('vendor/') ? `/ui/${name}` : urlOf(name, f));
    if (name.startsWith('vendor/')) return;
    for (const m of f.body
      .toString('utf8')
      .matchAll(/^\s*import\s[^'"]*?from\s+['"]([^'"]+)['"]/gm)) {
      const spec = m[1]!;
      const target = spec.startsWith('.')
        ? new URL(spec, `http://page/ui/${name}`).pathname.slice('/ui/'.length)
        : importMap[spec]?.slice('/ui/'.length);
      if (target !== undefined) visit(target);
    }
  };
  visit(entry);
  return urls;
}

function file(body: Buffer, name: string, cacheControl: string): UiFile {
  const version = createHash('sha256').update(body).digest('base64url').slice(0, 27);
  return {
    body,
    contentType: CONTENT_TYPES[extname(name)] ?? 'application/octet-stream',
    etag: `"${version}"`,
    version: version.slice(0, 12),
    cacheControl,
  };
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}

/** `versioned`: asked for by its content hash, so the answer never changes. */
function sendFile(
  req: FastifyRequest,
  reply: FastifyReply,
  f: UiFile,
  versioned: boolean,
): FastifyReply {
  reply
    .header('cache-control', versioned ? IMMUTABLE : f.cacheControl)
    .header('etag', f.etag)
    .header('x-content-type-options', 'nosniff');
  if (f.csp !== undefined) reply.header('content-security-policy', f.csp);
  if (req.headers['if-none-match'] === f.etag) return reply.code(304).send();
  return reply.type(f.contentType).send(f.body);
}

/** How long the members' origins are kept before asking the service again. */
const ORIGINS_TTL_MS = 2_000;

/**
 * Cross-origin access for the dashboard, limited to the cluster's own members:
 * a request whose Origin is one of the members' client URLs gets CORS headers
 * (so the page served by one member can read another's status, or carry on
 * through it when its own member goes away); any other origin gets none, and
 * the browser keeps its same-origin rule. Credentials are still checked as
 * for any request: CORS only lets the page read the answer.
 */
function installMemberCors(app: FastifyInstance, service: ApiService): void {
  let origins: { set: Set<string>; atMs: number } | undefined;
  async function allowed(origin: string): Promise<boolean> {
    const now = Date.now();
    if (origins === undefined || now - origins.atMs > ORIGINS_TTL_MS) {
      const set = new Set<string>();
      try {
        // This member's own view: no read barrier on every cross-origin request, and none needed.
        for (const m of (await service.members({ consistency: 'serializable' })).members) {
          for (const u of m.clientUrls) set.add(originOf(u));
        }
      } catch {
        // No member list (shutting down): no cross-origin access.
      }
      origins = { set, atMs: now };
    }
    return origins.set.has(origin);
  }

  app.addHook('onRequest', (req, reply, done) => {
    const origin = req.headers.origin;
    if (origin === undefined) return done();
    allowed(origin).then((ok) => {
      if (ok) {
        // On the raw response: streams (watches) write their head themselves.
        const raw = reply.raw;
        raw.setHeader('access-control-allow-origin', origin);
        raw.setHeader('vary', 'Origin');
        raw.setHeader(
          'access-control-expose-headers',
          'retry-after, content-disposition, x-raftkv-revision',
        );
      }
      done();
    }, done);
  });

  // Preflight of the dashboard's requests (they carry Authorization and JSON bodies).
  // Anything else sent with OPTIONS is answered as before, like any unknown route.
  app.options(
    '/*',
    { schema: { hide: true }, config: { access: 'public' } },
    async (req, reply) => {
      const preflight =
        reply.raw.hasHeader('access-control-allow-origin') &&
        req.headers['access-control-request-method'] !== undefined;
      if (!preflight)
        return sendError(reply, 'not_found', `no route OPTIONS ${req.url.split('?')[0]}`);
      return reply
        .code(204)
        .header('access-control-allow-methods', 'GET, PUT, POST, DELETE')
        .header(
          'access-control-allow-headers',
          'authorization, content-type, idempotency-key, last-event-id',
        )
        .header('access-control-max-age', '600')
        .send();
    },
  );
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '';
  }
}
