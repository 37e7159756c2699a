/**
 * A rolling restart of a 3-member cluster of real processes under a steady
 * write+read load through the client library: each member in turn (a
 * follower, then the leader, then the last one) gets SIGTERM, must exit with
 * code 0, is started again on its data dir and waits until it has caught up.
 * The clients must see no error at all, every acknowledged write must read
 * back, and each restart must see hundreds of acknowledged writes. The time
 * without a leader is measured per restart by polling /v1/status of the
 * members; the figures are printed.
 *
 * The clients are what a careful user writes: the library's own failover and
 * retries, and writes that carry an Idempotency-Key (the library gives every
 * put one, the same on each retry), so a write whose outcome was ambiguous (a
 * connection cut after sending, a 504) is retried safely instead of blindly
 * or not at all.
 */
import t from 'tap';
import { Client } from '../../src/client/index.js';
import { status, waitUntil } from '../integration/http-ops.js';
import { ProcessCluster } from '../integration/process-cluster.js';

const CLIENTS = 6;
/** Each restart must see at least this many acknowledged writes (from SIGTERM to caught up, and a little after). */
const WRITES_PER_RESTART_FLOOR = 200;

interface Load {
  acked: Map<string, string>;
  /** Acknowledged writes, in order of acknowledgement (for per-restart counts). */
  ackCount: number;
  reads: number;
  errors: string[];
  stop: boolean;
}

/** One client's loop: put a fresh key, then read it back (linearizable), until told to stop. */
async function runClient(c: Client, id: number, load: Load): Promise<void> {
  for (let seq = 0; !load.stop && seq < 1_000_000; seq++) {
    const key = `roll/${id}/${seq}`;
    const value = `v${id}.${seq}`;
    try {
      await c.put(key, value);
      load.acked.set(key, value);
      load.ackCount++;
    } catch (err) {
      load.errors.push(`put ${key}: ${describe(err)}`);
      continue;
    }
    try {
      const got = await c.get(key);
      load.reads++;
      if (got.kv.value !== value)
        load.errors.push(`get ${key}: read ${got.kv.value}, expected ${value}`);
    } catch (err) {
      load.errors.push(`get ${key}: ${describe(err)}`);
    }
  }
}

/**
 * Counts the failed attempts the library retried behind the caller's back, by kind
 * (`503`, `504`, `refused`, `reset`...), by wrapping its per-attempt method. The
 * callers see none of them when the retries succeed; a 504 would mean a member gave
 * up on a write it had taken (the outcome unknown), which a graceful stop must not do.
 */
function countRetries(client: Client, retries: Map<string, number>): void {
  const transport = client.transport as unknown as {
    attempt: (
      ...args: unknown[]
    ) => Promise<{ ok: boolean; error?: { status: number; cause?: { code?: string } } }>;
  };
  const attempt = transport.attempt.bind(transport);
  transport.attempt = async (...args: unknown[]) => {
    const outcome = await attempt(...args);
    if (!outcome.ok) {
      const e = outcome.error;
      const kind = e?.status ? String(e.status) : (e?.cause?.code ?? 'network');
      retries.set(kind, (retries.get(kind) ?? 0) + 1);
    }
    return outcome;
  };
}

function describe(err: unknown): string {
  const e = err as { code?: string; status?: number; message?: string };
  return `${e.code ?? 'error'} (status ${e.status ?? '?'}): ${e.message ?? String(err)}`;
}

/**
 * Polls /v1/status of every running member until `done` and returns the longest
 * stretch, in ms, in which none answered as leader or named a leader other than the
 * member being stopped. A stopping leader closes its client port at once, so its
 * handoff counts as time without a leader (it holds writes then).
 * A round in which no member answered in time (a busy machine) says nothing either way.
 */
