/**
 * SIGKILL and restart of real raftkv processes under a load of reads, writes
 * and compare-and-swaps: the leader, then a follower, then all three at once.
 * Each phase lasts until it has done its work (hundreds of acknowledged writes
 * and answered reads while a node is down and after the restart), not for a
 * time. After each restart no acknowledged write may be missing (DESIGN.md:
 * "every acknowledged write survives any minority of nodes crashing, SIGKILL
 * of every node at once"), every node must converge to the same revision with
 * the same history and data, and the whole client history must be linearizable.
 * Runs with `npm run test:lifecycle` (restarting processes takes minutes here).
 */
import t, { type Test } from 'tap';
import { raftkvBundle } from '../support/raftkv-bundle.js';
import { assertLinearizable, KvLoad, type Work, type Write } from './fault-load.js';
import {
  call,
  getKey,
  mapLimit,
  type Outcome,
  seededRandom,
  sleep,
  waitUntil,
} from './http-ops.js';
import { ProcessCluster } from './process-cluster.js';
import { readHistory } from './sse.js';

const PREFIX = 'crash/';
const HOT_KEYS = Array.from({ length: 8 }, (_, i) => `${PREFIX}k${i}`);
const CLIENTS = 12;
/** Hard cap on operations per client, whatever the timing. */
const OPS_PER_CLIENT_MAX = 6_000;
/** The work each phase (a node down, or the cluster back) must see done. */
const PER_PHASE: Work = { ackedWrites: 200, reads: 100 };
/** Bound on one phase: a phase that does not reach its work in time fails. */
const PHASE_TIMEOUT_MS = 120_000;
const LEADER_TIMEOUT_MS = 20_000;
/** A restart replays the log; on a busy 2-core machine that has taken over 30 s. */
const START_TIMEOUT_MS = 60_000;
const CONVERGE_TIMEOUT_MS = 15_000;
/** The data the members must agree on after each phase: hundreds of revisions and keys. */
const HISTORY_MIN = 200;
const HISTORY_PATH = `/v1/watch/${encodeURIComponent(PREFIX)}?prefix=true`;

type Attempt = Write;

/** The keys a range read returns (serializable: the node's own copy), or undefined. */
async function getRange(url: string, query: string): Promise<unknown[] | undefined> {
  for (let i = 0; i < 20; i++) {
    const r = await call(url, `/v1/kv${query}`);
    if (r.kind === 'ok') return r.body.kvs ?? [];
    await sleep(100);
  }
  return undefined;
}

/** Retries a read a few times: right after a restart a node may still answer 503. */
async function readWithRetry(url: string, key: string, query: string): Promise<Outcome> {
  let r: Outcome = await getKey(url, key, query);
  for (let i = 0; i < 20 && r.kind !== 'ok' && !(r.kind === 'failed' && r.status === 404); i++) {
    await sleep(100);
    r = await getKey(url, key, query);
  }
  return r;
}

/**
 * No acknowledged write is missing: every key's linearizable value is its latest
 * acknowledged write or a later attempt, every acknowledged write is in every
 * node's history at its revision, and all nodes reach the same revision.
 */
