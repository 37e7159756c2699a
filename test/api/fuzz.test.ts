/**
 * A property-based fuzzer of the HTTP API (issue 13, item 8): fast-check
 * requests over every route of docs/API.md, valid and mutated (see
 * fuzz/requests.ts), sent one at a time over raw HTTP to the members of a
 * 3-node in-process cluster. The oracle:
 * - no 5xx other than 503/504/507; every error body has API.md's shape and a
 *   code of its table; statuses as API.md gives them where it says (fuzz/oracle.ts);
 * - no hang: every request is answered within a bound;
 * - no crash: every member still answers /livez and /v1/status, and logged no error;
 * - nothing applied on a refusal: the revision does not move for a refused
 *   write or any read, and a reused Idempotency-Key with a different request is
 *   refused (and the same request gets the first answer again);
 * - known keys unchanged: seed keys and a registry entry that no fuzzed
 *   request can name are exactly as they were.
 *
 * npm test runs FUZZ_RUNS (default 600) requests from FUZZ_SEED (default fixed), then
 * FUZZ_AUTH_RUNS (default 2/3 of that) with authentication on (root, a limited user, wrong
 * credentials: 401 and nothing applied);
 * `npm run fuzz:api` runs many more.
 */
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { startCluster } from '../integration/helpers.js';
import { LogCapture } from '../support/log-capture.js';
import { problemsOf } from './fuzz/oracle.js';
import {
  type FuzzRequest,
  type FuzzState,
  isSafe,
  ROUTE_NAMES,
  requestArb,
  SEED_LEASE,
  SEED_MARK,
} from './fuzz/requests.js';
import { send, type WireReply } from './fuzz/wire.js';
import { http, type Json, type TestCluster } from './helpers.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 600);
/** Requests of the second round, with authentication on. */
const AUTH_RUNS = Number(process.env.FUZZ_AUTH_RUNS ?? Math.ceil((RUNS * 2) / 3));
const SEED = Number(process.env.FUZZ_SEED ?? 1313);
/** Beyond the server's own waits (request timeout 3 s), an answer later than this is a hang. */
const HANG_MS = 10_000;

const logs = new LogCapture();
let cluster: TestCluster;
const ports: number[] = [];

t.before(async () => {
  cluster = await startCluster(3, { requestTimeoutMs: 3000 }, (name) => ({
    logger: logs.logger(name, 'warn'),
  }));
  await cluster.waitForLeader();
  for (let i = 0; i < 3; i++) ports.push(Number(new URL(cluster.url(i)).port));
});
t.teardown(() => cluster?.close());