async function measureLeaderless(
  cluster: ProcessCluster,
  stoppingId: string,
  done: () => boolean,
): Promise<{ longestMs: number; polls: number }> {
  let longestMs = 0;
  let since: number | undefined;
  let polls = 0;
  for (; !done() && polls < 100_000; polls++) {
    const started = performance.now();
    const running = [0, 1, 2].filter((i) => cluster.running(i));
    const sts = await Promise.all(running.map((i) => status(cluster.url(i), 500)));
    // No member answered in time (a busy machine): this round says nothing either way.
    if (sts.every((s) => s === undefined)) {
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    // The leader may be too busy to answer in time: a member that names a leader other
    // than the one being stopped counts too (the stopping one is handing over).
    const present = sts.some(
      (s) => s?.role === 'leader' || (s?.leader != null && s.leader !== stoppingId),
    );
    if (present) {
      if (since !== undefined) longestMs = Math.max(longestMs, started - since);
      since = undefined;
    } else if (since === undefined) since = started;
    await new Promise((r) => setTimeout(r, 5));
  }
  if (since !== undefined) longestMs = Math.max(longestMs, performance.now() - since);
  return { longestMs: Math.round(longestMs), polls };
}

t.test('rolling restart under load: no client-visible error, exit code 0 each time', async (t) => {
  const cluster = await ProcessCluster.create(3, ['--log-level', 'info']);
  t.teardown(() => cluster.close());
  // Generous: three processes compiling TypeScript at once on a busy 2-core machine.
  await Promise.all([0, 1, 2].map((i) => cluster.start(i, 120_000)));
  let leader = await cluster.waitForLeader();
  const endpoints = [0, 1, 2].map((i) => cluster.url(i));
  const load: Load = { acked: new Map(), ackCount: 0, reads: 0, errors: [], stop: false };
  // Each client starts on a different member, so every member has clients to shed.
  const clients = Array.from(
    { length: CLIENTS },
    (_, k) => new Client({ endpoints: [...endpoints.slice(k % 3), ...endpoints.slice(0, k % 3)] }),
  );
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  const retries = new Map<string, number>();
  for (const c of clients) countRetries(c, retries);
  const running = clients.map((c, k) => runClient(c, k, load));
  await waitUntil('the load to start', () => (load.ackCount >= 100 ? true : undefined), 30_000);

  // A follower first, then the leader, then the last member.
  const follower = [0, 1, 2].find((i) => i !== leader)!;
  const order = [follower, leader, [0, 1, 2].find((i) => i !== leader && i !== follower)!];
  const figures: string[] = [];
  for (const i of order) {
    leader = await cluster.waitForLeader();
    const wasLeader = i === leader;
    const stoppingId = (await status(cluster.url(i), 2_000))?.id ?? '';
    const writesBefore = load.ackCount;
    let restarted = false;
    const leaderless = measureLeaderless(cluster, stoppingId, () => restarted);
    const t0 = performance.now();
    const proc = cluster.procs[i]!;
    t.ok(proc.signal('SIGTERM'), `SIGTERM to ${cluster.names[i]}`);
    const exit = await proc.waitExit(30_000);
    const exitMs = Math.round(performance.now() - t0);
    t.same(exit, { code: 0, signal: null }, `${cluster.names[i]} exits with code 0`);
    if (exit.code !== 0) t.comment(proc.stderr.slice(-4000), proc.stdout.slice(-4000));
    await cluster.start(i, 120_000);
    // Caught up: it has applied what the leader had committed when it came back.
    const target = await waitUntil(
      'the commit index of a leader',
      async () => {
        const sts = await Promise.all([0, 1, 2].map((j) => status(cluster.url(j), 1_000)));
        return sts.find((s) => s?.role === 'leader')?.commitIndex;
      },
      20_000,
    );
    await waitUntil(
      `${cluster.names[i]} to catch up`,
      async () => ((await status(cluster.url(i), 1_000))?.appliedIndex ?? 0) >= target || undefined,
      30_000,
    );
    // Some steady load with the member back, so the next restart starts from a full cluster.
    const backAt = load.ackCount;
    await waitUntil(
      'writes with every member up',
      () => (load.ackCount >= backAt + 50 ? true : undefined),
      30_000,
    );
    restarted = true;
    const { longestMs } = await leaderless;
    const writes = load.ackCount - writesBefore;
    const line =
      `${cluster.names[i]}${wasLeader ? ' (leader)' : ''}: exit ${exit.code} after ${exitMs} ms, ` +
      `${writes} acknowledged writes, ${load.errors.length} client errors so far ` +
      `(attempts retried so far: ${JSON.stringify(Object.fromEntries(retries))}), ` +
      `longest time without a leader ${longestMs} ms`;
    figures.push(line);
    t.comment(line);
    t.ok(
      writes >= WRITES_PER_RESTART_FLOOR,
      `at least ${WRITES_PER_RESTART_FLOOR} acknowledged writes (${writes})`,
    );
  }
  load.stop = true;
  await Promise.all(running);

  t.same(load.errors.slice(0, 20), [], 'no client saw an error');
  t.equal(
    retries.get('504') ?? 0,
    0,
    'no member answered 504 (outcome unknown) to a write it held',
  );
  // Every acknowledged write reads back, from one client, linearizably.
  const reader = new Client({ endpoints });
  t.teardown(() => reader.close());
  const stored = new Map<string, string>();
  for await (const kv of reader.listAll({ prefix: 'roll/' })) stored.set(kv.key, kv.value);
  let missing = 0;
  for (const [key, value] of load.acked) if (stored.get(key) !== value) missing++;
  t.equal(missing, 0, `every one of the ${load.acked.size} acknowledged writes reads back`);
  t.comment(
    `rolling restart: ${load.ackCount} acknowledged writes, ${load.reads} reads, ` +
      `${load.errors.length} client-visible errors`,
  );
  for (const line of figures) console.log(`# ${line}`);
  if (load.errors.length > 0 || missing > 0) t.comment(cluster.diagnostics());
  const changes = cluster.history.flatMap(({ name, proc }) =>
    proc.stdout
      .split('\n')
      .filter((l) => /raft state changed|leadership|shutting down|stopped|held/.test(l))
      .map((l) => `${name} ${l}`),
  );
  t.comment(changes.join('\n'));
});
