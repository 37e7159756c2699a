/**
 * API.md "What needs which permission", as a table: every route of API.md ×
 * {no credentials, wrong credentials, permitted user, user without the
 * permission, user with the wrong access, root}, on one real node with auth on.
 *
 * Each cell checks the status and API.md's error body; for a refused request,
 * that nothing was applied (root's view of the store revision, compaction,
 * leases, users, roles and the auth flag are unchanged); for a permitted
 * write, that it did change the store (so the "unchanged" check means something).
 *
 * Users: `permitted` holds readwrite on exactly what the routes touch (kv `p/`,
 * registry, locks and elections names starting with `p`); `other` holds
 * readwrite on `o/` and `o` names only; `reader` and `writer` hold read-only and
 * write-only on the permitted prefixes: the "wrong access" cell is `writer` for
 * a route that reads (or guards a write with a compare) and `reader` for a route
 * that only writes. Each user has its own
 * lease (API.md: only the granting user may use a lease).
 */
import t, { type Test } from 'tap';
import { assertError, http, type Json, type Reply, startSingleNode } from './helpers.js';

type Cell = 'none' | 'wrong' | 'permitted' | 'other' | 'wrongAccess' | 'root';
const CELLS: readonly Cell[] = ['none', 'wrong', 'other', 'wrongAccess', 'permitted', 'root'];
type User = 'root' | 'permitted' | 'other' | 'reader' | 'writer';
type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

/**
 * What a route declares (src/api/access.ts): `public`, `authenticated`, `root`,
 * a read or a write of names, a guarded write (a write with a compare: it needs
 * both), or the ownership of a lease.
 */
type Kind = 'public' | 'authenticated' | 'root' | 'read' | 'write' | 'guarded' | 'lease';

interface Req {
  method: Method;
  path: string;
  body?: Json;
}

/** An expected outcome: a status, and for an error status its API.md code. */
type Outcome = readonly [status: number, code?: string];

interface Route {
  name: string;
  kind: Kind;
  /** The request for one cell; may prepare state (as root or its owner) first. */
  req: (cell: Cell) => Promise<Req> | Req;
  /** The outcome when the request passes the permission check. */
  ok: Outcome;
  /** Cells whose outcome differs from the kind's default. */
  expect?: Partial<Record<Cell, Outcome>>;
  /** A Server-Sent Events stream: check the opening response, then close. */
  stream?: boolean;
  /** A permitted request changes the store revision (checked, so "unchanged" means something). */
  mutates?: boolean;
  /** More of root's view that a refused request must leave unchanged. */
  view?: () => Promise<Json>;
  /** Checks the body of a permitted answer. */
  check?: (t: Test, res: Reply, cell: Cell) => void;
}

const PASSWORDS: Record<User, string> = {
  root: 'root-pw',
  permitted: 'permitted-pw',
  other: 'other-pw',
  reader: 'reader-pw',
  writer: 'writer-pw',
};
const basic = (name: string, password: string) =>
  `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}`;
const as = (user: User) => basic(user, PASSWORDS[user]);

const NO_MEMBER = '0123456789abcdef';

