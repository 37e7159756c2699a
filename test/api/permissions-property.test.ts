/**
 * API.md "What needs which permission", as a property: a user can never read
 * or change a key (or registry, lock or election name) outside its
 * permissions, through any mix of txn ops (puts, gets, deletes, prefix ones,
 * compares, fences), prefix reads, watches, the registry, locks and elections.
 *
 * Each run gives one user a random role (a few permissions on random prefixes
 * over a tiny alphabet, random access), lets root seed random keys, names,
 * lock holders and election candidates, then sends random requests as the
 * user. The oracle, from API.md alone:
 * - a request is refused (403 permission_denied, and root's view of the store
 *   unchanged: same revision) iff some key or name it can touch is outside the
 *   permissions; a range or prefix needs a permission whose prefix is a prefix
 *   of the requested prefix;
 * - an allowed request is never 401/403; whatever it returns (keys, entries,
 *   leaders, watch events) lies inside the user's read permissions; whatever
 *   it changed in root's view of the KV and registry lies inside its write
 *   permissions.
 * One node serves every run; root deletes every key and revokes the run's
 * leases between runs.
 */
import fc from 'fast-check';
import t from 'tap';
import { http, type Json, openSse, type Reply, startSingleNode } from './helpers.js';

type Resource = 'kv' | 'registry' | 'locks' | 'elections';
type Access = 'read' | 'write' | 'readwrite';
interface Permission {
  resource: Resource;
  prefix: string;
  access: Access;
}
interface Need {
  resource: Resource;
  key: string;
  access: 'read' | 'write';
}

/** API.md: a permission covers the keys that start with its prefix; a range needs one covering its prefix. */
function permits(perms: readonly Permission[], need: Need): boolean {
  return perms.some(
    (p) =>
      p.resource === need.resource &&
      need.key.startsWith(p.prefix) &&
      (p.access === 'readwrite' || p.access === need.access),
  );
}

// ---- generators: a tiny alphabet so that prefixes, keys and names overlap often

const str = (units: string[], minLength: number, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...units), minLength, maxLength });
const kvKey = str(['a', 'b', '/'], 1, 3);
const kvPrefix = fc.oneof(
  { arbitrary: fc.constant(''), weight: 1 },
  { arbitrary: kvKey, weight: 5 },
);
/** Lock and election names have no '/'. */
const coordName = str(['a', 'b'], 1, 2);
const coordPrefix = fc.oneof(
  { arbitrary: fc.constant(''), weight: 1 },
  { arbitrary: coordName, weight: 5 },
);
const access = fc.oneof(fc.constant<Access>('read'), fc.constant<Access>('write'), {
  arbitrary: fc.constant<Access>('readwrite'),
  weight: 2,
});
const permission: fc.Arbitrary<Permission> = fc.oneof(
  fc.record({ resource: fc.constantFrom<Resource>('kv', 'registry'), prefix: kvPrefix, access }),
  fc.record({
    resource: fc.constantFrom<Resource>('locks', 'elections'),
    prefix: coordPrefix,
    access,
  }),
);

type Compare =
  | { key: string; target: 'version' | 'value'; op: '==' | '>' | '!='; value: number | string }
  | { lock: string; token: number };
type Op =
  | { op: 'put'; key: string; value: string }
  | { op: 'get' | 'delete'; key: string; prefix?: boolean };
type Request =
  | { t: 'get'; key: string }
  | { t: 'range'; prefix: string }
  | { t: 'put'; key: string; guard: 'none' | 'prevValue' | 'prevRevision' }
  | { t: 'delete'; key: string; prefix: boolean; guard: boolean }
  | { t: 'txn'; compare: Compare[]; success: Op[]; failure: Op[] }
  | { t: 'watch'; key: string; prefix: boolean }
  | { t: 'regPut' | 'regGet'; name: string }
  | { t: 'regDelete'; name: string; withLease: boolean }
  | { t: 'regList' | 'regWatch'; prefix: string }
  | { t: 'lock' | 'campaign' | 'leader' | 'electionWatch'; name: string }
  | { t: 'unlock' | 'proclaim' | 'resign'; name: string; whose: 'own' | 'root' };

