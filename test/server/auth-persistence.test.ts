/**
 * Issue 11 "Auth state survives restart, snapshot install and `raftkv restore`":
 * users, roles, the enabled flag and the signing key (a token issued before
 * still verifies) come back after (a) a restart on the same data dir, (b) a
 * snapshot install on a follower that was down while auth was set up, and
 * (c) a backup from GET /v1/snapshot restored with `raftkv restore` into a new
 * cluster; and permissions are still enforced after each.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type StartedNode, startNode } from '../../src/index.js';
import { assertError, http, type Json, type Method } from '../api/helpers.js';
import { clusterConfigs, startCluster } from '../integration/helpers.js';

const basic = (name: string, password: string) =>
  `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}`;
const ROOT = basic('root', 'rootpw');

const call = (url: string, method: Method, path: string, authorization?: string, body?: Json) =>
  http(url, method, path, {
    headers: authorization ? { authorization } : {},
    ...(body !== undefined ? { body } : {}),
  });

/** Bounded retries while a member (re)elects or catches up; the last answer is returned. */
async function settle(what: () => ReturnType<typeof call>, ok: (status: number) => boolean) {
  const deadline = Date.now() + 10_000;
  let last = await what().catch(() => undefined);
  while ((last === undefined || !ok(last.status)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    last = await what().catch(() => undefined);
  }
  if (last === undefined) throw new Error('no answer');
  return last;
}

/**
 * Roles app (readwrite kv app/) and users root, alice (app), bob (none); auth
 * enabled. Returns alice's and root's tokens.
 */
async function setUpAuth(t: Test, url: string): Promise<{ alice: string; root: string }> {
  const perms = [{ resource: 'kv', prefix: 'app/', access: 'readwrite' }];
  t.equal(
    (await call(url, 'PUT', '/v1/auth/roles/app', undefined, { permissions: perms })).status,
    201,
  );
  for (const [name, body] of [
    ['root', { password: 'rootpw', roles: ['root'] }],
    ['alice', { password: 'alicepw', roles: ['app'] }],
    ['bob', { password: 'bobpw' }],
  ] as const)
    t.equal((await call(url, 'PUT', `/v1/auth/users/${name}`, undefined, body)).status, 201, name);
  t.equal((await call(url, 'PUT', '/v1/kv/app/x', undefined, { value: 'before' })).status, 200);
  t.equal((await call(url, 'POST', '/v1/auth/enable')).status, 200);
  const token = async (name: string, password: string) => {
    const res = await call(url, 'POST', '/v1/auth/token', undefined, { name, password });
    t.equal(res.status, 200, `a token for ${name}`);
    return res.body.token as string;
  };
  return { alice: await token('alice', 'alicepw'), root: await token('root', 'rootpw') };
}

/** Everything setUpAuth made is there, the old token verifies, and permissions hold. */
async function checkAuth(t: Test, url: string, aliceToken: string, what: string): Promise<void> {
  const alice = `Bearer ${aliceToken}`;
  const status = await settle(
    () => call(url, 'GET', '/v1/auth/status'),
    (s) => s === 200,
  );
  t.same(status.body, { enabled: true }, `${what}: auth is still enabled`);
  assertError(
    t,
    await call(url, 'GET', '/v1/kv/app/x'),
    401,
    'unauthenticated',
    `${what}: anonymous`,
  );
  const users = await settle(
    () => call(url, 'GET', '/v1/auth/users', ROOT),
    (s) => s === 200,
  );
  t.same(
    users.body.users,
    [
      { name: 'alice', roles: ['app'] },
      { name: 'bob', roles: [] },
      { name: 'root', roles: ['root'] },
    ],
    `${what}: users and their roles`,
  );
  t.same(
    (await call(url, 'GET', '/v1/auth/roles/app', ROOT)).body,
    { name: 'app', permissions: [{ resource: 'kv', prefix: 'app/', access: 'readwrite' }] },
    `${what}: the role`,
  );
  t.equal(
    (await call(url, 'GET', '/v1/kv/app/x?consistency=serializable', alice)).body?.kv?.value,
    'before',
    `${what}: the token issued before still verifies`,
  );
  const put = await settle(
    () => call(url, 'PUT', '/v1/kv/app/after', alice, { value: what }),
    (s) => s === 200,
  );
  t.equal(put.status, 200, `${what}: alice writes inside her permission`);
  t.equal(
    (await call(url, 'GET', '/v1/kv/app/x', basic('alice', 'alicepw'))).status,
    200,
    `${what}: alice's password still works`,
  );
  assertError(
    t,
    await call(url, 'PUT', '/v1/kv/other/x', alice, { value: '1' }),
    403,
    'permission_denied',
    `${what}: alice outside her permission`,
  );
  assertError(
    t,
    await call(url, 'GET', '/v1/kv/app/x', basic('bob', 'bobpw')),
    403,
    'permission_denied',
    `${what}: bob has no permission`,
  );
  assertError(
    t,
    await call(url, 'GET', '/v1/auth/users', alice),
    403,
    'permission_denied',
    `${what}: users are root's`,
  );
  assertError(
    t,
    await call(url, 'GET', '/v1/kv/app/x', basic('bob', 'wrong')),
    401,
    'unauthenticated',
    `${what}: a wrong password`,
  );
  t.equal(
    (await call(url, 'GET', '/v1/kv/other/x', ROOT)).status,
    404,
    `${what}: nothing outside was written`,
  );
}

t.test('(a) a restart on the same data dir keeps auth', async (t) => {
  const c = await startCluster(1, { snapshotCount: 20, snapshotCatchUpEntries: 2 });
  t.teardown(() => c.close());
  await c.waitForLeader();
  const tokens = await setUpAuth(t, c.url(0));
  // Past the snapshot count, so the restart starts from a compacted log too.
  for (let i = 0; i < 30; i++)
    await call(c.url(0), 'PUT', `/v1/kv/app/fill-${i}`, `Bearer ${tokens.root}`, { value: 'f' });
  await c.stopNode(0);
  await c.restartNode(0);
  await c.waitForLeader();
  await checkAuth(t, c.url(0), tokens.alice, 'after a restart');
});

t.test('(b) a follower that was down gets auth from a snapshot install', async (t) => {
  const c = await startCluster(3, { snapshotCount: 40, snapshotCatchUpEntries: 5 });
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const lagging = (leader + 1) % 3;
  const other = (leader + 2) % 3;
  await c.stopNode(lagging);
  const tokens = await setUpAuth(t, c.url(other));
  for (let i = 0; i < 120; i++) {
    const w = await call(
      c.url(other),
      'PUT',
      `/v1/kv/app/fill-${i % 20}`,
      `Bearer ${tokens.root}`,
      {
        value: `${i}`,
      },
    );
    if (w.status !== 200) t.fail(`write ${i}: ${w.status} ${w.text}`);
  }
  const target = c.nodes[leader]!.node.statusSync().revision;
  await c.restartNode(lagging);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && c.nodes[lagging]!.node.statusSync().revision < target)
    await new Promise((r) => setTimeout(r, 25));
  const installed =
    (await c.nodes[lagging]!.node.metrics.snapshotsInstalled.get()).values[0]?.value ?? 0;
  t.ok(installed >= 1, `the follower installed ${installed} snapshot(s)`);
  t.ok(c.nodes[lagging]!.node.store.auth.enabled, 'its own state says auth is enabled');
  await checkAuth(t, c.url(lagging), tokens.alice, 'after a snapshot install');
  // And it survives that node's restart from what the install persisted.
  await c.stopNode(lagging);
  await c.restartNode(lagging);
  await checkAuth(t, c.url(lagging), tokens.alice, 'after the installed node restarts');
});

