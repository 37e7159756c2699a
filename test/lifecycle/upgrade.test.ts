/**
 * A rolling upgrade on real processes (README "Upgrades and the compatibility
 * promise"): three members at 0.1.0 under a steady write load through the
 * client library are restarted one at a time as 0.2.0 (SIGTERM, then the new
 * build on the same data dir). 0.2.0 is this source tree bundled with
 * `__RAFTKV_VERSION__` defined (test/support/raftkv-bundle.ts): it knows one
 * more command, `sync` (POST /v1/sync).
 *
 * Pinned: until the last member is upgraded the cluster version stays 0.1.0
 * and sync is refused (409 cluster_version_too_old) on an upgraded member;
 * after it, the cluster version is 0.2.0 on every member and sync works; no
 * acknowledged write is lost. Then the rollback limit: a member restarted as
 * 0.1.0 after a sync entry it has not applied stops with "upgrade this member"
 * and exit code 3, and goes on once it runs 0.2.0 again.
 */
import t from 'tap';
import { Client, isRaftkvError } from '../../src/client/index.js';
import { EXIT_UPGRADE_NEEDED } from '../../src/server/exit-codes.js';
import { call, status, waitUntil } from '../integration/http-ops.js';
import { cleanEnv, ProcessCluster, RaftkvProcess } from '../integration/process-cluster.js';
import { raftkvBundle } from '../support/raftkv-bundle.js';

const OLD = '0.1.0';
const NEW = '0.2.0';
const WRITERS = 4;
/** Each member's upgrade (SIGTERM, start at the new version, and after) must see this many acknowledged writes. */
const WRITES_PER_UPGRADE = 200;

/** Starts member i of `cluster` running `script`, on its data dir, and waits until it serves. */
async function startAs(cluster: ProcessCluster, i: number, script: string): Promise<RaftkvProcess> {
  const proc = new RaftkvProcess(cluster.args(i), { script, env: cleanEnv({ coverage: false }) });
  cluster.procs[i] = proc;
  cluster.history.push({ name: cluster.names[i]!, proc });
  await waitUntil(
    `${cluster.names[i]} to serve /v1/status`,
    async () => {
      if (!proc.running) throw new Error(`exited ${JSON.stringify(proc.exit)}: ${proc.stderr}`);
      return status(cluster.url(i), 500);
    },
    30_000,
  );
  return proc;
}

/** Every running member's view: its clusterVersion, and the versions in its member table. */
async function versionViews(cluster: ProcessCluster, members: number[]) {
  return Promise.all(
    members.map(async (i) => {
      const st = await call(cluster.url(i), '/v1/status');
      const ms = await call(cluster.url(i), '/v1/cluster/members');
      if (st.kind !== 'ok' || ms.kind !== 'ok') return undefined;
      const table = ms.body.members as { name: string; version: string | null }[];
      return {
        clusterVersion: st.body.clusterVersion as string,
        versions: Object.fromEntries(table.map((m) => [m.name, m.version])),
      };
    }),
  );
}

/** Waits until every member in `members` shows `expected` versions and clusterVersion. */
async function waitForVersions(
  cluster: ProcessCluster,
  members: number[],
  expected: Record<string, string>,
  clusterVersion: string,
) {
  return waitUntil(
    `versions ${JSON.stringify(expected)}, cluster version ${clusterVersion}`,
    async () => {
      const views = await versionViews(cluster, members);
      const ok = views.every(
        (v) =>
          v !== undefined &&
          v.clusterVersion === clusterVersion &&
          JSON.stringify(v.versions) === JSON.stringify(expected),
      );
      return ok ? views : undefined;
    },
    20_000,
  );
}