async function verify(t: Test, c: ProcessCluster, load: KvLoad, phase: string) {
  const started = Date.now();
  const acked = load.acked();
  const attemptsMade = load.writes;
  const maxAcked = Math.max(0, ...acked.map((a) => a.revision!));
  const byKey = new Map<string, Attempt[]>();
  for (const a of attemptsMade) {
    const list = byKey.get(a.key) ?? [];
    list.push(a);
    byKey.set(a.key, list);
  }
  const problems: string[] = [];

  // 1. Each hot key, read linearizably through a rotating node (the fresh keys, written
  //    once each, are checked by the history and the point reads below).
  let k = 0;
  for (const key of HOT_KEYS) {
    const attempts = byKey.get(key) ?? [];
    const url = c.url(k++ % c.names.length);
    const latest = attempts
      .filter((a) => a.result === 'acked')
      .reduce<Attempt | undefined>((m, a) => (!m || a.revision! > m.revision! ? a : m), undefined);
    const r = await readWithRetry(url, key, '');
    if (r.kind !== 'ok') {
      if (latest) problems.push(`${key}: linearizable read failed (${JSON.stringify(r)})`);
      continue;
    }
    const kv = r.body.kv!;
    const origin = attempts.find((a) => a.value === kv.value);
    if (!origin) problems.push(`${key}: holds ${kv.value}, which no writer sent`);
    else if (origin.result === 'failed')
      problems.push(`${key}: holds ${kv.value}, a write that was answered as not applied`);
    if (latest && kv.modRevision < latest.revision!)
      problems.push(
        `${key}: read ${kv.value}@${kv.modRevision}, older than acked ${latest.value}@${latest.revision}`,
      );
    if (latest && kv.modRevision === latest.revision && kv.value !== latest.value)
      problems.push(`${key}: read ${kv.value}@${kv.modRevision}, acked ${latest.value} there`);
  }

  const readsMs = Date.now() - started;
  // 2. Every node converges to one revision (no writes are running now).
  const revisions = await waitUntil(
    `${phase}: every node at the same revision >= ${maxAcked}`,
    async () => {
      const sts = await c.statuses();
      if (sts.some((s) => s === undefined)) return undefined;
      const revs = sts.map((s) => s!.revision);
      return revs.every((r) => r === revs[0]) && revs[0]! >= maxAcked ? revs : undefined;
    },
    CONVERGE_TIMEOUT_MS,
    100,
  );

  const convergedMs = Date.now() - started;
  // 3. Every node's whole history (one watch replay each) is the same, has no gap (every
  //    write touches the prefix, so every revision is a change), and holds every acknowledged
  //    write at the revision it was acknowledged at.
  const finalRevision = revisions[0]!;
  const histories = await Promise.all(
    c.names.map((_, i) => readHistory(c.url(i), HISTORY_PATH, 1, finalRevision, 15_000)),
  );
  const reference = histories[0] ?? [];
  const sent = new Map(attemptsMade.map((a) => [`${a.key}\0${a.value}`, a]));
  histories.forEach((h, i) => {
    if (!h) problems.push(`${c.names[i]}: its history did not reach revision ${finalRevision}`);
    else if (JSON.stringify(h) !== JSON.stringify(reference))
      problems.push(`${c.names[i]}: its history differs from ${c.names[0]}'s`);
  });
  reference.forEach((ch, j) => {
    if (j > 0 && ch.revision !== reference[j - 1]!.revision + 1)
      problems.push(`history jumps from ${reference[j - 1]!.revision} to ${ch.revision}`);
    for (const e of ch.events) {
      const origin = sent.get(`${e.kv.key}\0${e.kv.value}`);
      if (e.type !== 'put' || !origin || origin.result === 'failed')
        problems.push(`revision ${ch.revision}: ${e.type} ${e.kv.key}=${e.kv.value} was not sent`);
    }
  });
  const atRevision = new Map(reference.map((ch) => [ch.revision, ch]));
  for (const a of acked) {
    const ch = atRevision.get(a.revision!);
    if (!ch?.events.some((e) => e.kv.key === a.key && e.kv.value === a.value))
      problems.push(`acked ${a.key}=${a.value}@${a.revision} is not in the history`);
  }
  // And a sample read straight from each node's MVCC store at the acknowledged revision.
  const sample = acked.filter((_, j) => j % Math.max(1, Math.floor(acked.length / 40)) === 0);
  const checks = sample.flatMap((a) => c.names.map((_, i) => ({ a, i })));
  await mapLimit(checks, 8, async ({ a, i }) => {
    const q = `?revision=${a.revision}&consistency=serializable&minRevision=${maxAcked}`;
    const r = await readWithRetry(c.url(i), a.key, q);
    const kv = r.kind === 'ok' ? r.body.kv : undefined;
    if (kv?.value !== a.value || kv?.modRevision !== a.revision) {
      problems.push(
        `${c.names[i]}: acked ${a.key}=${a.value}@${a.revision} but reads ` +
          (kv ? `${kv.value}@${kv.modRevision}` : JSON.stringify(r)),
      );
    }
  });

  // 4. And every node's current data under the prefix, read from its own copy, is the same.
  const ranges = await Promise.all(
    c.names.map((_, i) =>
      getRange(
        c.url(i),
        `?prefix=${encodeURIComponent(PREFIX)}&consistency=serializable&minRevision=${finalRevision}`,
      ),
    ),
  );
  ranges.forEach((r, i) => {
    if (JSON.stringify(r) !== JSON.stringify(ranges[0]))
      problems.push(`${c.names[i]}: its keys under ${PREFIX} differ from ${c.names[0]}'s`);
  });
  t.ok(
    reference.length >= HISTORY_MIN && (ranges[0]?.length ?? 0) >= HISTORY_MIN,
    `${phase}: the compared data is the load's own: ${reference.length} revisions, ` +
      `${ranges[0]?.length ?? 0} keys (at least ${HISTORY_MIN} each)`,
  );
  t.same(problems.slice(0, 20), [], `${phase}: no acknowledged write is missing`);
  t.comment(
    `${phase}: ${attemptsMade.length} writes so far, ${acked.length} acknowledged ` +
      `(all in ${histories.length} node histories of ${reference.length} revisions; ` +
      `${checks.length} point reads at their revision), ` +
      `${attemptsMade.filter((a) => a.result === 'unknown').length} unknown, ` +
      `${attemptsMade.filter((a) => a.result === 'failed').length} refused; revision ${revisions[0]}; ` +
      `checked in ${Date.now() - started} ms (linearizable reads done at ${readsMs}, ` +
      `converged at ${convergedMs})`,
  );
}