t.test(
  '(c) a backup restored with `raftkv restore` founds a cluster with the same auth',
  async (t) => {
    const a = await startCluster(1);
    t.teardown(() => a.close());
    await a.waitForLeader();
    const tokens = await setUpAuth(t, a.url(0));
    assertError(
      t,
      await call(a.url(0), 'GET', '/v1/snapshot', `Bearer ${tokens.alice}`),
      403,
      'permission_denied',
      'only root takes a backup',
    );
    assertError(t, await call(a.url(0), 'GET', '/v1/snapshot'), 401, 'unauthenticated');
    const res = await fetch(`${a.url(0)}/v1/snapshot`, { headers: { authorization: ROOT } });
    t.equal(res.status, 200);
    const bytes = new Uint8Array(await res.arrayBuffer());

    const dir = mkdtempSync(join(tmpdir(), 'raftkv-auth-restore-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'backup.snap');
    writeFileSync(file, bytes);
    const configs = await clusterConfigs(dir, ['r1', 'r2', 'r3']);
    const initialCluster = [...configs[0]!.initialCluster!].map(([n, u]) => `${n}=${u}`).join(',');
    for (const c of configs) {
      const out = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          'cmd/raftkv.ts',
          'restore',
          file,
          '--name',
          c.name,
          '--data-dir',
          c.dataDir,
          '--listen-client',
          c.listenClient,
          '--listen-peer',
          c.listenPeer,
          '--initial-cluster',
          initialCluster,
          '--log-level',
          'silent',
        ],
        { cwd: join(import.meta.dirname, '..', '..'), encoding: 'utf8', timeout: 60_000 },
      );
      t.equal(out.status, 0, `restore ${c.name}: ${out.stderr}`);
    }
    const nodes: StartedNode[] = [];
    t.teardown(() => Promise.all(nodes.map((n) => n.stop())));
    for (const c of configs) nodes.push(await startNode(c));
    for (const [i, node] of nodes.entries())
      await checkAuth(t, node.clientUrl, tokens.alice, `restored member r${i + 1}`);
    t.not(
      (await call(nodes[0]!.clientUrl, 'GET', '/v1/status', ROOT)).body.id,
      (await call(a.url(0), 'GET', '/v1/status', ROOT)).body.id,
      'a cluster of its own',
    );
  },
);