t.test('a rolling upgrade from 0.1.0 to 0.2.0 under load', async (t) => {
  const oldBuild = raftkvBundle(); // this build: 0.1.0
  const newBuild = raftkvBundle(NEW);
  const cluster = await ProcessCluster.create(3);
  t.teardown(() => cluster.close());
  try {
    await Promise.all(cluster.names.map((_, i) => startAs(cluster, i, oldBuild)));
    await cluster.waitForLeader();
    const all = [0, 1, 2];
    await waitForVersions(cluster, all, { n1: OLD, n2: OLD, n3: OLD }, OLD);

    // ---- the load: WRITERS loops of puts through the client library, each key written once
    const client = new Client({ endpoints: all.map((i) => cluster.url(i)), timeoutMs: 5_000 });
    t.teardown(() => client.close());
    const acked = new Map<string, string>();
    const errors = new Map<string, number>();
    let loading = true;
    t.teardown(() => {
      loading = false; // also when the test failed half-way
    });
    const loadStartMs = Date.now();
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let n = 0; loading && n < 1_000_000 && Date.now() - loadStartMs < 180_000; n++) {
        const key = `load/w${w}/${n}`;
        try {
          await client.put(key, `v${n}`);
          acked.set(key, `v${n}`);
        } catch (err) {
          const code = isRaftkvError(err) ? err.code : String((err as Error).name);
          errors.set(code, (errors.get(code) ?? 0) + 1);
        }
      }
    });

    // ---- one member at a time: SIGTERM, start the new build on the same data dir
    const restartMs: number[] = [];
    const exitCodes: (number | string)[] = [];
    const versions: Record<string, string> = { n1: OLD, n2: OLD, n3: OLD };
    for (const i of all) {
      const name = cluster.names[i]!;
      const before = acked.size;
      await waitUntil(
        'writes to flow',
        () => (acked.size > before + 50 ? true : undefined),
        20_000,
      );
      const startMs = Date.now();
      const exit = await cluster.procs[i]!.kill('SIGTERM', 15_000);
      // Graceful shutdown is not this test's subject: the exit is reported, not pinned.
      exitCodes.push(exit.code ?? exit.signal ?? 'none');
      t.not(exit.code, EXIT_UPGRADE_NEEDED, `${name} stopped at ${OLD}, not for an upgrade`);
      await startAs(cluster, i, newBuild);
      restartMs.push(Date.now() - startMs);
      versions[name] = NEW;
      const upgraded = await waitUntil(
        `${WRITES_PER_UPGRADE} writes acknowledged across ${name}'s upgrade`,
        () => (acked.size - before >= WRITES_PER_UPGRADE ? acked.size - before : undefined),
        60_000,
      ).catch(() => acked.size - before);
      t.ok(
        upgraded >= WRITES_PER_UPGRADE,
        `${upgraded} writes acknowledged across ${name}'s upgrade (at least ${WRITES_PER_UPGRADE})`,
      );
      const last = i === all.length - 1;
      const views = await waitForVersions(cluster, all, versions, last ? NEW : OLD);
      t.ok(views, `${name} runs ${NEW}; every member sees it; cluster version ${last ? NEW : OLD}`);
      const sync = await call(cluster.url(i), '/v1/sync', { method: 'POST' });
      if (!last) {
        t.equal(sync.kind, 'failed', `before the last upgrade sync is refused on ${name}`);
        if (sync.kind === 'failed') {
          t.equal(sync.status, 409);
          t.equal(sync.body?.error?.code, 'cluster_version_too_old');
          t.match(
            sync.body?.error?.message,
            /needs cluster version 0\.2\.0; the cluster version is 0\.1\.0/,
          );
        }
      } else {
        for (const j of all) {
          const ackedBefore = acked.size; // each acknowledged put is a revision of its own
          const r = await call(cluster.url(j), '/v1/sync', { method: 'POST' });
          t.equal(r.kind, 'ok', `after the last upgrade sync works on ${cluster.names[j]}`);
          if (r.kind === 'ok')
            t.ok(
              (r.body.revision ?? 0) >= ackedBefore,
              'its revision covers every acknowledged put',
            );
        }
      }
    }
    const ackedBeforeSync = acked.size; // each acknowledged put is a revision of its own
    const synced = await client.sync();
    t.ok(
      synced.revision >= ackedBeforeSync,
      'and through the client library, at a revision that covers every acknowledged put',
    );
    const moreThan = acked.size + 50;
    await waitUntil(
      'writes to flow at 0.2.0',
      () => (acked.size > moreThan ? true : undefined),
      20_000,
    );
    loading = false;
    await Promise.all(writers);
    const loadMs = Date.now() - loadStartMs;

    // ---- no acknowledged write lost: read every one back (linearizable reads)
    let lost = 0;
    for (const [key, value] of acked) {
      const got = await client.get(key);
      if (got.kv?.value !== value) lost++;
    }
    t.equal(lost, 0, `all ${acked.size} acknowledged writes read back`);
    for (const i of all) t.ok(cluster.procs[i]!.running, `${cluster.names[i]} still runs`);
    const errorText = [...errors].map(([code, n]) => `${code} ×${n}`).join(', ') || 'none';
    t.comment(
      `upgrade under load: ${acked.size} writes acknowledged in ${loadMs} ms by ${WRITERS} writers; ` +
        `client-visible errors: ${errorText}; SIGTERM → serving again at ${NEW}: ${restartMs.join(', ')} ms ` +
        `(exit codes at SIGTERM: ${exitCodes.join(', ')})`,
    );

    // ---- the rollback limit: n3 back on 0.1.0 meets a sync entry it cannot apply
    const n3 = 2;
    const exit = await cluster.procs[n3]!.kill('SIGTERM', 15_000);
    t.strictSame(exit, { code: 0, signal: null });
    const sync = await call(cluster.url(0), '/v1/sync', { method: 'POST' });
    t.equal(sync.kind, 'ok', 'n3 still counts as 0.2.0 while it is down: sync is proposed');
    const rolledBack = new RaftkvProcess(cluster.args(n3), {
      script: oldBuild,
      env: cleanEnv({ coverage: false }),
    });
    cluster.procs[n3] = rolledBack;
    cluster.history.push({ name: 'n3', proc: rolledBack });
    const stopped = await rolledBack.waitExit(30_000);
    t.strictSame(stopped, { code: EXIT_UPGRADE_NEEDED, signal: null }, 'exit code 3');
    t.match(
      rolledBack.stderr,
      /raftkv: upgrade this member: entry \d+ needs a newer raftkv \(command type "sync"\); it runs raftkv 0\.1\.0/,
    );
    t.match(
      rolledBack.stdout,
      /"level":"fatal".*"index":\d+.*"msg":"upgrade this member: entry \d+ needs a newer raftkv/,
    );
    t.match(rolledBack.stdout, /"event":"stopping","reason":"upgrade_needed","exitCode":3/);
    // Upgraded again, it applies the entry and catches up.
    await startAs(cluster, n3, newBuild);
    await waitForVersions(cluster, all, { n1: NEW, n2: NEW, n3: NEW }, NEW);
    const target = (await status(cluster.url(0)))?.appliedIndex ?? Number.MAX_SAFE_INTEGER;
    const after = await waitUntil(
      'n3 to apply past the sync entry',
      async () => {
        const me = await status(cluster.url(n3));
        return me && me.appliedIndex >= target ? me : undefined;
      },
      20_000,
    );
    t.ok(after, 'n3 at 0.2.0 goes on');
  } catch (err) {
    t.comment(cluster.diagnostics());
    throw err;
  }
});