/**
 * Keys (or names) of `resources`: half of them anywhere in the alphabet, half
 * just under one of the role's prefixes (so that allowed requests are as common
 * as refused ones, and the boundary between them is where most keys fall).
 */
function near(
  perms: readonly Permission[],
  resources: readonly Resource[],
  units: string[],
  minLength: number,
): fc.Arbitrary<string> {
  const anywhere = str(units, minLength, 3);
  const prefixes = [
    ...new Set(
      perms
        .filter((p) => resources.includes(p.resource))
        .map((p) => p.prefix)
        .filter((p) => [...p].every((c) => units.includes(c))),
    ),
  ];
  if (prefixes.length === 0) return anywhere;
  const inside = fc
    .tuple(fc.constantFrom(...prefixes), str(units, 0, 2))
    .map(([p, rest]) => p + rest)
    .filter((k) => k.length >= minLength);
  return fc.oneof({ arbitrary: anywhere, weight: 1 }, { arbitrary: inside, weight: 2 });
}

/** The requests a run sends, biased towards the role's own prefixes. */
function requestsFor(perms: readonly Permission[]): fc.Arbitrary<Request[]> {
  const kvKey = near(perms, ['kv'], ['a', 'b', '/'], 1);
  const kvPrefix = near(perms, ['kv'], ['a', 'b', '/'], 0);
  const regName = near(perms, ['registry'], ['a', 'b', '/'], 1);
  const regPrefix = near(perms, ['registry'], ['a', 'b', '/'], 0);
  const lockName = near(perms, ['locks'], ['a', 'b'], 1);
  const electionNameArb = near(perms, ['elections'], ['a', 'b'], 1);
  const compare: fc.Arbitrary<Compare> = fc.oneof(
    fc.record({
      key: kvKey,
      target: fc.constant('version' as const),
      op: fc.constantFrom('==' as const, '>' as const),
      value: fc.constant(0),
    }),
    fc.record({
      key: kvKey,
      target: fc.constant('value' as const),
      op: fc.constant('!=' as const),
      value: fc.constant('zz'),
    }),
    fc.record({ lock: lockName, token: fc.integer({ min: 1, max: 40 }) }),
  );
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constant('put' as const), key: kvKey, value: fc.constantFrom('u1', 'u2') }),
    fc.record({ op: fc.constantFrom('get' as const, 'delete' as const), key: kvKey }),
    fc.record({
      op: fc.constantFrom('get' as const, 'delete' as const),
      key: kvPrefix,
      prefix: fc.constant(true),
    }),
  );
  const request: fc.Arbitrary<Request> = fc.oneof(
    fc.record({ t: fc.constant('get' as const), key: kvKey }),
    fc.record({ t: fc.constant('range' as const), prefix: kvPrefix }),
    fc.record({
      t: fc.constant('put' as const),
      key: kvKey,
      guard: fc.constantFrom('none' as const, 'prevValue' as const, 'prevRevision' as const),
    }),
    fc.record({
      t: fc.constant('delete' as const),
      key: kvKey,
      prefix: fc.constant(false),
      guard: fc.boolean(),
    }),
    fc.record({
      t: fc.constant('delete' as const),
      key: kvPrefix,
      prefix: fc.constant(true),
      guard: fc.constant(false),
    }),
    {
      arbitrary: fc.record({
        t: fc.constant('txn' as const),
        compare: fc.array(compare, { maxLength: 2 }),
        success: fc.array(op, { maxLength: 3 }),
        failure: fc.array(op, { maxLength: 1 }),
      }),
      weight: 4,
    },
    fc.record({ t: fc.constant('watch' as const), key: kvKey, prefix: fc.constant(false) }),
    fc.record({ t: fc.constant('watch' as const), key: kvPrefix, prefix: fc.constant(true) }),
    fc.record({ t: fc.constantFrom('regPut' as const, 'regGet' as const), name: regName }),
    fc.record({ t: fc.constant('regDelete' as const), name: regName, withLease: fc.boolean() }),
    fc.record({ t: fc.constantFrom('regList' as const, 'regWatch' as const), prefix: regPrefix }),
    fc.record({ t: fc.constant('lock' as const), name: lockName }),
    fc.record({
      t: fc.constantFrom('campaign' as const, 'leader' as const, 'electionWatch' as const),
      name: electionNameArb,
    }),
    fc.record({
      t: fc.constant('unlock' as const),
      name: lockName,
      whose: fc.constantFrom('own' as const, 'root' as const),
    }),
    fc.record({
      t: fc.constantFrom('proclaim' as const, 'resign' as const),
      name: electionNameArb,
      whose: fc.constantFrom('own' as const, 'root' as const),
    }),
  );
  return fc.array(request, { minLength: 2, maxLength: 8 });
}

