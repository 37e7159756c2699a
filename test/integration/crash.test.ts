/**
 * SIGKILL and restart of real raftkv processes under a write load: the leader,
 * then a follower, then all three at once. After each restart no acknowledged
 * write may be missing (DESIGN.md: "every acknowledged write survives any
 * minority of nodes crashing, SIGKILL of every node at once"), and every node
 * must converge to the same revision with the same history.
 */
import t, { type Test } from 'tap';
import {
  getKey,
  mapLimit,
  type Outcome,
  putKey,
  seededRandom,
  sleep,
  waitUntil,
} from './http-ops.js';
import { ProcessCluster } from './process-cluster.js';
import { readHistory } from './sse.js';

const KEY_COUNT = 12;
const WRITERS = 3;
/** Hard cap on writes per load phase, whatever the timing. */
const WRITES_PER_PHASE_MAX = 4_000;
const LEADER_TIMEOUT_MS = 20_000;
const CONVERGE_TIMEOUT_MS = 15_000;
const HISTORY_PATH = `/v1/watch/${encodeURIComponent('crash/')}?prefix=true`;

interface Attempt {
  key: string;
  value: string;
  result: 'acked' | 'unknown' | 'failed';
  /** The revision the write was acknowledged at. */
  revision?: number;
}

/** Writers that PUT unique values to a few keys through random nodes, recording every outcome. */
class WriteLoad {
  readonly attempts: Attempt[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private seq = 0;

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly random: () => number,
  ) {}

  start(): void {
    this.running = true;
    const cap = this.attempts.length + WRITES_PER_PHASE_MAX;
    this.loops = Array.from({ length: WRITERS }, (_, w) => this.loop(w, cap));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(writer: number, cap: number): Promise<void> {
    while (this.running && this.attempts.length < cap) {
      const node = Math.floor(this.random() * this.cluster.names.length);
      const key = `crash/k${Math.floor(this.random() * KEY_COUNT)}`;
      const value = `w${writer}-${this.seq++}`;
      const attempt: Attempt = { key, value, result: 'unknown' };
      this.attempts.push(attempt);
      const r: Outcome = await putKey(this.cluster.url(node), key, value);
      if (r.kind === 'ok' && r.status === 200) {
        attempt.result = 'acked';
        attempt.revision = r.body.revision;
        if (r.body.kv?.value !== value || r.body.kv?.modRevision !== r.body.revision) {
          throw new Error(`a put answered ${JSON.stringify(r.body)} for ${key}=${value}`);
        }
      } else if (r.kind === 'failed') {
        attempt.result = 'failed';
        await sleep(20); // a dead or leaderless node answers at once: do not spin
      }
    }
  }

  acked(): Attempt[] {
    return this.attempts.filter((a) => a.result === 'acked');
  }
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
async function verify(t: Test, c: ProcessCluster, load: WriteLoad, phase: string) {
  const started = Date.now();
  const acked = load.acked();
  const maxAcked = Math.max(0, ...acked.map((a) => a.revision!));
  const byKey = new Map<string, Attempt[]>();
  for (const a of load.attempts) {
    const list = byKey.get(a.key) ?? [];
    list.push(a);
    byKey.set(a.key, list);
  }
  const problems: string[] = [];

  // 1. Each key, read linearizably through a rotating node.
  let k = 0;
  for (const [key, attempts] of byKey) {
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
  histories.forEach((h, i) => {
    if (!h) problems.push(`${c.names[i]}: its history did not reach revision ${finalRevision}`);
    else if (JSON.stringify(h) !== JSON.stringify(reference))
      problems.push(`${c.names[i]}: its history differs from ${c.names[0]}'s`);
  });
  reference.forEach((ch, j) => {
    if (j > 0 && ch.revision !== reference[j - 1]!.revision + 1)
      problems.push(`history jumps from ${reference[j - 1]!.revision} to ${ch.revision}`);
    for (const e of ch.events) {
      const origin = load.attempts.find((a) => a.key === e.kv.key && a.value === e.kv.value);
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

  t.same(problems.slice(0, 20), [], `${phase}: no acknowledged write is missing`);
  t.comment(
    `${phase}: ${load.attempts.length} writes so far, ${acked.length} acknowledged ` +
      `(all in ${histories.length} node histories of ${reference.length} revisions; ` +
      `${checks.length} point reads at their revision), ` +
      `${load.attempts.filter((a) => a.result === 'unknown').length} unknown, ` +
      `${load.attempts.filter((a) => a.result === 'failed').length} refused; revision ${revisions[0]}; ` +
      `checked in ${Date.now() - started} ms (linearizable reads done at ${readsMs}, ` +
      `converged at ${convergedMs})`,
  );
}

t.test(
  'acknowledged writes survive SIGKILL of the leader, a follower, and every node',
  async (t) => {
    const seed = Number(process.env.RAFTKV_TEST_SEED ?? Date.now() % 1_000_000);
    t.comment(`seed ${seed} (replay with RAFTKV_TEST_SEED=${seed})`);
    const c = await ProcessCluster.create(3);
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
      await timed(`start ${label}`, () => Promise.all(nodes.map((i) => c.start(i))));
      await timed('leader', () => c.waitForLeader(LEADER_TIMEOUT_MS));
    };
    try {
      await restartAndWait([0, 1, 2], 'all');
      const load = new WriteLoad(c, seededRandom(seed));
      const ackedSince = (from: number) =>
        load.attempts.slice(from).filter((a) => a.result === 'acked').length;

      // Phase 1: SIGKILL the leader mid-load, restart it.
      load.start();
      await sleep(1_000);
      const leader = await c.waitForLeader(LEADER_TIMEOUT_MS);
      await c.kill(leader);
      t.comment(`killed leader ${c.names[leader]}`);
      await sleep(1_000);
      await restartAndWait([leader], 'old leader');
      let mark = load.attempts.length;
      await sleep(700);
      await load.stop();
      t.ok(ackedSince(mark) > 0, 'writes are acknowledged after the leader restarted');
      await timed('verify', () => verify(t, c, load, 'after SIGKILL of the leader'));

      // Phase 2: SIGKILL a follower mid-load, restart it.
      load.start();
      await sleep(1_000);
      const leader2 = await c.waitForLeader(LEADER_TIMEOUT_MS);
      const follower = (leader2 + 1) % c.names.length;
      await c.kill(follower);
      t.comment(`killed follower ${c.names[follower]}`);
      mark = load.attempts.length;
      await sleep(1_000);
      t.ok(ackedSince(mark) > 0, 'writes are acknowledged while a follower is down');
      await restartAndWait([follower], 'follower');
      await sleep(700);
      await load.stop();
      await timed('verify', () => verify(t, c, load, 'after SIGKILL of a follower'));

      // Phase 3: SIGKILL all three at once mid-load, restart all.
      load.start();
      await sleep(1_000);
      await Promise.all(c.names.map((_, i) => c.kill(i)));
      t.comment('killed every node');
      await sleep(300);
      await restartAndWait([0, 1, 2], 'all');
      mark = load.attempts.length;
      await sleep(700);
      await load.stop();
      t.ok(ackedSince(mark) > 0, 'writes are acknowledged after every node restarted');
      await timed('verify', () => verify(t, c, load, 'after SIGKILL of every node'));
    } finally {
      t.comment(`timings: ${timings.join(', ')}`);
      if (!t.passing()) t.comment(c.diagnostics());
    }
  },
);