// Phases last until their work is done: on a busy 2-core machine that has taken minutes.
t.setTimeout(900_000);

t.test(
  'acknowledged writes survive SIGKILL of the leader, a follower, and every node',
  async (t) => {
    const seed = Number(process.env.RAFTKV_TEST_SEED ?? Date.now() % 1_000_000);
    t.comment(`seed ${seed} (replay with RAFTKV_TEST_SEED=${seed})`);
    // Bundled once: a restart then starts in seconds instead of compiling the sources again.
    const c = await ProcessCluster.create(3, [], { script: raftkvBundle() });
    t.teardown(() => c.close());
    const timings: string[] = [];
    const timed = async <T>(label: string, run: () => Promise<T>): Promise<T> => {
      const started = Date.now();
      try {
        return await run();
      } finally {
        timings.push(`${label} ${Date.now() - started} ms`);
      }
    };
    const restartAndWait = async (nodes: number[], label: string) => {
      await timed(`start ${label}`, () =>
        Promise.all(nodes.map((i) => c.start(i, START_TIMEOUT_MS))),
      );
      await timed('leader', () => c.waitForLeader(LEADER_TIMEOUT_MS));
    };
    const load = new KvLoad({
      url: (i) => c.url(i),
      nodeCount: c.names.length,
      random: seededRandom(seed),
      clients: CLIENTS,
      hotKeys: HOT_KEYS,
      ownPrefix: `${PREFIX}own/`,
      opsPerClientMax: OPS_PER_CLIENT_MAX,
    });
    const work = (phase: string, need = PER_PHASE) =>
      timed(phase, () => load.untilWork(t, phase, load.done(), need, PHASE_TIMEOUT_MS));
    try {
      await restartAndWait([0, 1, 2], 'all');

      // Phase 1: SIGKILL the leader mid-load; the other two carry on; restart it.
      load.start();
      await work('before the first fault', { ackedWrites: 50, reads: 20 });
      const leader = await c.waitForLeader(LEADER_TIMEOUT_MS);
      await c.kill(leader);
      t.comment(`killed leader ${c.names[leader]}`);
      await work(`while the old leader ${c.names[leader]} is down`);
      await restartAndWait([leader], 'old leader');
      await work('after the leader restarted');
      await load.stop();
      await timed('verify', () => verify(t, c, load, 'after SIGKILL of the leader'));

      // Phase 2: SIGKILL a follower mid-load, restart it.
      load.start();
      await work('before the second fault', { ackedWrites: 20, reads: 10 });
      const leader2 = await c.waitForLeader(LEADER_TIMEOUT_MS);
      const follower = (leader2 + 1) % c.names.length;
      await c.kill(follower);
      t.comment(`killed follower ${c.names[follower]}`);
      await work(`while the follower ${c.names[follower]} is down`);
      await restartAndWait([follower], 'follower');
      await work('after the follower restarted');
      await load.stop();
      await timed('verify', () => verify(t, c, load, 'after SIGKILL of a follower'));

      // Phase 3: SIGKILL all three at once mid-load, restart all.
      load.start();
      await work('before the third fault', { ackedWrites: 20, reads: 10 });
      await Promise.all(c.names.map((_, i) => c.kill(i)));
      t.comment('killed every node');
      await sleep(300);
      await restartAndWait([0, 1, 2], 'all');
      await work('after every node restarted');
      await load.stop();
      await timed('verify', () => verify(t, c, load, 'after SIGKILL of every node'));
      t.comment(`load: ${load.summary()}`);

      // Reads and writes through every crash: the whole client history is linearizable.
      assertLinearizable(t, load, 'linearizability through the crashes');
    } finally {
      t.comment(`timings: ${timings.join(', ')}`);
      if (!t.passing()) t.comment(c.diagnostics());
    }
  },
);