/** What root sets up before the user's requests, so reads, fences and waits have something to find. */
function fixturesFor(perms: readonly Permission[]) {
  return fc.record({
    keys: fc.uniqueArray(near(perms, ['kv'], ['a', 'b', '/'], 1), { minLength: 3, maxLength: 6 }),
    names: fc.uniqueArray(near(perms, ['registry'], ['a', 'b', '/'], 1), {
      minLength: 1,
      maxLength: 3,
    }),
    locks: fc.uniqueArray(near(perms, ['locks'], ['a', 'b'], 1), { maxLength: 2 }),
    candidates: fc.uniqueArray(near(perms, ['elections'], ['a', 'b'], 1), {
      minLength: 1,
      maxLength: 2,
    }),
  });
}

/** A role: at least one KV permission (the richest requests are KV ones), then any. */
const role = fc
  .tuple(
    fc.record({ resource: fc.constant<Resource>('kv'), prefix: kvPrefix, access }),
    fc.array(permission, { minLength: 1, maxLength: 4 }),
  )
  .map(([first, rest]) => [first, ...rest]);

const run = role.chain((permissions) =>
  fc.record({
    permissions: fc.constant(permissions),
    fixtures: fixturesFor(permissions),
    requests: requestsFor(permissions),
  }),
);

/** The needs API.md gives a request. */
function needsOf(r: Request): Need[] {
  const kv = (key: string, a: 'read' | 'write'): Need => ({ resource: 'kv', key, access: a });
  switch (r.t) {
    case 'get':
      return [kv(r.key, 'read')];
    case 'range':
      return [kv(r.prefix, 'read')];
    case 'put':
    case 'delete': {
      // A guard (prevValue, prevRevision) is a compare, and a txn's compares need read.
      const guarded = r.t === 'put' ? r.guard !== 'none' : r.guard;
      return guarded ? [kv(r.key, 'write'), kv(r.key, 'read')] : [kv(r.key, 'write')];
    }
    case 'txn':
      return [
        ...r.compare.map(
          (c): Need =>
            'lock' in c ? { resource: 'locks', key: c.lock, access: 'read' } : kv(c.key, 'read'),
        ),
        ...[...r.success, ...r.failure].map((o) => kv(o.key, o.op === 'get' ? 'read' : 'write')),
      ];
    case 'watch':
      return [kv(r.key, 'read')];
    case 'regPut':
    case 'regDelete':
      return [{ resource: 'registry', key: r.name, access: 'write' }];
    case 'regGet':
      return [{ resource: 'registry', key: r.name, access: 'read' }];
    case 'regList':
    case 'regWatch':
      return [{ resource: 'registry', key: r.prefix, access: 'read' }];
    case 'lock':
    case 'unlock':
      return [{ resource: 'locks', key: r.name, access: 'write' }];
    case 'campaign':
    case 'proclaim':
    case 'resign':
      return [{ resource: 'elections', key: r.name, access: 'write' }];
    case 'leader':
    case 'electionWatch':
      return [{ resource: 'elections', key: r.name, access: 'read' }];
  }
}

const USER = 'prop-user';
const PASSWORD = 'prop-user-pw';
const ROOT = `Basic ${Buffer.from('root:root-pw').toString('base64')}`;
const AS_USER = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
const LOCK = '\u0000lock/';
const ELECTION = '\u0000election/';
const enc = encodeURIComponent;