/** A JSON request from the test itself (not fuzzed), retried while the cluster has no leader. */
async function call(
  method: 'GET' | 'PUT' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  node = 0,
) {
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = testAuthorization
      ? { authorization: testAuthorization }
      : {};
    const r = await http(
      cluster.url(node),
      method,
      path,
      body === undefined ? { headers } : { body, headers },
    );
    if ((r.status !== 503 && r.status !== 504) || attempt >= 50) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function revisionNow(): Promise<number> {
  let r = await call('GET', '/v1/kv?limit=1');
  // A cut enable may have applied since (a new signing key), or the token expired: renew it.
  if (r.status === 401 && testAuthorization !== undefined) {
    await followAuth();
    r = await call('GET', '/v1/kv?limit=1');
  }
  if (r.status !== 200) throw new Error(`revision read: ${r.status} ${r.text}`);
  return r.body.revision as number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The revision once it stopped moving: after a request we cut, whatever it started has ended. */
async function settledRevision(waitMs: number): Promise<number> {
  await sleep(Math.min(waitMs, 3000) + 100);
  let last = await revisionNow();
  for (let i = 0; i < 40; i++) {
    await sleep(150);
    const now = await revisionNow();
    if (now === last) return now;
    last = now;
  }
  throw new Error('the revision kept moving with no request in flight');
}

const SEED_KEYS = Array.from({ length: 12 }, (_, i) => [
  `${SEED_MARK}seed/${i}`,
  `value ${i} é ${'x'.repeat(i * 7)} \u{1f600}`,
]);

async function seedSnapshot(): Promise<unknown> {
  const kvs = await call('GET', `/v1/kv?prefix=${encodeURIComponent(`${SEED_MARK}seed/`)}`);
  const entry = await call('GET', `/v1/registry/${encodeURIComponent(`${SEED_MARK}svc`)}`);
  const lease = await call('GET', `/v1/leases/${SEED_LEASE}`);
  return {
    kvs: kvs.body.kvs,
    entry: entry.body,
    lease: { id: lease.body.id, ttl: lease.body.ttl, keys: lease.body.keys },
  };
}

function describe(req: FuzzRequest): string {
  const body = req.body?.toString('utf8');
  return `${req.method} ${req.target.slice(0, 200)} to n${req.node + 1} [${req.mutation.join('; ')}]${body === undefined ? '' : ` body ${body.slice(0, 200)}`}${req.headers.length ? ` headers ${JSON.stringify(req.headers).slice(0, 200)}` : ''}`;
}

function jsonOf(reply: WireReply): Json {
  try {
    return JSON.parse(reply.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The request's first path segment after `prefix`, decoded. */
function segmentAfter(target: string, prefix: string): string {
  const raw = target.slice(prefix.length).split(/[/?]/)[0]!;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** What an answer teaches the fuzzer: new leases, lock holders, candidates, learners. */
function learn(s: FuzzState, req: FuzzRequest, reply: WireReply): void {
  if (reply.status < 200 || reply.status >= 300) return;
  const body = jsonOf(reply);
  if (!body) return;
  if (req.route === 'POST /v1/leases' && typeof body.id === 'string') s.leases.push(body.id);
  if (req.route === 'POST /v1/locks/{name}' && typeof body.key === 'string')
    s.lockKeys.push({ name: body.name, key: body.key });
  if (req.route === 'POST /v1/elections/{name}/campaign' && typeof body.leader?.key === 'string')
    s.electionKeys.push({ name: segmentAfter(req.target, '/v1/elections/'), key: body.leader.key });
  if (req.route === 'POST /v1/cluster/members' && typeof body.id === 'string') {
    s.learnerIds.push(body.id);
    s.learnersAdded++;
  }
  if (req.route === 'DELETE /v1/cluster/members/{id}' && typeof body.id === 'string')
    s.learnerIds = s.learnerIds.filter((id) => id !== body.id);
}

/** What a server digests for an Idempotency-Key: method, URL as sent, body as parsed (src/api/params.ts). */
function fingerprint(req: FuzzRequest): string {
  let body = '';
  if (req.body !== undefined) {
    try {
      body = JSON.stringify(JSON.parse(req.body.toString('utf8')));
    } catch {
      body = req.body.toString('latin1');
    }
  }
  return `${req.method} ${req.target}\n${body}`;
}

t.test('fuzzing every route of API.md against a 3-node cluster', async (t) => {
  // Seed data no fuzzed request can name: keys and a registry name holding SEED_MARK, on a lease of its own.
  for (const [key, value] of SEED_KEYS)
    t.equal((await call('PUT', `/v1/kv/${encodeURIComponent(key!)}`, { value })).status, 200);
  t.equal((await call('POST', '/v1/leases', { ttl: 3600, id: SEED_LEASE })).status, 201);
  t.equal(
    (
      await call('PUT', `/v1/registry/${encodeURIComponent(`${SEED_MARK}svc`)}`, {
        value: 'seed',
        lease: SEED_LEASE,
      })
    ).status,
    201,
  );
  const seedsBefore = await seedSnapshot();

  const members = await call('GET', '/v1/cluster/members');
  const state: FuzzState = {
    leases: [],
    lockKeys: [],
    electionKeys: [],
    memberIds: members.body.members.map((m: { id: string }) => m.id),
    learnerIds: [],
    learnersAdded: 0,
    idempotencyKeys: [],
  };
  for (let i = 0; i < 3; i++) {
    const r = await call('POST', '/v1/leases', { ttl: 3600 });
    state.leases.push(r.body.id);
  }
  // A few keys for reads and guards to meet.
  for (const key of ['f/1', 'f/a/k', 'g', 'h/x1'])
    await call('PUT', `/v1/kv/${encodeURIComponent(key)}`, { value: 'v' });

  const idempotency = new Map<
    string,
    { fingerprint: string; status: number; body: string; route: string }
  >();
  await fuzzPhase(t, state, {
    runs: RUNS,
    seed: SEED,
    credentials: fc.constant(() => NO_CREDENTIAL),
    idempotency,
  });
  await checkNoCrash(t);
  t.strictSame(
    await seedSnapshot(),
    seedsBefore,
    'the seed keys, registry entry and lease are exactly as before',
  );

  // Again with authentication on: root, a user limited to a few prefixes, and wrong
  // credentials, which must get 401 and apply nothing.
  await startAuth(t);
  const credentials = credentialArb();
  await fuzzPhase(t, state, { runs: AUTH_RUNS, seed: SEED + 1, credentials, idempotency });
  await checkNoCrash(t);
  t.strictSame(
    await seedSnapshot(),
    seedsBefore,
    'with authentication on too, the seed data is exactly as before',
  );
});

interface PhaseOptions {
  runs: number;
  seed: number;
  /** The credentials each request carries (none while authentication is off). */
  credentials: fc.Arbitrary<() => Credential>;
  /** Idempotency-Keys seen so far, per user (a key's result belongs to its user). */
  idempotency: Map<string, { fingerprint: string; status: number; body: string; route: string }>;
}

/** Runs `opts.runs` fuzzed requests, checks each answer, and asserts the work was substantial. */
async function fuzzPhase(t: Test, state: FuzzState, opts: PhaseOptions): Promise<void> {
  const perRoute = new Map<string, number>(ROUTE_NAMES.map((r) => [r, 0]));
  const statuses = new Map<number, number>();
  const problems: string[] = [];
  const idempotency = opts.idempotency;
  let sent = 0;
  let skipped = 0;
  let revisionChecks = 0;
  let idempotencyChecks = 0;
  let expectChecks = 0;
  let aborted = 0;
  let revision = await revisionNow();
  const started = Date.now();

  await fc.assert(
    fc.asyncProperty(requestArb, opts.credentials, async (build, credential) => {
      const req = build(state);
      const user = await withCredential(req, credential);
      if (!isSafe(req, state)) {
        skipped++;
        return;
      }
      let reply: WireReply;
      try {
        reply = await send(
          ports[req.node]!,
          {
            method: req.method,
            target: req.target,
            headers: req.headers,
            ...(req.body ? { body: req.body } : {}),
          },
          {
            headersWithinMs: req.waitMs + HANG_MS,
            ...(req.dropAfterMs !== undefined ? { dropAfterMs: req.dropAfterMs } : {}),
            ...(req.abortAfterMs !== undefined ? { abortAfterMs: req.abortAfterMs } : {}),
          },
        );
      } catch (err) {
        problems.push(`${describe(req)}: ${(err as Error).message}`);
        return;
      }
      sent++;
      perRoute.set(req.route, (perRoute.get(req.route) ?? 0) + 1);
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      if (req.expect) expectChecks++;
      for (const p of problemsOf(req, reply))
        problems.push(
          `${describe(req)}: ${p} (answer ${reply.status} ${reply.body.toString('utf8').slice(0, 200)})`,
        );
      learn(state, req, reply);
      // Whether authentication is on now (an enable or disable we cut may still have applied).
      if (req.route === 'POST /v1/auth/enable' || req.route === 'POST /v1/auth/disable') {
        if (reply.status === 0) await sleep(300);
        await followAuth();
      }

      // A client that gave up: the server may still apply it, or leave a lock's line, a little later.
      if (reply.status === 0) {
        aborted++;
        revision = await settledRevision(req.waitMs);
        return;
      }

      // Idempotency-Keys: the same key on another write is refused; on the same write, the first answer again.
      if (
        req.dedup &&
        req.route.startsWith(`${req.method} `) &&
        req.idempotencyKey &&
        reply.status !== 0
      ) {
        const first = idempotency.get(`${user} ${req.idempotencyKey}`);
        const fp = fingerprint(req);
        if (first && first.fingerprint !== fp && reply.status >= 200 && reply.status < 300) {
          problems.push(
            `${describe(req)}: Idempotency-Key ${req.idempotencyKey} first used for ${first.route}, reused for another request, answered ${reply.status}`,
          );
        }
        if (first && first.fingerprint === fp && reply.status !== 503 && reply.status !== 504) {
          idempotencyChecks++;
          if (reply.status !== first.status || reply.body.toString('utf8') !== first.body)
            problems.push(
              `${describe(req)}: a retry with Idempotency-Key ${req.idempotencyKey} got ${reply.status} ${reply.body.toString('utf8').slice(0, 200)}, the first attempt ${first.status} ${first.body.slice(0, 200)}`,
            );
        }
        if (first && first.fingerprint !== fp) idempotencyChecks++;
        if (!first && reply.status >= 200 && reply.status < 300)
          idempotency.set(`${user} ${req.idempotencyKey}`, {
            fingerprint: fp,
            status: reply.status,
            body: reply.body.toString('utf8'),
            route: req.route,
          });
      }

      // Nothing applied by a refusal or a read: the revision stays where it was.
      let now: number;
      try {
        now = await revisionNow();
      } catch (err) {
        t.comment(
          `PROBLEM ${describe(req)} (answered ${reply.status} ${reply.body.toString('utf8').slice(0, 200)}): then ${(err as Error).message}`,
        );
        throw err;
      }
      const mayMove =
        (req.kind === 'write' &&
          ((reply.status >= 200 && reply.status < 300) ||
            reply.status === 504 ||
            reply.status === 0)) ||
        (req.queues && reply.status === 409);
      if (!mayMove) {
        revisionChecks++;
        if (now !== revision)
          problems.push(
            `${describe(req)}: answered ${reply.status} but the revision moved ${revision} → ${now}`,
          );
      }
      revision = now;
    }),
    { numRuns: opts.runs, seed: opts.seed, endOnFailure: true },
  );
  const elapsed = (Date.now() - started) / 1000;

  t.comment(
    `sent ${sent} requests from seed ${opts.seed} (${skipped} unsafe ones skipped, ${aborted} cut before their answer) in ${elapsed.toFixed(1)} s; revision checks ${revisionChecks}, idempotency checks ${idempotencyChecks}, API.md status checks ${expectChecks}`,
  );
  t.comment(
    `statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`,
  );
  t.comment(`per route: ${JSON.stringify(Object.fromEntries(perRoute))}`);
  for (const p of problems.slice(0, 40)) t.comment(`PROBLEM ${p}`);
  t.equal(
    problems.length,
    0,
    `no problems found (${problems.length} in all; the first 40 are above)`,
  );

  // The fuzzer did real work: most requests went out, every route was hit.
  t.ok(sent >= opts.runs * 0.8, `sent ${sent} of ${opts.runs} requests`);
  const missed = [...perRoute].filter(([, n]) => n === 0).map(([r]) => r);
  t.strictSame(missed, [], 'every route of API.md was hit at least once');
  t.ok(
    revisionChecks >= opts.runs / 4,
    `checked the revision after ${revisionChecks} refusals and reads`,
  );
  t.ok(idempotencyChecks > 0, `reused Idempotency-Keys ${idempotencyChecks} times`);
}

/** No crash: every member answers /livez and /v1/status, and none logged an error. */
async function checkNoCrash(t: Test): Promise<void> {
  for (let i = 0; i < 3; i++) {
    t.equal((await call('GET', '/livez', undefined, i)).status, 200, `n${i + 1} is live`);
    t.equal(
      (await call('GET', '/v1/status', undefined, i)).status,
      200,
      `n${i + 1} answers /v1/status`,
    );
  }
  const errors = logs.lines.filter((l) => l.level === 'error' || l.level === 'fatal');
  t.strictSame(errors.slice(0, 10), [], 'no member logged an error');
}

// ------------------------------------------------------------------ authentication on

interface Credential {
  what: string;
  /** The Authorization header, if any. */
  header?: string;
  /** Whose request it is, for Idempotency-Keys; undefined: credentials that must be refused. */
  user?: 'root' | 'carol';
}

const NO_CREDENTIAL: Credential = { what: 'no credentials', user: 'root' };
const ROOT_PASSWORD = 'fz-root-pw';
const CAROL_PASSWORD = 'fz-carol-pw';
const tokens = { root: '', carol: '' };
/** Whether authentication is on right now (the fuzzer may disable and enable it, as root). */
const auth = { on: false };
/** The test's own requests (revision reads, checks) carry root's token once authentication is on. */
let testAuthorization: string | undefined;
let tokensIssuedAt = 0;

const basic = (name: string, password: string) =>
  `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}`;

/** Root, and a user `fz-carol` limited to a few prefixes, then authentication on. */
async function startAuth(t: Test): Promise<void> {
  const put = async (path: string, body: unknown) =>
    t.ok((await call('PUT', path, body)).status < 300, `PUT ${path}`);
  await put('/v1/auth/users/root', { password: ROOT_PASSWORD, roles: ['root'] });
  await put('/v1/auth/roles/fz-limited', {
    permissions: [
      { resource: 'kv', prefix: 'f', access: 'readwrite' },
      { resource: 'registry', prefix: 'svc/', access: 'readwrite' },
      { resource: 'locks', prefix: 'l', access: 'readwrite' },
      { resource: 'elections', prefix: 'e', access: 'read' },
    ],
  });
  await put('/v1/auth/users/fz-carol', { password: CAROL_PASSWORD, roles: ['fz-limited'] });
  t.equal((await call('POST', '/v1/auth/enable')).status, 200, 'authentication enabled');
  auth.on = true;
  await issueTokens();
  t.ok(tokens.root && tokens.carol, 'tokens for root and fz-carol');
}

/** Tokens for root and fz-carol; the test's own requests use root's. */
async function issueTokens(): Promise<void> {
  for (const [who, password] of [
    ['root', ROOT_PASSWORD],
    ['fz-carol', CAROL_PASSWORD],
  ] as const) {
    const r = await call('POST', '/v1/auth/token', { name: who, password });
    if (r.status !== 200) throw new Error(`token for ${who}: ${r.status} ${r.text}`);
    tokens[who === 'root' ? 'root' : 'carol'] = r.body.token;
  }
  testAuthorization = `Bearer ${tokens.root}`;
  tokensIssuedAt = Date.now();
}

/** Follows authentication as the fuzzer turned it on or off; new tokens after an enable. */
async function followAuth(): Promise<void> {
  // A cut enable or disable may still be on its way: ask until the answers agree.
  for (let attempt = 0; ; attempt++) {
    const on = (await call('GET', '/v1/auth/status')).body.enabled === true;
    auth.on = on;
    if (!on || testAuthorization === undefined) return;
    try {
      // Enabling again replaces the signing key: tokens from before stop working, by design.
      await issueTokens();
      return;
    } catch (err) {
      if (attempt >= 20) throw err;
      await sleep(200);
    }
  }
}

/**
 * Puts `make()`'s credentials on `req` and adjusts what API.md expects of it: wrong
 * credentials on a route that needs some are 401 whatever else is wrong with the request;
 * the limited user may get 403 anywhere. Returns whose request it is (for Idempotency-Keys).
 */
async function withCredential(req: FuzzRequest, make: () => Credential): Promise<string> {
  // Once root exists, enabling authentication is possible: no fixed answer.
  if (testAuthorization !== undefined && req.route === 'POST /v1/auth/enable') delete req.expect;
  // Tokens last 5 minutes: renew them well before, for long runs.
  if (auth.on && Date.now() - tokensIssuedAt > 60_000) await issueTokens();
  const credential = make();
  const own = req.headers.some(([n]) => n.toLowerCase() === 'authorization');
  if (!own && credential.header !== undefined)
    req.headers.push(['authorization', credential.header]);
  if (!own) req.mutation.push(credential.what);
  if (!auth.on) return 'anonymous';
  if (own) {
    if (req.reachesAuth && !req.publicRoute) delete req.expect;
    return 'unknown';
  }
  if (!req.reachesAuth || req.publicRoute) return credential.user ?? 'refused';
  if (credential.user === undefined) {
    req.expect = [401];
    return 'refused';
  }
  if (credential.user !== 'root') delete req.expect;
  return credential.user;
}

/** Credentials for a request: mostly root's or the limited user's token, sometimes wrong ones. */
function credentialArb(): fc.Arbitrary<() => Credential> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.constant(() => ({
        what: 'root token',
        header: `Bearer ${tokens.root}`,
        user: 'root' as const,
      })),
    },
    {
      weight: 3,
      arbitrary: fc.constant(() => ({
        what: 'fz-carol token',
        header: `Bearer ${tokens.carol}`,
        user: 'carol' as const,
      })),
    },
    {
      weight: 1,
      arbitrary: fc.constant(() => ({
        what: 'root password',
        header: basic('root', ROOT_PASSWORD),
        user: 'root' as const,
      })),
    },
    {
      weight: 3,
      arbitrary: fc
        .constantFrom<[string, () => string | undefined]>(
          ['none', () => undefined],
          ['a forged token', () => 'Bearer x.y.z'],
          [
            'a token with a byte changed',
            () => `Bearer ${tokens.root.slice(0, -2)}${tokens.root.endsWith('A') ? 'BB' : 'AA'}`,
          ],
          ['a wrong password', () => basic('fz-carol', 'wrong')],
          ['an unknown user', () => basic('nobody', 'x')],
          ['an unknown scheme', () => 'Digest username="root"'],
          ['an empty bearer', () => 'Bearer '],
          ['garbage base64', () => 'Basic %%%'],
        )
        .map(([what, header]) => () => {
          const h = header();
          return h === undefined ? { what } : { what, header: h };
        }),
    },
  );
}
