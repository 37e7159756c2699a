/** The dashboard's files at /ui (src/api/routes/ui.ts): types, caching, no traversal, CORS for members only. */
import t from 'tap';
import { eventually, type SingleNode, startSingleNode } from '../api/helpers.js';

let n: SingleNode;
t.before(async () => {
  n = await startSingleNode();
});
t.teardown(() => n?.close());

t.test('/ui redirects to the page; the page names its versioned vendor files', async (t) => {
  const redirect = await n.app.inject({ method: 'GET', url: '/ui' });
  t.equal(redirect.statusCode, 302);
  t.equal(redirect.headers.location, '/ui/');
  const page = await n.app.inject({ method: 'GET', url: '/ui/' });
  t.equal(page.statusCode, 200);
  t.match(page.headers['content-type'], /^text\/html; charset=utf-8/);
  t.equal(page.headers['cache-control'], 'no-cache');
  t.match(page.headers['content-security-policy'], /script-src 'self' 'sha256-/);
  t.match(page.body, /<script type="importmap">\{"imports":\{"preact":"\/ui\/vendor\/preact@/);
  t.notMatch(page.body, /<!--importmap-->/);
  const again = await n.app.inject({
    method: 'GET',
    url: '/ui/',
    headers: { 'if-none-match': String(page.headers.etag) },
  });
  t.equal(again.statusCode, 304, 'an unchanged page is not sent again');
});

t.test('scripts, styles and vendor files with their types and cache headers', async (t) => {
  const app = await n.app.inject({ method: 'GET', url: '/ui/app.js' });
  t.equal(app.statusCode, 200);
  t.match(app.headers['content-type'], /^text\/javascript/);
  t.equal(app.headers['x-content-type-options'], 'nosniff');
  const css = await n.app.inject({ method: 'GET', url: '/ui/style.css' });
  t.match(css.headers['content-type'], /^text\/css/);
  const page = (await n.app.inject({ method: 'GET', url: '/ui/' })).body;
  const vendor = [...page.matchAll(/"(\/ui\/vendor\/[^"]+)"/g)].map((m) => m[1]!);
  t.ok(vendor.length >= 4, 'preact, hooks, htm and uPlot are mapped');
  for (const url of vendor) {
    const r = await n.app.inject({ method: 'GET', url });
    t.equal(r.statusCode, 200, url);
    t.match(r.headers['cache-control'], /immutable/, `${url} is cached for good`);
  }
});

t.test(
  "the page's own files by their content hash: kept for good, and only the first frame's preloaded",
  async (t) => {
    const page = (await n.app.inject({ method: 'GET', url: '/ui/' })).body;
    const map = JSON.parse(/<script type="importmap">(.*?)<\/script>/.exec(page)![1]!).imports;
    const app = map['/ui/app.js'] as string;
    t.match(
      app,
      /^\/ui\/app\.js\?v=[\w-]{12}$/,
      'relative imports of app.js resolve to its hashed URL',
    );
    t.match(page, `<script type="module" src="${app}">`, 'the page starts from the hashed URL');
    t.match(page, /<link rel="stylesheet" href="\/ui\/style\.css\?v=[\w-]{12}">/);
    const versioned = await n.app.inject({ method: 'GET', url: app });
    t.equal(versioned.statusCode, 200);
    t.match(versioned.headers['cache-control'], /immutable/, 'a hashed URL never changes');
    const plain = await n.app.inject({ method: 'GET', url: '/ui/app.js' });
    t.equal(plain.headers['cache-control'], 'no-cache', 'the plain URL is revalidated');
    t.equal(plain.body, versioned.body);
    const stale = await n.app.inject({ method: 'GET', url: '/ui/app.js?v=000000000000' });
    t.equal(stale.headers['cache-control'], 'no-cache', 'an old hash is not kept for good');

    const preloaded = [...page.matchAll(/<link rel="modulepreload" href="([^"?]+)/g)].map(
      (m) => m[1],
    );
    for (const first of ['/ui/app.js', '/ui/cluster.js', '/ui/lib/monitor.js', '/ui/lib/api.js']) {
      t.ok(preloaded.includes(first), `${first} is preloaded`);
    }
    t.ok(
      preloaded.some((u) => u?.startsWith('/ui/vendor/preact@')),
      'preact is preloaded',
    );
    for (const later of ['/ui/keys.js', '/ui/chart.js', '/ui/operations.js']) {
      t.notOk(preloaded.includes(later), `${later} loads when its tab opens`);
    }
    t.notOk(
      preloaded.some((u) => u?.includes('uPlot')),
      'the charts library waits for the charts',
    );
  },
);

t.test('only the files found at startup: no traversal, no type declarations', async (t) => {
  for (const url of [
    '/ui/../package.json',
    '/ui/%2e%2e/package.json',
    '/ui/..%2f..%2fpackage.json',
    '/ui/lib/metrics.d.ts',
    '/ui/vendor/preact@11.2.0/../package.json',
    '/ui/nope.js',
  ]) {
    const r = await n.app.inject({ method: 'GET', url });
    t.equal(r.statusCode, 404, url);
    t.equal(JSON.parse(r.body).error.code, 'not_found', url);
  }
});

t.test('CORS answers the members own origins, and no other', async (t) => {
  // The member's client URL, once the cluster lists it (members publish theirs after starting).
  const origin = new URL(n.url).origin;
  await eventually('the member publishes its client URL', async () => {
    const r = await n.app.inject({ method: 'GET', url: '/v1/status', headers: { origin } });
    return r.headers['access-control-allow-origin'] === origin ? true : undefined;
  });
  const ok = await n.app.inject({ method: 'GET', url: '/v1/status', headers: { origin } });
  t.equal(ok.headers['access-control-allow-origin'], origin);
  const pre = await n.app.inject({
    method: 'OPTIONS',
    url: '/v1/kv/a',
    headers: { origin, 'access-control-request-method': 'PUT' },
  });
  t.equal(pre.statusCode, 204);
  t.match(pre.headers['access-control-allow-headers'], /authorization/);
  const evil = await n.app.inject({
    method: 'GET',
    url: '/v1/status',
    headers: { origin: 'http://evil.example' },
  });
  t.equal(evil.headers['access-control-allow-origin'], undefined);
  const evilPre = await n.app.inject({
    method: 'OPTIONS',
    url: '/v1/kv/a',
    headers: { origin: 'http://evil.example', 'access-control-request-method': 'PUT' },
  });
  t.equal(evilPre.headers['access-control-allow-methods'], undefined);
  t.equal(evilPre.statusCode, 404, 'not a preflight the API answers');
  const plain = await n.app.inject({ method: 'OPTIONS', url: '/v1/kv/a' });
  t.equal(plain.statusCode, 404, 'OPTIONS without CORS is an unknown route, as before');
  t.equal(JSON.parse(plain.body).error.code, 'not_found');
});
