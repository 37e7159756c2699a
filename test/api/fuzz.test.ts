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
 * npm test runs FUZZ_RUNS (default 800) requests from FUZZ_SEED (default fixed);
 * `npm run fuzz:api` runs many more.
 */
import fc from 'fast-check';
import t from 'tap';
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

const RUNS = Number(process.env.FUZZ_RUNS ?? 800);
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
    const r = await http(cluster.url(node), method, path, body === undefined ? {} : { body });
    if ((r.status !== 503 && r.status !== 504) || attempt >= 50) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function revisionNow(): Promise<number> {
  const r = await call('GET', '/v1/kv?limit=1');
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

  const perRoute = new Map<string, number>(ROUTE_NAMES.map((r) => [r, 0]));
  const statuses = new Map<number, number>();
  const problems: string[] = [];
  const idempotency = new Map<
    string,
    { fingerprint: string; status: number; body: string; route: string }
  >();
  let sent = 0;
  let skipped = 0;
  let revisionChecks = 0;
  let idempotencyChecks = 0;
  let expectChecks = 0;
  let aborted = 0;
  let revision = await revisionNow();
  const started = Date.now();

  await fc.assert(
    fc.asyncProperty(requestArb, async (build) => {
      const req = build(state);
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

      // A client that gave up: the server may still apply it, or leave a lock's line, a little later.
      if (reply.status === 0) {
        aborted++;
        revision = await settledRevision(req.waitMs);
        return;
      }

      // Idempotency-Keys: the same key on another write is refused; on the same write, the first answer again.
      if (req.dedup && req.idempotencyKey && reply.status !== 0) {
        const first = idempotency.get(req.idempotencyKey);
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
          idempotency.set(req.idempotencyKey, {
            fingerprint: fp,
            status: reply.status,
            body: reply.body.toString('utf8'),
            route: req.route,
          });
      }

      // Nothing applied by a refusal or a read: the revision stays where it was.
      const now = await revisionNow();
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
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  const elapsed = (Date.now() - started) / 1000;

  t.comment(
    `sent ${sent} requests from seed ${SEED} (${skipped} unsafe ones skipped, ${aborted} cut before their answer) in ${elapsed.toFixed(1)} s; revision checks ${revisionChecks}, idempotency checks ${idempotencyChecks}, API.md status checks ${expectChecks}`,
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
  t.ok(sent >= RUNS * 0.8, `sent ${sent} of ${RUNS} requests`);
  const missed = [...perRoute].filter(([, n]) => n === 0).map(([r]) => r);
  t.strictSame(missed, [], 'every route of API.md was hit at least once');
  t.ok(
    revisionChecks >= RUNS / 4,
    `checked the revision after ${revisionChecks} refusals and reads`,
  );
  t.ok(idempotencyChecks > 0, `reused Idempotency-Keys ${idempotencyChecks} times`);

  // No crash: every member answers, and none logged an error.
  for (let i = 0; i < 3; i++) {
    t.equal((await http(cluster.url(i), 'GET', '/livez')).status, 200, `n${i + 1} is live`);
    t.equal(
      (await http(cluster.url(i), 'GET', '/v1/status')).status,
      200,
      `n${i + 1} answers /v1/status`,
    );
  }
  const errors = logs.lines.filter((l) => l.level === 'error' || l.level === 'fatal');
  t.strictSame(errors.slice(0, 10), [], 'no member logged an error');

  // Known keys unchanged.
  t.strictSame(
    await seedSnapshot(),
    seedsBefore,
    'the seed keys, registry entry and lease are exactly as before',
  );
});
