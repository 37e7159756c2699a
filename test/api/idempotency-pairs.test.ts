/**
 * Issue 11: a reused Idempotency-Key is recognised by what the request was,
 * not by the kind of its result. For every ordered pair (A, B) of write kinds:
 * A with key K, then B (another request) with K → 400 invalid_request and
 * nothing applied (store revision and B's target unchanged); A again with K
 * and its own body → A's first answer, status and body. The same for two
 * requests on one route that differ only in body or path. One real node,
 * auth off; a fresh K for every pair.
 */
import t, { type Test } from 'tap';
import { REGISTRY_PREFIX } from '../../src/kv/index.js';
import { startCluster } from '../integration/helpers.js';
import {
  assertError,
  http,
  type Json,
  type Method,
  type Reply,
  startSingleNode,
} from './helpers.js';

interface Request {
  readonly method: Method;
  readonly path: string;
  readonly body?: Json;
}

/** One prepared write: its request, and what it would change, read from the node's own state. */
interface Prepared {
  readonly request: Request;
  target(): unknown;
}

t.test('a reused Idempotency-Key on another request is refused, whatever the pair', async (t) => {
  const node = await startSingleNode();
  t.teardown(() => node.close());
  const sm = () => node.cluster.nodes[0]!.node.store;
  const call = (req: Request, headers: Record<string, string> = {}) =>
    http(node.url, req.method, req.path, {
      headers,
      ...(req.body !== undefined ? { body: req.body } : {}),
    });
  /** A setup request that must succeed. */
  const must = async (req: Request): Promise<Reply> => {
    const res = await call(req);
    if (res.status >= 300)
      throw new Error(`setup ${req.method} ${req.path}: ${res.status} ${res.text}`);
    return res;
  };
  const lease = async (): Promise<string> =>
    (await must({ method: 'POST', path: '/v1/leases', body: { ttl: 600 } })).body.id as string;
  const kvOf = (key: string) => {
    const r = sm().get(key);
    if (!r.ok) throw new Error(`get ${key}: ${r.code}`);
    return r.kv;
  };

  /** A lease as its commands change it (not the leader's TTL checkpoints, which come and go). */
  const leaseOf = (id: string) => {
    const l = sm().lease(id);
    return l === undefined ? null : { ttlMs: l.ttlMs, renewed: l.lastRenewedAtMs, keys: l.keys };
  };

  let n = 0;
  /** Write kinds: each call prepares a fresh instance (its own keys, names, leases). */
  const kinds: Record<string, () => Promise<Prepared>> = {
    'PUT kv': async () => {
      const key = `put/${++n}`;
      return {
        request: { method: 'PUT', path: `/v1/kv/${key}`, body: { value: `v${n}` } },
        target: () => kvOf(key),
      };
    },
    'DELETE kv': async () => {
      const key = `del/${++n}`;
      await must({ method: 'PUT', path: `/v1/kv/${key}`, body: { value: 'x' } });
      return { request: { method: 'DELETE', path: `/v1/kv/${key}` }, target: () => kvOf(key) };
    },
    'DELETE kv prefix': async () => {
      const prefix = `pre/${++n}/`;
      await must({ method: 'PUT', path: `/v1/kv/${prefix}a`, body: { value: 'x' } });
      await must({ method: 'PUT', path: `/v1/kv/${prefix}b`, body: { value: 'y' } });
      return {
        request: { method: 'DELETE', path: `/v1/kv/${prefix}?prefix=true` },
        target: () => sm().range({ prefix }),
      };
    },
    'POST txn (one put)': async () => {
      const key = `txn1/${++n}`;
      return {
        request: {
          method: 'POST',
          path: '/v1/txn',
          body: { compare: [], success: [{ op: 'put', key, value: `t${n}` }], failure: [] },
        },
        target: () => kvOf(key),
      };
    },
    'POST txn (several ops)': async () => {
      const key = `txn2/${++n}`;
      return {
        request: {
          method: 'POST',
          path: '/v1/txn',
          body: {
            compare: [{ key, target: 'version', op: '==', value: 0 }],
            success: [
              { op: 'get', key },
              { op: 'put', key, value: `t${n}` },
              { op: 'delete', key: `${key}/none` },
            ],
            failure: [],
          },
        },
        target: () => kvOf(key),
      };
    },
    'POST compact': async () => {
      const w = await must({ method: 'PUT', path: `/v1/kv/compact/${++n}`, body: { value: 'c' } });
      return {
        request: { method: 'POST', path: '/v1/compact', body: { revision: w.body.revision } },
        target: () => sm().compactRevision,
      };
    },
    'POST leases': async () => {
      const id = `grant-${++n}`;
      return {
        request: { method: 'POST', path: '/v1/leases', body: { ttl: 600, id } },
        target: () => leaseOf(id),
      };
    },
    'POST keepalive': async () => {
      const id = await lease();
      // The renewal time is what a keepalive changes: let the clock move past the grant.
      await new Promise((r) => setTimeout(r, 5));
      return {
        request: { method: 'POST', path: `/v1/leases/${id}/keepalive` },
        target: () => leaseOf(id),
      };
    },
    'DELETE lease': async () => {
      const id = await lease();
      await must({ method: 'PUT', path: `/v1/kv/leased/${++n}`, body: { value: 'l', lease: id } });
      return {
        request: { method: 'DELETE', path: `/v1/leases/${id}` },
        target: () => leaseOf(id),
      };
    },
    'PUT registry': async () => {
      const id = await lease();
      const name = `reg-put-${++n}`;
      return {
        request: {
          method: 'PUT',
          path: `/v1/registry/${name}`,
          body: { value: `r${n}`, lease: id },
        },
        target: () => kvOf(REGISTRY_PREFIX + name),
      };
    },
    'DELETE registry': async () => {
      const id = await lease();
      const name = `reg-del-${++n}`;
      await must({ method: 'PUT', path: `/v1/registry/${name}`, body: { value: 'r', lease: id } });
      return {
        request: { method: 'DELETE', path: `/v1/registry/${name}` },
        target: () => kvOf(REGISTRY_PREFIX + name),
      };
    },
    'DELETE locks': async () => {
      const id = await lease();
      const name = `lock-${++n}`;
      const held = await must({ method: 'POST', path: `/v1/locks/${name}`, body: { lease: id } });
      const key = held.body.key as string;
      return {
        request: {
          method: 'DELETE',
          path: `/v1/locks/${name}?key=${encodeURIComponent(key)}`,
        },
        target: () => kvOf(key),
      };
    },
    'POST proclaim': async () => {
      const id = await lease();
      const name = `elect-p-${++n}`;
      const won = await must({
        method: 'POST',
        path: `/v1/elections/${name}/campaign`,
        body: { lease: id, value: 'first' },
      });
      const key = won.body.leader.key as string;
      return {
        request: {
          method: 'POST',
          path: `/v1/elections/${name}/proclaim`,
          body: { key, value: `proclaimed-${n}` },
        },
        target: () => kvOf(key),
      };
    },
    'DELETE resign': async () => {
      const id = await lease();
      const name = `elect-r-${++n}`;
      const won = await must({
        method: 'POST',
        path: `/v1/elections/${name}/campaign`,
        body: { lease: id, value: 'first' },
      });
      const key = won.body.leader.key as string;
      return {
        request: {
          method: 'DELETE',
          path: `/v1/elections/${name}/leader?key=${encodeURIComponent(key)}`,
        },
        target: () => kvOf(key),
      };
    },
    'PUT auth user': async () => {
      const name = `user-${++n}`;
      return {
        request: { method: 'PUT', path: `/v1/auth/users/${name}`, body: { password: `pw${n}` } },
        target: () => sm().auth.user(name) ?? null,
      };
    },
  };

  /** A with `key`, then B with it (refused, nothing applied), then A again (its first answer). */
  const pair = async (tt: Test, a: Prepared, b: Prepared, key: string): Promise<void> => {
    const headers = { 'idempotency-key': key };
    const first = await call(a.request, headers);
    tt.ok(first.status < 300, `A succeeds (${first.status} ${first.text.slice(0, 120)})`);
    const revision = sm().revision;
    const target = JSON.stringify(b.target());
    const refused = await call(b.request, headers);
    assertError(tt, refused, 400, 'invalid_request', 'B with the same key');
    tt.match(refused.body?.error?.message ?? '', /Idempotency-Key/, 'the message says why');
    tt.equal(sm().revision, revision, 'B made no revision');
    tt.equal(JSON.stringify(b.target()), target, "B's target is unchanged");
    const retry = await call(a.request, headers);
    tt.equal(retry.status, first.status, 'A retried: the same status');
    tt.same(retry.body, first.body, 'A retried: the same body');
  };

  const names = Object.keys(kinds);
  for (const aName of names) {
    for (const bName of names) {
      const what = aName === bName ? `${aName}, then another ${bName}` : `${aName}, then ${bName}`;
      await t.test(what, async (tt) => {
        const a = await kinds[aName]!();
        const b = await kinds[bName]!();
        await pair(tt, a, b, `pair-${aName}-${bName}`.replace(/[^\x20-\x7e]/g, '_'));
      });
    }
  }

  await t.test('same route and path, only the body differs', async (tt) => {
    const headers = { 'idempotency-key': 'same-path-other-body' };
    const first = await call(
      { method: 'PUT', path: '/v1/kv/same/path', body: { value: 'one' } },
      headers,
    );
    tt.equal(first.status, 200);
    const revision = sm().revision;
    const other = await call(
      { method: 'PUT', path: '/v1/kv/same/path', body: { value: 'two' } },
      headers,
    );
    assertError(tt, other, 400, 'invalid_request');
    tt.equal(sm().revision, revision);
    tt.equal(kvOf('same/path')?.value, 'one');
    const txnBody = (value: string) => ({
      compare: [],
      success: [{ op: 'put', key: 'same/txn', value }],
      failure: [],
    });
    const txnHeaders = { 'idempotency-key': 'same-txn-other-body' };
    tt.equal(
      (await call({ method: 'POST', path: '/v1/txn', body: txnBody('a') }, txnHeaders)).status,
      200,
    );
    assertError(
      tt,
      await call({ method: 'POST', path: '/v1/txn', body: txnBody('b') }, txnHeaders),
      400,
      'invalid_request',
    );
    tt.equal(kvOf('same/txn')?.value, 'a');
  });

  await t.test('a retried re-registration is applied once and answered the same', async (tt) => {
    const id = await lease();
    await must({ method: 'PUT', path: '/v1/registry/again', body: { value: 'v1', lease: id } });
    const update: Request = {
      method: 'PUT',
      path: '/v1/registry/again',
      body: { value: 'v2', lease: id },
    };
    const headers = { 'idempotency-key': 're-register' };
    const first = await call(update, headers);
    tt.equal(first.status, 200, 'the owner updates its value');
    const revision = sm().revision;
    const retry = await call(update, headers);
    tt.equal(retry.status, first.status, 'the same status');
    tt.same(retry.body, first.body, 'the same body');
    tt.equal(sm().revision, revision, 'the retry applied nothing');
  });
});

