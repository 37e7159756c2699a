/**
 * A disk that fills under a running member (issue 13 item 7): three raftkv
 * processes, n3's data dir on an 8 MB tmpfs, n3 the leader. Clients write
 * until n3's disk is full. Pinned: n3 stops with exit code 1 and says "disk full" (stderr and
 * log); every write a client got 200 for is readable from n1 and n2; n1 and n2
 * go on acknowledging hundreds of writes; and once space is freed (the tmpfs
 * grown) n3 starts again on the same data dir and catches up.
 *
 * Mounting needs root (CAP_SYS_ADMIN): without it the test is skipped, saying so.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { call, mapLimit, putKey, status, waitUntil } from '../integration/http-ops.js';
import { ProcessCluster } from '../integration/process-cluster.js';

const TMPFS_SIZE = '8m';
const VALUE_BYTES = 3_000;
const WRITERS = 6;
/** Acknowledged writes the two survivors must take after n3 stopped. */
const WRITES_AFTER_FAILURE = 400;
const FILL_LIMIT_MS = 180_000;
const FULL = 2; // n3

function tryMount(dir: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE}`, 'tmpfs', dir], {
      stdio: 'pipe',
    });
    return undefined;
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return stderr || String(err);
  }
}

/** Why a tmpfs cannot be mounted here, or undefined when it can (tried on a scratch dir). */
function cannotMount(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-mount-probe-'));
  try {
    const error = tryMount(dir);
    if (error === undefined) execFileSync('umount', [dir], { stdio: 'pipe' });
    return error;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function unmount(dir: string): void {
  for (let i = 0; i < 20; i++) {
    try {
      execFileSync('umount', [dir], { stdio: 'pipe' });
      return;
    } catch {
      execFileSync('sleep', ['0.2']);
    }
  }
  // Still busy: detach it now, the kernel frees it once nothing uses it.
  execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
}

/** Every key under `prefix` on member `url` with its value, read locally (serializable). */
async function listAll(url: string, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let after = '';
  for (let page = 0; page < 1_000; page++) {
    const q = `prefix=${encodeURIComponent(prefix)}&limit=500&consistency=serializable${after ? `&after=${encodeURIComponent(after)}` : ''}`;
    const r = await call(url, `/v1/kv?${q}`, {}, 20_000);
    if (r.kind !== 'ok') throw new Error(`listing ${url}: ${r.kind} ${JSON.stringify(r)}`);
    const kvs = r.body.kvs as { key: string; value: string }[];
    for (const kv of kvs) out.set(kv.key, kv.value);
    if (!r.body.more || kvs.length === 0) return out;
    after = kvs[kvs.length - 1]!.key;
  }
  throw new Error('listing did not end');
}

const mountError = cannotMount();
const skip =
  mountError === undefined
    ? false
    : `mounting a tmpfs needs root (CAP_SYS_ADMIN), so no small disk to fill: ${mountError}`;

// The whole file may take minutes on a loaded machine (starts, the fill, the catch-up).
t.setTimeout(600_000);

t.test(
  'a member whose disk fills stops; nothing acknowledged is lost; it rejoins',
  { skip },
  async (t) => {
    const c = await ProcessCluster.create(3);
    const mountPoint = join(c.dir, c.names[FULL]!);
    mkdirSync(mountPoint, { recursive: true });
    const error = tryMount(mountPoint);
    if (error !== undefined) throw new Error(`mounting the tmpfs failed: ${error}`);
    t.teardown(async () => {
      await Promise.all(c.history.map(({ proc }) => proc.kill('SIGKILL').catch(() => undefined)));
      unmount(mountPoint);
      await c.close();
    });
    // Generous: the machine these run on is shared, and three starts at once can be slow.
    await Promise.all(c.names.map((_, i) => c.start(i, 120_000)));
    await c.waitForLeader();
    // n3 leads when its disk fills: the hardest case (its own copy must not count before it is
    // stored, and the others must elect a new leader and go on).
    const n3Id = (await status(c.url(FULL), 5_000))!.id;
    await waitUntil(
      'n3 to lead',
      async () => {
        if ((await status(c.url(FULL)))?.role === 'leader') return true;
        await call(c.url(0), '/v1/cluster/leader', { method: 'POST', body: { to: n3Id } }, 20_000);
        return (await status(c.url(FULL)))?.role === 'leader' ? true : undefined;
      },
      60_000,
      500,
    );
    const roleBefore = (await status(c.url(FULL)))?.role;
    t.equal(roleBefore, 'leader', 'n3 leads as the writes begin');

    const acked = new Map<string, string>();
    let ackedAfterFailure = 0;
    let failedAtMs: number | undefined;
    let attempts = 0;
    const startMs = Date.now();
    const writer = async (w: number) => {
      for (let n = 0; n < 100_000; n++) {
        const enough = failedAtMs !== undefined && ackedAfterFailure >= WRITES_AFTER_FAILURE;
        if (enough || Date.now() - startMs > FILL_LIMIT_MS) return;
        // Round robin over the members that run; n3's writes go in too while it is up.
        const targets = [0, 1, 2].filter((i) => c.running(i));
        const target = targets[(w + n) % targets.length]!;
        const key = `fill/${w}/${n}`;
        // Random, so that LevelDB's compression (snappy) cannot shrink it.
        const value = `${key}:${randomBytes((VALUE_BYTES * 3) / 4).toString('base64')}`;
        const startedAfterFailure = failedAtMs !== undefined;
        attempts++;
        const r = await putKey(c.url(target), key, value);
        if (r.kind === 'ok') {
          acked.set(key, value);
          if (startedAfterFailure) ackedAfterFailure++;
        }
      }
    };
    const watcher = (async () => {
      const exit = await Promise.race([
        c.procs[FULL]!.exited,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), FILL_LIMIT_MS).unref()),
      ]);
      if (exit) failedAtMs = Date.now();
    })();
    await Promise.all([...Array.from({ length: WRITERS }, (_, w) => writer(w)), watcher]);

    const full = c.procs[FULL]!;
    t.ok(failedAtMs !== undefined, `n3 stopped when its disk filled (${attempts} writes sent)`);
    if (failedAtMs === undefined) {
      t.comment(c.diagnostics());
      return;
    }
    const ackedBeforeFailure = acked.size - ackedAfterFailure;
    t.comment(
      `n3 (${roleBefore} before) stopped after ${((failedAtMs - startMs) / 1000).toFixed(1)} s; ` +
        `${ackedBeforeFailure} writes acknowledged before, ${ackedAfterFailure} after; ${attempts} sent`,
    );
    t.same(full.exit, { code: 1, signal: null }, 'n3 exits with code 1');
    t.match(
      full.stderr,
      /^raftkv: disk full: .* in data dir .*n3 failed \(.*No space left on device\): free space in .*n3/m,
      'stderr says the disk is full and what to do',
    );
    t.match(full.stderr, /it never acknowledges a write it could not store/);
    t.match(full.stdout, /"reason":"fatal".*disk full/, 'so does its log (stopping, reason fatal)');
    t.ok(
      ackedBeforeFailure > 300,
      `hundreds of writes acknowledged before (${ackedBeforeFailure})`,
    );
    t.ok(
      ackedAfterFailure >= WRITES_AFTER_FAILURE,
      `n1 and n2 carry on: ${ackedAfterFailure} writes acknowledged after n3 stopped`,
    );

    // Every acknowledged write is on both survivors.
    await c.waitForLeader();
    const leaderStatus = await waitUntil(
      'a survivor to report its commit',
      async () => (await c.statuses()).find((s) => s?.role === 'leader'),
      20_000,
    );
    for (const i of [0, 1]) {
      await waitUntil(
        `${c.names[i]} to apply what the leader committed`,
        async () =>
          (await status(c.url(i)))!.appliedIndex >= leaderStatus.commitIndex ? true : undefined,
        30_000,
      );
      const stored = await listAll(c.url(i), 'fill/');
      const missing = [...acked].filter(([k, v]) => stored.get(k) !== v).map(([k]) => k);
      t.same(missing.slice(0, 10), [], `${c.names[i]} holds all ${acked.size} acknowledged writes`);
    }

    // Free space (grow the tmpfs) and start n3 again on the same data dir: it catches up.
    execFileSync('mount', ['-o', 'remount,size=256m', mountPoint], { stdio: 'pipe' });
    await c.start(FULL, 120_000);
    const commit = await waitUntil(
      'a leader after n3 started again',
      async () => (await c.statuses()).find((s) => s?.role === 'leader')?.commitIndex,
      30_000,
    );
    await waitUntil(
      'n3 to catch up',
      async () => ((await status(c.url(FULL)))!.appliedIndex >= commit ? true : undefined),
      60_000,
    );
    const onN3 = await listAll(c.url(FULL), 'fill/');
    const missingOnN3 = [...acked].filter(([k, v]) => onN3.get(k) !== v).map(([k]) => k);
    t.same(
      missingOnN3.slice(0, 10),
      [],
      `n3 rejoined and holds all ${acked.size} acknowledged writes`,
    );
    const after = await mapLimit([...Array(50).keys()], 5, (n) =>
      putKey(c.url(FULL), `rejoined/${n}`, `v${n}`),
    );
    t.equal(after.filter((r) => r.kind === 'ok').length, 50, 'writes through n3 succeed again');
    if (!t.passing()) t.comment(c.diagnostics());
  },
);