t.test('permissions: no mix of requests reaches outside a random role', async (t) => {
  const node = await startSingleNode(5000);
  t.teardown(() => node.close());
  const url = node.url;
  const call = (
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    auth: string,
    body?: Json,
  ) =>
    http(url, method, path, {
      headers: { authorization: auth },
      ...(body !== undefined ? { body } : {}),
    });
  const must = async (
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    auth: string,
    body?: Json,
  ) => {
    const res = await call(method, path, auth, body);
    if (res.status >= 300) throw new Error(`setup ${method} ${path}: ${res.status} ${res.text}`);
    return res.body;
  };

  await must('PUT', '/v1/auth/roles/prop', ROOT, { permissions: [] });
  await must('PUT', '/v1/auth/users/root', ROOT, { password: 'root-pw', roles: ['root'] });
  await must('PUT', `/v1/auth/users/${USER}`, ROOT, { password: PASSWORD, roles: ['prop'] });
  await must('POST', '/v1/auth/enable', ROOT);

  const revision = async (): Promise<number> => (await must('GET', '/v1/status', ROOT)).revision;
  /** Root's view of every user key and registry entry: key → modRevision and value. */
  const view = async (): Promise<Map<string, string>> => {
    const out = new Map<string, string>();
    for (const kv of (await must('GET', '/v1/kv', ROOT)).kvs)
      out.set(`kv:${kv.key}`, `${kv.modRevision}:${kv.value}`);
    for (const e of (await must('GET', '/v1/registry', ROOT)).entries)
      out.set(`registry:${e.name}`, `${e.modRevision}:${e.value}`);
    return out;
  };

  const counts = { allowed: 0, refused: 0, runs: 0, returned: 0, changed: 0 };
  const byType: Record<string, { allowed: number; refused: number }> = {};

  /** Events of a stream until it has been quiet for a moment (history replays at once). */
  const drain = async (path: string): Promise<Json[] | Reply> => {
    const stream = await openSse(url, path, { authorization: AS_USER });
    try {
      if (stream.status !== 200) {
        // An error answer is JSON: read it through a plain request for its body.
        const res = await call('GET', path, AS_USER);
        return res;
      }
      const events: Json[] = [];
      for (;;) {
        let e: Awaited<ReturnType<typeof stream.next>>;
        try {
          e = await stream.next(150);
        } catch {
          return events;
        }
        if (e === undefined) return events;
        if (e.event === 'change') events.push(e.data);
      }
    } finally {
      stream.close();
    }
  };

  const property = fc.asyncProperty(run, async ({ permissions, fixtures, requests }) => {
    counts.runs++;
    await must('PUT', '/v1/auth/roles/prop', ROOT, { permissions });
    const rootLease: string = (await must('POST', '/v1/leases', ROOT, { ttl: 600 })).id;
    const userLease: string = (await must('POST', '/v1/leases', AS_USER, { ttl: 600 })).id;
    try {
      const start = await revision();
      for (const key of fixtures.keys)
        await must('PUT', `/v1/kv/${enc(key)}`, ROOT, { value: 'root' });
      for (const name of fixtures.names)
        await must('PUT', `/v1/registry/${enc(name)}`, ROOT, { value: 'root', lease: rootLease });
      for (const name of fixtures.locks)
        await must('POST', `/v1/locks/${name}`, ROOT, { lease: rootLease, timeoutMs: 1000 });
      for (const name of fixtures.candidates)
        await must('POST', `/v1/elections/${name}/campaign`, ROOT, {
          lease: rootLease,
          value: 'root',
          timeoutMs: 1000,
        });

      const readable = (n: Need['resource'], key: string) =>
        permits(permissions, { resource: n, key, access: 'read' });
      for (const r of requests) {
        const needs = needsOf(r);
        const refuse = needs.some((n) => !permits(permissions, n));
        const what = `${JSON.stringify(r)} with ${JSON.stringify(permissions)}`;
        const before = await view();
        const revBefore = await revision();
        const returned: { resource: Resource; key: string }[] = [];
        let res: Reply;
        const holderKey = (prefix: string, name: string) =>
          `${prefix}${name}/${r.t !== 'unlock' && r.t !== 'proclaim' && r.t !== 'resign' ? userLease : r.whose === 'own' ? userLease : rootLease}`;
        switch (r.t) {
          case 'get':
            res = await call('GET', `/v1/kv/${enc(r.key)}`, AS_USER);
            if (res.status === 200) returned.push({ resource: 'kv', key: res.body.kv.key });
            break;
          case 'range':
            res = await call('GET', `/v1/kv?prefix=${enc(r.prefix)}`, AS_USER);
            if (res.status === 200)
              for (const kv of res.body.kvs) returned.push({ resource: 'kv', key: kv.key });
            break;
          case 'put':
            res = await call('PUT', `/v1/kv/${enc(r.key)}`, AS_USER, {
              value: 'user',
              ...(r.guard === 'prevValue' ? { prevValue: 'zz' } : {}),
              ...(r.guard === 'prevRevision' ? { prevRevision: 0 } : {}),
            });
            // A false guard's 409 shows the key's current value: a read.
            if (res.status === 409 && res.body.kv)
              returned.push({ resource: 'kv', key: res.body.kv.key });
            break;
          case 'delete':
            res = await call(
              'DELETE',
              r.prefix
                ? `/v1/kv/${enc(r.key)}?prefix=true`
                : `/v1/kv/${enc(r.key)}${r.guard ? '?prevRevision=0' : ''}`,
              AS_USER,
            );
            if (res.status === 409 && res.body.kv)
              returned.push({ resource: 'kv', key: res.body.kv.key });
            // A delete's prevKvs are not counted as a read: API.md gives them to a write (see the report).
            break;
          case 'txn':
            res = await call('POST', '/v1/txn', AS_USER, {
              compare: r.compare,
              success: r.success,
              failure: r.failure,
            });
            if (res.status === 200)
              for (const result of res.body.results)
                if (result.op === 'get')
                  for (const kv of result.kvs) returned.push({ resource: 'kv', key: kv.key });
            break;
          case 'watch': {
            const path = r.prefix
              ? r.key === ''
                ? `/v1/watch?prefix=true&fromRevision=${start}`
                : `/v1/watch/${enc(r.key)}?prefix=true&fromRevision=${start}`
              : `/v1/watch/${enc(r.key)}?fromRevision=${start}`;
            const got = await drain(path);
            if (Array.isArray(got)) {
              res = { status: 200, headers: {}, body: got, text: '' };
              for (const c of got)
                for (const e of c.events) returned.push({ resource: 'kv', key: e.kv.key });
            } else res = got;
            break;
          }
          case 'regPut':
            res = await call('PUT', `/v1/registry/${enc(r.name)}`, AS_USER, {
              value: 'user',
              lease: userLease,
            });
            break;
          case 'regGet':
            res = await call('GET', `/v1/registry/${enc(r.name)}`, AS_USER);
            if (res.status === 200) returned.push({ resource: 'registry', key: res.body.name });
            break;
          case 'regDelete':
            res = await call(
              'DELETE',
              `/v1/registry/${enc(r.name)}${r.withLease ? `?lease=${userLease}` : ''}`,
              AS_USER,
            );
            break;
          case 'regList':
            res = await call('GET', `/v1/registry?prefix=${enc(r.prefix)}`, AS_USER);
            if (res.status === 200)
              for (const e of res.body.entries)
                returned.push({ resource: 'registry', key: e.name });
            break;
          case 'regWatch': {
            const got = await drain(
              `/v1/registry?prefix=${enc(r.prefix)}&watch=true&fromRevision=${start}`,
            );
            if (Array.isArray(got)) {
              res = { status: 200, headers: {}, body: got, text: '' };
              for (const c of got)
                for (const e of c.events)
                  returned.push({ resource: 'registry', key: e.entry.name });
            } else res = got;
            break;
          }
          case 'lock':
            res = await call('POST', `/v1/locks/${r.name}`, AS_USER, {
              lease: userLease,
              timeoutMs: 100,
            });
            break;
          case 'unlock':
            res = await call(
              'DELETE',
              `/v1/locks/${r.name}?key=${enc(holderKey(LOCK, r.name))}`,
              AS_USER,
            );
            break;
          case 'campaign':
            res = await call('POST', `/v1/elections/${r.name}/campaign`, AS_USER, {
              lease: userLease,
              value: 'user',
              timeoutMs: 100,
            });
            break;
          case 'leader':
            res = await call('GET', `/v1/elections/${r.name}`, AS_USER);
            if (res.status === 200) returned.push(electionName(res.body.leader.key));
            break;
          case 'electionWatch': {
            const got = await drain(`/v1/elections/${r.name}?watch=true`);
            if (Array.isArray(got)) {
              res = { status: 200, headers: {}, body: got, text: '' };
              for (const c of got) if (c.leader) returned.push(electionName(c.leader.key));
            } else res = got;
            break;
          }
          case 'proclaim':
            res = await call('POST', `/v1/elections/${r.name}/proclaim`, AS_USER, {
              key: holderKey(ELECTION, r.name),
              value: 'user',
            });
            break;
          case 'resign':
            res = await call(
              'DELETE',
              `/v1/elections/${r.name}/leader?key=${enc(holderKey(ELECTION, r.name))}`,
              AS_USER,
            );
            break;
        }
        byType[r.t] ??= { allowed: 0, refused: 0 };
        const tally = byType[r.t]!;
        if (refuse) {
          counts.refused++;
          tally.refused++;
          if (res.status !== 403 || res.body?.error?.code !== 'permission_denied')
            throw new Error(
              `must be refused with 403 permission_denied: ${what}\n→ ${res.status} ${res.text.slice(0, 300)}`,
            );
          const revAfter = await revision();
          if (revAfter !== revBefore)
            throw new Error(
              `refused, yet the store moved from ${revBefore} to ${revAfter}: ${what}`,
            );
        } else {
          counts.allowed++;
          tally.allowed++;
          if (res.status === 401 || res.status === 403 || res.status >= 500)
            throw new Error(`must be allowed: ${what}\n→ ${res.status} ${res.text.slice(0, 300)}`);
          counts.returned += returned.length;
          const outside = returned.filter((x) => !readable(x.resource, x.key));
          if (outside.length > 0)
            throw new Error(
              `returned outside the read permissions: ${JSON.stringify(outside)} for ${what}`,
            );
          const after = await view();
          const changed = [...new Set([...before.keys(), ...after.keys()])].filter(
            (k) => before.get(k) !== after.get(k),
          );
          counts.changed += changed.length;
          const unwritable = changed.filter((k) => {
            const colon = k.indexOf(':');
            const resource = k.slice(0, colon) as Resource;
            return !permits(permissions, { resource, key: k.slice(colon + 1), access: 'write' });
          });
          if (unwritable.length > 0)
            throw new Error(
              `changed outside the write permissions: ${unwritable.join(', ')} by ${what}`,
            );
        }
      }
    } finally {
      // Reset for the next run: the leases take their names, lock holders and candidates with them.
      await must('DELETE', `/v1/leases/${userLease}`, ROOT);
      await must('DELETE', `/v1/leases/${rootLease}`, ROOT);
      await must('DELETE', '/v1/kv/?prefix=true', ROOT);
    }
  });

  const started = Date.now();
  await fc.assert(property, { seed: 20261202, numRuns: 100 });
  t.comment(
    `${counts.runs} runs, ${counts.allowed} allowed and ${counts.refused} refused requests checked in ${Date.now() - started} ms; allowed requests returned ${counts.returned} keys/names and changed ${counts.changed}, all inside the role`,
  );
  t.comment(
    Object.entries(byType)
      .map(([k, v]) => `${k}: ${v.allowed} allowed / ${v.refused} refused`)
      .join('; '),
  );
  t.ok(counts.allowed > 0, 'some requests were allowed');
  t.ok(counts.refused > 0, 'some requests were refused');
  t.ok(counts.returned > 0, 'allowed reads returned something to check');
  t.ok(counts.changed > 0, 'allowed writes changed something to check');
  for (const [type, tally] of Object.entries(byType))
    t.ok(tally.allowed > 0 && tally.refused > 0, `${type}: both allowed and refused were seen`);
});

/** The election name of a candidate key `\0election/<name>/<lease>`. */
function electionName(key: string): { resource: Resource; key: string } {
  if (!key.startsWith(ELECTION)) throw new Error(`not an election key: ${JSON.stringify(key)}`);
  const rest = key.slice(ELECTION.length);
  return { resource: 'elections', key: rest.slice(0, rest.indexOf('/')) };
}