t.test('a reused key is recognised whichever member the requests go through', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const [f1, f2] = [0, 1, 2].filter((i) => i !== leader) as [number, number];
  const headers = { 'idempotency-key': 'through-followers' };
  const txn = {
    compare: [],
    success: [
      { op: 'put', key: 'fwd/a', value: '1' },
      { op: 'get', key: 'fwd/a' },
    ],
    failure: [],
  };
  const first = await http(c.url(f1), 'POST', '/v1/txn', { headers, body: txn });
  t.equal(first.status, 200, first.text);
  const lease = await http(c.url(leader), 'POST', '/v1/leases', { body: { ttl: 600 } });
  const revision = c.nodes[leader]!.node.store.revision;
  assertError(
    t,
    await http(c.url(f2), 'PUT', '/v1/registry/fwd', {
      headers,
      body: { value: 'v', lease: lease.body.id },
    }),
    400,
    'invalid_request',
    'the registry after a txn, through another follower',
  );
  assertError(
    t,
    await http(c.url(leader), 'PUT', '/v1/kv/fwd/b', { headers, body: { value: '2' } }),
    400,
    'invalid_request',
    'a put on the leader',
  );
  t.equal(c.nodes[leader]!.node.store.revision, revision, 'nothing applied');
  const retry = await http(c.url(f2), 'POST', '/v1/txn', { headers, body: txn });
  t.equal(retry.status, first.status);
  t.same(retry.body, first.body, 'the retry through another member gets the first answer');
});