t.test('permissions: every route × every kind of caller', async (t) => {
  const node = await startSingleNode(5000);
  t.teardown(() => node.close());
  const url = node.url;

  const call = (
    method: Method,
    path: string,
    authorization: string | undefined,
    body?: Json,
  ): Promise<Reply> =>
    http(url, method, path, {
      headers: authorization ? { authorization } : {},
      ...(body !== undefined ? { body } : {}),
    });
  /** A setup or inspection request as `user` that must succeed. */
  const must = async (user: User, method: Method, path: string, body?: Json): Promise<Json> => {
    const res = await call(method, path, as(user), body);
    if (res.status >= 300)
      throw new Error(`setup ${method} ${path} as ${user}: ${res.status} ${res.text}`);
    return res.body;
  };

  // ---- setup while auth is off (everyone is root), then enable
  const scope = (prefix: string, kvPrefix: string, access: string) => [
    { resource: 'kv', prefix: kvPrefix, access },
    { resource: 'registry', prefix, access },
    { resource: 'locks', prefix, access },
    { resource: 'elections', prefix, access },
  ];
  await must('root', 'PUT', '/v1/auth/roles/permitted', {
    permissions: scope('p', 'p/', 'readwrite'),
  });
  await must('root', 'PUT', '/v1/auth/roles/other', { permissions: scope('o', 'o/', 'readwrite') });
  await must('root', 'PUT', '/v1/auth/roles/reader', { permissions: scope('p', 'p/', 'read') });
  await must('root', 'PUT', '/v1/auth/roles/writer', { permissions: scope('p', 'p/', 'write') });
  for (const user of ['root', 'permitted', 'other', 'reader', 'writer'] as const)
    await must('root', 'PUT', `/v1/auth/users/${user}`, {
      password: PASSWORDS[user],
      roles: [user],
    });
  await must('root', 'POST', '/v1/auth/enable');

  const leases = {} as Record<User, string>;
  for (const user of ['root', 'permitted', 'other', 'reader', 'writer'] as const)
    leases[user] = (await must(user, 'POST', '/v1/leases', { ttl: 600 })).id;
  const renewable = {
    id: (await must('permitted', 'POST', '/v1/leases', { ttl: 600 })).id as string,
    grantedAt: Date.now(),
  };
  await must('root', 'PUT', '/v1/kv/p%2Fk', { value: 'v' });
  await must('root', 'PUT', '/v1/kv/o%2Fk', { value: 'v' });
  await must('root', 'PUT', '/v1/kv/q%2Fk', { value: 'v' });
  await must('root', 'PUT', '/v1/registry/p-r', { value: 'v', lease: leases.permitted });
  await must('root', 'PUT', '/v1/registry/o-r', { value: 'v', lease: leases.other });
  await must('root', 'POST', '/v1/elections/p-e/campaign', {
    lease: leases.permitted,
    value: 'v',
  });

  /** The acting user of a cell (undefined for the two unauthenticated ones). */
  const actor = (cell: Cell, kind: Kind): User | undefined => {
    switch (cell) {
      case 'none':
      case 'wrong':
        return undefined;
      case 'wrongAccess':
        // The access the route needs and the user lacks: a guard is a compare, so a read.
        return kind === 'read' || kind === 'guarded' ? 'writer' : 'reader';
      default:
        return cell;
    }
  };
  let wrongCount = 0;
  /** Wrong credentials, a different kind each time: a forged token, an unknown user, a bad password of an unknown name. */
  const wrongCredentials = (): string => {
    wrongCount++;
    switch (wrongCount % 3) {
      case 0:
        return `Bearer ${Buffer.from(JSON.stringify({ u: 'root', r: 1, x: Date.now() + 60_000 })).toString('base64url')}.AAAA`;
      case 1:
        return basic(`ghost-${wrongCount}`, PASSWORDS.root);
      default:
        return `Bearer not-a-token-${wrongCount}`;
    }
  };
  const credentials = (cell: Cell, kind: Kind): string | undefined => {
    if (cell === 'none') return undefined;
    if (cell === 'wrong') return wrongCredentials();
    return as(actor(cell, kind)!);
  };
  /** The lease a cell's user owns (root's for the unauthenticated cells: they never get that far). */
  const ownLease = (cell: Cell, kind: Kind): string => leases[actor(cell, kind) ?? 'root'];

  /** Root's view of everything a refused request could have changed. */
  const storeView = async () => {
    const s = await must('root', 'GET', '/v1/status');
    return { revision: s.revision, compactRevision: s.compactRevision };
  };

  const leaseView = async () =>
    (await must('root', 'GET', '/v1/leases')).leases
      .map((l: Json) => l.id)
      .sort()
      .join(',');
  const usersView = async () => must('root', 'GET', '/v1/auth/users');
  const rolesView = async () => must('root', 'GET', '/v1/auth/roles');
  const membersView = async () => (await must('root', 'GET', '/v1/cluster/members')).members;
  const authView = async () => (await call('GET', '/v1/auth/status', undefined)).body;
  /** Names: every cell gets its own, so the cells of one route do not interfere. */
  const enc = encodeURIComponent;

  /** A lease of `permitted` with a key on it, so that revoking it changes the store. */
  const freshPermittedLease = async (cell: Cell) => {
    const id = (await must('permitted', 'POST', '/v1/leases', { ttl: 600 })).id as string;
    await must('permitted', 'PUT', `/v1/kv/${enc(`p/leased-${cell}`)}`, { value: 'v', lease: id });
    return id;
  };
  const onlyUnder = (t: Test, keys: string[], prefix: string, what: string) => {
    t.ok(keys.length > 0, `${what}: something returned`);
    t.ok(
      keys.every((k) => k.startsWith(prefix)),
      `${what}: nothing outside "${prefix}" (${keys.join(',')})`,
    );
  };

  const routes: Route[] = [
    // ---- KV
    {
      name: 'GET /v1/kv/{key}',
      kind: 'read',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/kv/p%2Fk' }),
    },
    {
      name: 'GET /v1/kv?prefix=p/',
      kind: 'read',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/kv?prefix=p%2F' }),
      check: (t, res, cell) => {
        if (cell === 'permitted')
          onlyUnder(
            t,
            res.body.kvs.map((kv: Json) => kv.key),
            'p/',
            'range',
          );
      },
    },
    {
      // A prefix request needs a permission whose prefix is a prefix of it: "p/" does not cover "p".
      name: 'GET /v1/kv?prefix=p (wider than the permission)',
      kind: 'read',
      ok: [200],
      expect: { permitted: [403, 'permission_denied'] },
      req: () => ({ method: 'GET', path: '/v1/kv?prefix=p' }),
    },
    {
      name: 'GET /v1/kv (everything)',
      kind: 'read',
      ok: [200],
      expect: { permitted: [403, 'permission_denied'] },
      req: () => ({ method: 'GET', path: '/v1/kv' }),
    },
    {
      name: 'PUT /v1/kv/{key}',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: (cell) => ({
        method: 'PUT',
        path: `/v1/kv/${enc(`p/put-${cell}`)}`,
        body: { value: 'x' },
      }),
    },
    {
      name: 'PUT /v1/kv/{key} with own lease',
      kind: 'write',
      ok: [200],
      mutates: true,
      view: leaseView,
      req: (cell) => ({
        method: 'PUT',
        path: `/v1/kv/${enc(`p/put-lease-${cell}`)}`,
        body: { value: 'x', lease: ownLease(cell, 'write') },
      }),
    },
    {
      // Only the granting user (or root) may attach a lease: `other`'s lease is nobody else's.
      name: "PUT /v1/kv/{key} with another user's lease",
      kind: 'write',
      ok: [200],
      mutates: true,
      expect: { permitted: [403, 'permission_denied'] },
      req: (cell) => ({
        method: 'PUT',
        path: `/v1/kv/${enc(`p/put-other-lease-${cell}`)}`,
        body: { value: 'x', lease: leases.other },
      }),
    },
    {
      // A guard is a compare (API.md: a txn needs read for its compares): a write-only user
      // must not learn a key's value from the 409's "kv".
      name: 'PUT /v1/kv/{key} with a false prevValue guard',
      kind: 'guarded',
      ok: [409, 'compare_failed'],
      req: () => ({
        method: 'PUT',
        path: '/v1/kv/p%2Fk',
        body: { value: 'x', prevValue: 'not-the-value' },
      }),
      check: (t, res) => t.equal(res.body.kv?.value, 'v', 'the 409 shows the current value'),
    },
    {
      name: 'PUT /v1/kv/{key} with a true prevRevision guard',
      kind: 'guarded',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        const key = enc(`p/guarded-${cell}`);
        const put = await must('root', 'PUT', `/v1/kv/${key}`, { value: 'x' });
        return {
          method: 'PUT',
          path: `/v1/kv/${key}`,
          body: { value: 'y', prevRevision: put.kv.modRevision },
        };
      },
    },
    {
      name: 'DELETE /v1/kv/{key}?prevRevision=N',
      kind: 'guarded',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        const key = enc(`p/guarded-del-${cell}`);
        const put = await must('root', 'PUT', `/v1/kv/${key}`, { value: 'x' });
        return { method: 'DELETE', path: `/v1/kv/${key}?prevRevision=${put.kv.modRevision}` };
      },
    },
    {
      name: 'DELETE /v1/kv/{key}',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        const key = enc(`p/del-${cell}`);
        await must('root', 'PUT', `/v1/kv/${key}`, { value: 'x' });
        return { method: 'DELETE', path: `/v1/kv/${key}` };
      },
      check: (t, res) => t.equal(res.body.deleted, 1, 'deleted one key'),
    },
    {
      name: 'DELETE /v1/kv/{prefix}?prefix=true',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        await must('root', 'PUT', `/v1/kv/${enc(`p/dp-${cell}/x`)}`, { value: 'x' });
        return { method: 'DELETE', path: `/v1/kv/${enc(`p/dp-${cell}/`)}?prefix=true` };
      },
      check: (t, res) => t.equal(res.body.deleted, 1, 'deleted one key'),
    },
    {
      // "p/" holds write, but a prefix delete of "p" can reach keys outside it.
      name: 'DELETE /v1/kv/pz-…?prefix=true (outside "p/")',
      kind: 'write',
      ok: [200],
      mutates: true,
      expect: { permitted: [403, 'permission_denied'] },
      req: async (cell) => {
        await must('root', 'PUT', `/v1/kv/${enc(`pz-${cell}`)}`, { value: 'x' });
        return { method: 'DELETE', path: `/v1/kv/${enc('pz-')}${enc(cell)}?prefix=true` };
      },
    },
    {
      name: 'POST /v1/txn (compare, put, get)',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: (cell) => ({
        method: 'POST',
        path: '/v1/txn',
        body: {
          compare: [{ key: 'p/k', target: 'version', op: '>', value: 0 }],
          success: [
            { op: 'put', key: `p/txn-${cell}`, value: 'x' },
            { op: 'get', key: 'p/k' },
          ],
          failure: [],
        },
      }),
      check: (t, res) => t.equal(res.body.succeeded, true, 'txn succeeded'),
    },
    {
      name: 'POST /v1/txn with a prefix get and delete',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        await must('root', 'PUT', `/v1/kv/${enc(`p/tdel-${cell}/x`)}`, { value: 'x' });
        return {
          method: 'POST',
          path: '/v1/txn',
          body: {
            compare: [],
            success: [
              { op: 'get', key: 'p/', prefix: true },
              { op: 'delete', key: `p/tdel-${cell}/`, prefix: true },
            ],
            failure: [],
          },
        };
      },
      check: (t, res, cell) => {
        if (cell === 'permitted')
          onlyUnder(
            t,
            res.body.results[0].kvs.map((kv: Json) => kv.key),
            'p/',
            'txn get',
          );
      },
    },
    {
      // One key outside the permission refuses the whole txn.
      name: 'POST /v1/txn with one key outside the permission',
      kind: 'write',
      ok: [200],
      mutates: true,
      expect: { permitted: [403, 'permission_denied'] },
      req: (cell) => ({
        method: 'POST',
        path: '/v1/txn',
        body: {
          compare: [],
          success: [
            { op: 'put', key: `p/txn-mixed-${cell}`, value: 'x' },
            { op: 'put', key: `q/txn-mixed-${cell}`, value: 'x' },
          ],
          failure: [],
        },
      }),
    },
    {
      // A fence needs read on the lock's name; both branches write, so any outcome that ran changes the store.
      name: 'POST /v1/txn with a lock fence',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: (cell) => ({
        method: 'POST',
        path: '/v1/txn',
        body: {
          compare: [{ lock: 'p-fence', token: 1 }],
          success: [{ op: 'put', key: `p/fenced-${cell}`, value: 'x' }],
          failure: [{ op: 'put', key: `p/fenced-${cell}`, value: 'y' }],
        },
      }),
    },
    {
      name: 'POST /v1/txn with a fence on a lock outside the permission',
      kind: 'write',
      ok: [200],
      mutates: true,
      expect: { permitted: [403, 'permission_denied'] },
      req: (cell) => ({
        method: 'POST',
        path: '/v1/txn',
        body: {
          compare: [{ lock: 'q-fence', token: 1 }],
          success: [{ op: 'put', key: `p/fenced-q-${cell}`, value: 'x' }],
          failure: [{ op: 'put', key: `p/fenced-q-${cell}`, value: 'y' }],
        },
      }),
    },
    {
      name: 'POST /v1/compact',
      kind: 'root',
      ok: [200],
      req: async () => ({
        method: 'POST',
        path: '/v1/compact',
        body: { revision: (await storeView()).revision },
      }),
    },

    // ---- watch
    {
      name: 'GET /v1/watch/{key}',
      kind: 'read',
      ok: [200],
      stream: true,
      req: () => ({ method: 'GET', path: '/v1/watch/p%2Fk' }),
    },
    {
      name: 'GET /v1/watch/{prefix}?prefix=true',
      kind: 'read',
      ok: [200],
      stream: true,
      req: () => ({ method: 'GET', path: '/v1/watch/p%2F?prefix=true' }),
    },
    {
      name: 'GET /v1/watch?prefix=true (everything)',
      kind: 'read',
      ok: [200],
      stream: true,
      expect: { permitted: [403, 'permission_denied'] },
      req: () => ({ method: 'GET', path: '/v1/watch?prefix=true' }),
    },

    // ---- leases
    {
      name: 'POST /v1/leases',
      kind: 'authenticated',
      ok: [201],
      view: leaseView,
      req: () => ({ method: 'POST', path: '/v1/leases', body: { ttl: 600 } }),
    },
    {
      // A keepalive changes no revision: root sees it in the lease's remaining TTL, which only a
      // renewal brings back to the full 600 s once a second has passed since the grant.
      name: 'POST /v1/leases/{id}/keepalive',
      kind: 'lease',
      ok: [200],
      view: async () => {
        const lease = await must('root', 'GET', `/v1/leases/${renewable.id}`);
        return { renewed: lease.remaining === 600 };
      },
      req: async () => {
        const wait = renewable.grantedAt + 1100 - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        return { method: 'POST', path: `/v1/leases/${renewable.id}/keepalive` };
      },
      check: (t, res) => t.equal(res.body.ttl, 600, 'the TTL restarts'),
    },
    {
      name: 'GET /v1/leases/{id}',
      kind: 'lease',
      ok: [200],
      req: () => ({ method: 'GET', path: `/v1/leases/${leases.permitted}` }),
    },
    {
      name: 'GET /v1/leases',
      kind: 'authenticated',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/leases' }),
      check: (t, res, cell) => {
        const ids = res.body.leases.map((l: Json) => l.id);
        if (cell === 'root') t.ok(ids.includes(leases.other), 'root lists every lease');
        else {
          const me = actor(cell, 'authenticated')!;
          t.ok(ids.includes(leases[me]), `${me} lists its own lease`);
          t.notOk(
            (Object.keys(leases) as User[]).some((u) => u !== me && ids.includes(leases[u])),
            `${me} lists no one else's lease`,
          );
        }
      },
    },
    {
      name: 'DELETE /v1/leases/{id}',
      kind: 'lease',
      ok: [200],
      mutates: true,
      view: leaseView,
      req: async (cell) => ({
        method: 'DELETE',
        path: `/v1/leases/${await freshPermittedLease(cell)}`,
      }),
      check: (t, res) => t.same(res.body, { revoked: true, deleted: 1 }),
    },

    // ---- registry
    {
      name: 'PUT /v1/registry/{name}',
      kind: 'write',
      ok: [201],
      mutates: true,
      req: (cell) => ({
        method: 'PUT',
        path: `/v1/registry/p-reg-${cell}`,
        body: { value: 'x', lease: ownLease(cell, 'write') },
      }),
    },
    {
      name: "PUT /v1/registry/{name} with another user's lease",
      kind: 'write',
      ok: [201],
      mutates: true,
      expect: { permitted: [403, 'permission_denied'] },
      req: (cell) => ({
        method: 'PUT',
        path: `/v1/registry/p-reg-other-${cell}`,
        body: { value: 'x', lease: leases.other },
      }),
    },
    {
      name: 'GET /v1/registry/{name}',
      kind: 'read',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/registry/p-r' }),
    },
    {
      name: 'GET /v1/registry?prefix=p',
      kind: 'read',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/registry?prefix=p' }),
      check: (t, res, cell) => {
        if (cell === 'permitted')
          onlyUnder(
            t,
            res.body.entries.map((e: Json) => e.name),
            'p',
            'registry listing',
          );
      },
    },
    {
      name: 'GET /v1/registry (everything)',
      kind: 'read',
      ok: [200],
      expect: { permitted: [403, 'permission_denied'] },
      req: () => ({ method: 'GET', path: '/v1/registry' }),
    },
    {
      name: 'GET /v1/registry?prefix=p&watch=true',
      kind: 'read',
      ok: [200],
      stream: true,
      req: () => ({ method: 'GET', path: '/v1/registry?prefix=p&watch=true' }),
    },
    {
      name: 'GET /v1/registry?watch=true (everything)',
      kind: 'read',
      ok: [200],
      stream: true,
      expect: { permitted: [403, 'permission_denied'] },
      req: () => ({ method: 'GET', path: '/v1/registry?watch=true' }),
    },
    {
      name: 'DELETE /v1/registry/{name}',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        await must('root', 'PUT', `/v1/registry/p-unreg-${cell}`, {
          value: 'x',
          lease: leases.permitted,
        });
        return { method: 'DELETE', path: `/v1/registry/p-unreg-${cell}` };
      },
    },
    {
      name: 'DELETE /v1/registry/{name}?lease=id',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        await must('root', 'PUT', `/v1/registry/p-unreg-l-${cell}`, {
          value: 'x',
          lease: leases.permitted,
        });
        return {
          method: 'DELETE',
          path: `/v1/registry/p-unreg-l-${cell}?lease=${leases.permitted}`,
        };
      },
    },

    // ---- locks
    {
      name: 'POST /v1/locks/{name}',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: (cell) => ({
        method: 'POST',
        path: `/v1/locks/p-lock-${cell}`,
        body: { lease: ownLease(cell, 'write'), timeoutMs: 2000 },
      }),
    },
    {
      name: "POST /v1/locks/{name} with another user's lease",
      kind: 'write',
      ok: [200],
      mutates: true,
      expect: { permitted: [403, 'permission_denied'] },
      req: (cell) => ({
        method: 'POST',
        path: `/v1/locks/p-lock-other-${cell}`,
        body: { lease: leases.other, timeoutMs: 2000 },
      }),
    },
    {
      name: 'DELETE /v1/locks/{name}?key=K',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        const held = await must('permitted', 'POST', `/v1/locks/p-rel-${cell}`, {
          lease: leases.permitted,
          timeoutMs: 2000,
        });
        return { method: 'DELETE', path: `/v1/locks/p-rel-${cell}?key=${enc(held.key)}` };
      },
    },

    // ---- elections
    {
      name: 'POST /v1/elections/{name}/campaign',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: (cell) => ({
        method: 'POST',
        path: `/v1/elections/p-camp-${cell}/campaign`,
        body: { lease: ownLease(cell, 'write'), value: 'x', timeoutMs: 2000 },
      }),
    },
    {
      name: "POST /v1/elections/{name}/campaign with another user's lease",
      kind: 'write',
      ok: [200],
      mutates: true,
      expect: { permitted: [403, 'permission_denied'] },
      req: (cell) => ({
        method: 'POST',
        path: `/v1/elections/p-camp-other-${cell}/campaign`,
        body: { lease: leases.other, value: 'x', timeoutMs: 2000 },
      }),
    },
    {
      name: 'GET /v1/elections/{name}',
      kind: 'read',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/elections/p-e' }),
    },
    {
      name: 'GET /v1/elections/{name}?watch=true',
      kind: 'read',
      ok: [200],
      stream: true,
      req: () => ({ method: 'GET', path: '/v1/elections/p-e?watch=true' }),
    },
    {
      name: 'POST /v1/elections/{name}/proclaim',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        const won = await must('permitted', 'POST', `/v1/elections/p-pro-${cell}/campaign`, {
          lease: leases.permitted,
          value: 'x',
          timeoutMs: 2000,
        });
        return {
          method: 'POST',
          path: `/v1/elections/p-pro-${cell}/proclaim`,
          body: { key: won.leader.key, value: 'y' },
        };
      },
    },
    {
      name: 'DELETE /v1/elections/{name}/leader?key=K',
      kind: 'write',
      ok: [200],
      mutates: true,
      req: async (cell) => {
        const won = await must('permitted', 'POST', `/v1/elections/p-res-${cell}/campaign`, {
          lease: leases.permitted,
          value: 'x',
          timeoutMs: 2000,
        });
        return {
          method: 'DELETE',
          path: `/v1/elections/p-res-${cell}/leader?key=${enc(won.leader.key)}`,
        };
      },
    },

    // ---- cluster and operations
    {
      name: 'GET /v1/status',
      kind: 'authenticated',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/status' }),
    },
    {
      // A 0.2.0 command: this 0.1.0 build refuses it for every caller that gets past auth.
      name: 'POST /v1/sync',
      kind: 'authenticated',
      ok: [409, 'cluster_version_too_old'],
      req: () => ({ method: 'POST', path: '/v1/sync' }),
    },
    {
      name: 'GET /v1/cluster/members',
      kind: 'authenticated',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/cluster/members' }),
    },
    {
      // Root gets past auth to the handler's own check (a bad URL): the only member stays alone.
      name: 'POST /v1/cluster/members',
      kind: 'root',
      ok: [400, 'invalid_request'],
      view: membersView,
      req: () => ({
        method: 'POST',
        path: '/v1/cluster/members',
        body: { name: 'n9', peerUrl: 'ftp://127.0.0.1:1', clientUrl: 'ftp://127.0.0.1:2' },
      }),
    },
    {
      name: 'POST /v1/cluster/members/{id}/promote',
      kind: 'root',
      ok: [404, 'member_not_found'],
      view: membersView,
      req: () => ({ method: 'POST', path: `/v1/cluster/members/${NO_MEMBER}/promote` }),
    },
    {
      name: 'DELETE /v1/cluster/members/{id}',
      kind: 'root',
      ok: [404, 'member_not_found'],
      view: membersView,
      req: () => ({ method: 'DELETE', path: `/v1/cluster/members/${NO_MEMBER}` }),
    },
    {
      name: 'POST /v1/cluster/leader',
      kind: 'root',
      ok: [404, 'member_not_found'],
      view: membersView,
      req: () => ({ method: 'POST', path: '/v1/cluster/leader', body: { to: NO_MEMBER } }),
    },
    {
      name: 'GET /v1/snapshot',
      kind: 'root',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/snapshot' }),
    },
    {
      name: 'GET /health',
      kind: 'public',
      ok: [200],
      req: () => ({ method: 'GET', path: '/health' }),
    },
    {
      name: 'GET /metrics',
      kind: 'public',
      ok: [200],
      req: () => ({ method: 'GET', path: '/metrics' }),
    },

    // ---- auth
    {
      name: 'GET /v1/auth/status',
      kind: 'public',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/auth/status' }),
    },
    {
      // Public, but the body is the credentials: none is a bad request, wrong ones a 401.
      name: 'POST /v1/auth/token',
      kind: 'public',
      ok: [200],
      expect: { none: [400, 'invalid_request'], wrong: [401, 'unauthenticated'] },
      req: (cell) => {
        const user = actor(cell, 'read');
        if (cell === 'none') return { method: 'POST', path: '/v1/auth/token', body: {} };
        const body =
          user === undefined
            ? { name: 'ghost-token', password: 'nope' }
            : { name: user, password: PASSWORDS[user] };
        return { method: 'POST', path: '/v1/auth/token', body };
      },
    },
    {
      name: 'GET /v1/auth/users',
      kind: 'root',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/auth/users' }),
    },
    {
      name: 'GET /v1/auth/users/{name}',
      kind: 'root',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/auth/users/permitted' }),
    },
    {
      name: 'PUT /v1/auth/users/{name}',
      kind: 'root',
      ok: [201],
      view: usersView,
      req: (cell) => ({
        method: 'PUT',
        path: `/v1/auth/users/new-${cell}`,
        body: { password: 'x', roles: ['permitted'] },
      }),
    },
    {
      // A user may not change its own roles either.
      name: 'PUT /v1/auth/users/{name} (own roles)',
      kind: 'root',
      ok: [200],
      expect: { root: [200] },
      view: usersView,
      req: (cell) => {
        const user = actor(cell, 'write') ?? 'permitted';
        return {
          method: 'PUT',
          path: `/v1/auth/users/${user}`,
          body: { roles: user === 'root' ? ['root'] : [user] },
        };
      },
    },
    {
      name: 'DELETE /v1/auth/users/{name}',
      kind: 'root',
      ok: [200],
      view: usersView,
      req: async (cell) => {
        await must('root', 'PUT', `/v1/auth/users/victim-${cell}`, { password: 'x' });
        return { method: 'DELETE', path: `/v1/auth/users/victim-${cell}` };
      },
    },
    {
      name: 'GET /v1/auth/roles',
      kind: 'root',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/auth/roles' }),
    },
    {
      name: 'GET /v1/auth/roles/{name}',
      kind: 'root',
      ok: [200],
      req: () => ({ method: 'GET', path: '/v1/auth/roles/permitted' }),
    },
    {
      name: 'PUT /v1/auth/roles/{name}',
      kind: 'root',
      ok: [201],
      view: rolesView,
      req: (cell) => ({
        method: 'PUT',
        path: `/v1/auth/roles/new-${cell}`,
        body: { permissions: [{ resource: 'kv', prefix: '', access: 'readwrite' }] },
      }),
    },
    {
      name: 'PUT /v1/auth/roles/{name} (widening an existing role)',
      kind: 'root',
      ok: [200],
      view: rolesView,
      req: () => ({
        method: 'PUT',
        path: '/v1/auth/roles/reader',
        body: { permissions: scope('p', 'p/', 'read') },
      }),
    },
    {
      name: 'DELETE /v1/auth/roles/{name}',
      kind: 'root',
      ok: [200],
      view: rolesView,
      req: async (cell) => {
        await must('root', 'PUT', `/v1/auth/roles/victim-${cell}`, { permissions: [] });
        return { method: 'DELETE', path: `/v1/auth/roles/victim-${cell}` };
      },
    },
    {
      name: 'POST /v1/auth/enable',
      kind: 'root',
      ok: [200],
      view: authView,
      req: () => ({ method: 'POST', path: '/v1/auth/enable' }),
    },
    {
      // Root's cell turns auth off: it is turned on again right after (see below).
      name: 'POST /v1/auth/disable',
      kind: 'root',
      ok: [200],
      view: authView,
      req: () => ({ method: 'POST', path: '/v1/auth/disable' }),
    },
  ];

  /** The outcome a cell must get, from the route's kind unless the route says otherwise. */
  const expected = (route: Route, cell: Cell): Outcome => {
    const special = route.expect?.[cell];
    if (special) return special;
    if (route.kind === 'public') return route.ok;
    if (cell === 'none' || cell === 'wrong') return [401, 'unauthenticated'];
    if (cell === 'root' || cell === 'permitted') {
      if (route.kind === 'root' && cell === 'permitted') return [403, 'permission_denied'];
      return route.ok;
    }
    if (route.kind === 'authenticated') return route.ok;
    return [403, 'permission_denied'];
  };

  /** Opens a stream: its opening status and content type; the body of an error. */
  const openStream = async (path: string, authorization: string | undefined): Promise<Reply> => {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 10_000);
    try {
      const res = await fetch(`${url}${path}`, {
        headers: { accept: 'text/event-stream', ...(authorization ? { authorization } : {}) },
        signal: abort.signal,
      });
      const headers = Object.fromEntries(res.headers.entries());
      if (res.status === 200) {
        abort.abort();
        return { status: 200, headers, body: undefined, text: '' };
      }
      const text = await res.text();
      let body: Json = text;
      try {
        body = JSON.parse(text);
      } catch {}
      return { status: res.status, headers, body, text };
    } finally {
      clearTimeout(timer);
    }
  };

  let cells = 0;
  let refusedWrites = 0;
  for (const route of routes) {
    t.test(route.name, async (t) => {
      for (const cell of CELLS) {
        const [status, code] = expected(route, cell);
        const what = `${route.name} [${cell}]`;
        const req = await route.req(cell);
        const authorization = credentials(cell, route.kind);
        const refused = status === 401 || status === 403;
        const before = { store: await storeView(), extra: await route.view?.() };
        const res = route.stream
          ? await openStream(req.path, authorization)
          : await call(req.method, req.path, authorization, req.body);
        cells++;
        if (status >= 400) assertError(t, res, status, code!, what);
        else {
          t.equal(
            res.status,
            status,
            `${what}: status ${status} (got ${res.status}: ${res.text.slice(0, 200)})`,
          );
          if (route.stream)
            t.match(
              String(res.headers['content-type']),
              /^text\/event-stream/,
              `${what}: an event stream`,
            );
          route.check?.(t, res, cell);
        }
        if (route.name === 'POST /v1/auth/disable' && res.status === 200) {
          // Auth is off now: turn it back on for the cells and routes that follow.
          t.same((await call('POST', '/v1/auth/enable', undefined)).body, { enabled: true });
          continue;
        }
        const after = { store: await storeView(), extra: await route.view?.() };
        if (refused) {
          t.same(after, before, `${what}: nothing applied`);
          if (route.mutates) refusedWrites++;
        } else if (route.mutates) {
          t.ok(
            after.store.revision > before.store.revision,
            `${what}: a permitted write changes the store`,
          );
        }
      }
    });
  }
  t.test('counts', async (t) => {
    t.comment(
      `${routes.length} routes, ${cells} cells, ${refusedWrites} refused writes checked unapplied`,
    );
    t.equal(cells, routes.length * CELLS.length);
    t.ok(refusedWrites > 0);
  });
});
