/**
 * Network partitions through the transports' fault filters, on an in-process
 * 3-node cluster over real HTTP: concurrent clients keep reading, writing and
 * compare-and-swapping while the leader is isolated, a minority is cut off and
 * a link fails one way, each fault kept on until hundreds of writes were
 * acknowledged and reads answered; afterwards no acknowledged write is
 * missing, every node holds the same data (the hundreds of keys the clients
 * wrote), and the client history is linearizable. Runs with
 * `npm run test:lifecycle` (about a minute here).
 */
import t, { type Test } from 'tap';
import type { FaultFilter } from '../../src/transport/index.js';
import { assertLinearizable, KvLoad, type Work, type Write } from './fault-load.js';
import { startCluster, type TestCluster } from './helpers.js';
import {
  call,
  getKey,
  type Kv,
  kvValue,
  mapLimit,
  putKey,
  revisionOf,
  seededRandom,
  waitUntil,
} from './http-ops.js';

const PREFIX = 'part/';
const HOT_KEYS = Array.from({ length: 6 }, (_, i) => `${PREFIX}hot${i}`);
const CLIENTS = 12;
/** Hard cap on operations per client, whatever the timing. */
const OPS_PER_CLIENT_MAX = 5_000;
/** The work each fault phase must see done while the fault is on. */
const PER_FAULT: Work = { ackedWrites: 200, reads: 100 };
/** And right after healing, before the next fault. */
const AFTER_HEALING: Work = { ackedWrites: 30, reads: 10 };
/** Bound on one phase: a phase that does not reach its work in time fails. */
const PHASE_TIMEOUT_MS = 120_000;
/** The data every member must hold, identical, at the end: hundreds of keys. */
const COMPARED_MIN = 200;

const nodeIds = (c: TestCluster) => c.nodes.map((s) => s!.node.id);
/** Filters act on the sender's side: a rule must be on every node's filter to cut a link both ways. */
const everyFilter = (c: TestCluster, rule: (f: FaultFilter) => unknown) => {
  for (const f of c.filters) rule(f);
};
const healAll = (c: TestCluster) => everyFilter(c, (f) => f.heal());

/**
 * Waits until every node has applied the same index and revision, then reads
 * `prefix` from each with a serializable read (its own copy, no leader
 * involved) and compares them. Returns the revision and what n1 holds.
 */
async function checkConverged(
  t: Test,
  c: TestCluster,
  what: string,
  prefix: string,
): Promise<{ revision: number; kvs: Kv[] }> {
  const revision = await waitUntil(
    `${what}: every node at the same applied index and revision`,
    () => {
      const sts = c.nodes.map((s) => s!.node.statusSync());
      const same = sts.every(
        (s) =>
          s.appliedIndex === sts[0]!.appliedIndex &&
          s.revision === sts[0]!.revision &&
          s.commitIndex === s.appliedIndex,
      );
      return same ? sts[0]!.revision : undefined;
    },
    10_000,
  );
  const ranges = await Promise.all(
    c.nodes.map((_, i) =>
      call(
        c.url(i),
        `/v1/kv?prefix=${encodeURIComponent(prefix)}&consistency=serializable&minRevision=${revision}`,
      ),
    ),
  );
  const views = ranges.map((r) => (r.kind === 'ok' ? (r.body.kvs ?? []) : r));
  for (let i = 1; i < views.length; i++)
    t.same(views[i], views[0], `${what}: n${i + 1} holds the same keys and values as n1`);
  const kvs = Array.isArray(views[0]) ? views[0] : [];
  return { revision, kvs };
}

// Phases last until their work is done: on a busy 2-core machine that has taken minutes.
t.setTimeout(600_000);

t.test(
  'clients stay linearizable and lose no acknowledged write through isolation, partitions and one-way links',
  async (t) => {
    const seed = Number(process.env.RAFTKV_TEST_SEED ?? Date.now() % 1_000_000);
    t.comment(`seed ${seed} (replay with RAFTKV_TEST_SEED=${seed})`);
    const c = await startCluster(3);
    t.teardown(() => c.close());
    await c.waitForLeader(20_000);
    const ids = nodeIds(c);

    const load = new KvLoad({
      url: (i) => c.url(i),
      nodeCount: 3,
      random: seededRandom(seed),
      clients: CLIENTS,
      hotKeys: HOT_KEYS,
      ownPrefix: `${PREFIX}own/`,
      opsPerClientMax: OPS_PER_CLIENT_MAX,
    });

    // Election safety (Raft §5.2), sampled every 10 ms: at most one leader per term.
    const leaderOfTerm = new Map<number, Set<string>>();
    const sampler = setInterval(() => {
      for (const s of c.nodes) {
        const st = s?.node.statusSync();
        if (st?.role !== 'leader') continue;
        const set = leaderOfTerm.get(st.term) ?? new Set<string>();
        set.add(st.id);
        leaderOfTerm.set(st.term, set);
      }
    }, 10);
    const started = Date.now();
    const faults: string[] = [];
    /** Keeps a fault on until its phase has done PER_FAULT work, then heals and lets the cluster recover. */
    const underFault = async (what: string, apply: () => void) => {
      const since = load.done();
      apply();
      faults.push(what);
      try {
        await load.untilWork(t, `during ${what}`, since, PER_FAULT, PHASE_TIMEOUT_MS);
      } finally {
        healAll(c);
      }
      await load.untilWork(
        t,
        `after healing ${what}`,
        load.done(),
        AFTER_HEALING,
        PHASE_TIMEOUT_MS,
      );
    };
    load.start();
    try {
      await load.untilWork(t, 'before the faults', load.done(), AFTER_HEALING, PHASE_TIMEOUT_MS);
      // 1. Isolate the leader.
      const l1 = await c.waitForLeader(20_000);
      await underFault(`isolate leader n${l1 + 1}`, () =>
        everyFilter(c, (f) => f.isolate(ids[l1]!)),
      );
      // 2. A minority partition: one follower cut off from the other two.
      const l2 = await c.waitForLeader(20_000);
      const f2 = (l2 + 1) % 3;
      await underFault(`partition n${f2 + 1} | rest (leader n${l2 + 1})`, () =>
        everyFilter(c, (f) =>
          f.partition(
            [ids[f2]!],
            ids.filter((_, i) => i !== f2),
          ),
        ),
      );
      // 3. A one-way link failure: the leader cannot reach one follower, which still reaches it.
      const l3 = await c.waitForLeader(20_000);
      const f3 = (l3 + 2) % 3;
      await underFault(`one-way n${l3 + 1} -> n${f3 + 1} cut (leader n${l3 + 1})`, () =>
        everyFilter(c, (f) => f.oneWay(ids[l3]!, ids[f3]!)),
      );
    } finally {
      healAll(c);
      await load.stop();
      clearInterval(sampler);
    }
    const twoLeaders = [...leaderOfTerm].filter(([, set]) => set.size > 1);
    t.same(twoLeaders, [], `one leader per term (terms ${[...leaderOfTerm.keys()].join(', ')})`);
    t.comment(`faults: ${faults.join('; ')}`);
    t.comment(`${Date.now() - started} ms of load: ${load.summary()}`);

    await c.waitForLeader(20_000);
    const { revision, kvs } = await checkConverged(t, c, 'after healing', PREFIX);
    t.ok(
      kvs.length >= COMPARED_MIN,
      `the compared data is the test's own: ${kvs.length} keys under ${PREFIX} (at least ${COMPARED_MIN})`,
    );
    const writes = load.writes;
    const acked = load.acked();

    // What the nodes agree on is what the clients wrote: each key's value is one that was
    // sent and not refused, and every acknowledged fresh key is there with its value.
    const held = new Map(kvs.map((kv) => [kv.key, kv]));
    const sent = new Map(writes.map((w) => [`${w.key}\0${w.value}`, w]));
    const strangers = kvs.filter((kv) => {
      const w = sent.get(`${kv.key}\0${kv.value}`);
      return !w || w.result === 'failed';
    });
    t.same(strangers.slice(0, 20), [], 'every key holds a value a client sent and was not refused');
    const ownMissing = acked
      .filter((w) => w.key.startsWith(`${PREFIX}own/`))
      .filter(
        (w) => held.get(w.key)?.value !== w.value || held.get(w.key)?.modRevision !== w.revision,
      )
      .map((w) => `${w.key}=${w.value}@${w.revision}`);
    t.same(ownMissing.slice(0, 20), [], 'every acknowledged fresh key is held by every node');

    // Every acknowledged write is in every node's history at its revision.
    const missing: string[] = [];
    await mapLimit(
      acked.flatMap((w) => [0, 1, 2].map((i) => ({ w, i }))),
      16,
      async ({ w, i }) => {
        const r = await getKey(
          c.url(i),
          w.key,
          `?revision=${w.revision}&consistency=serializable&minRevision=${revision}`,
        );
        const kv = r.kind === 'ok' ? r.body.kv : undefined;
        if (kv?.value !== w.value || kv?.modRevision !== w.revision)
          missing.push(`n${i + 1}: ${w.key}=${w.value}@${w.revision}: ${JSON.stringify(r)}`);
      },
    );
    t.same(
      missing.slice(0, 20),
      [],
      `every acknowledged write (${acked.length}) is in every node at its revision`,
    );

    // The latest value of each hot key is its latest acknowledged write or a later attempt.
    for (const key of HOT_KEYS) {
      const r = await getKey(c.url(0), key);
      const latest = acked
        .filter((w) => w.key === key)
        .reduce<Write | undefined>((m, w) => (!m || w.revision! > m.revision! ? w : m), undefined);
      if (!latest) continue;
      const kv = r.kind === 'ok' ? r.body.kv : undefined;
      t.ok(kv && kv.modRevision >= latest.revision!, `${key} is at or after its last acked write`);
    }

    // The whole history, checked per key; a checker that gives up fails the test.
    assertLinearizable(t, load, 'linearizability');
  },
);

t.test(
  'an isolated leader steps down, the majority elects a new one, and the old one forwards after healing',
  async (t) => {
    const c = await startCluster(3);
    t.teardown(() => c.close());
    const old = await c.waitForLeader(20_000);
    const ids = nodeIds(c);
    const oldNode = c.nodes[old]!.node;
    const oldTerm = oldNode.statusSync().term;
    const before = await putKey(c.url(old), 'iso/before', 'v0');
    t.equal(before.status, 200, 'a write before the fault');

    everyFilter(c, (f) => f.isolate(ids[old]!));
    // Proposed by the cut-off leader, so it can never commit: never 200.
    const doomed = putKey(c.url(old), 'iso/doomed', 'never');

    await waitUntil(
      'the isolated leader to step down',
      () => (oldNode.statusSync().role !== 'leader' ? true : undefined),
      10_000,
    );
    t.pass(`n${old + 1} stepped down (CheckQuorum)`);
    const fresh = await waitUntil(
      'the majority to elect a new leader',
      () => {
        const i = c.nodes.findIndex(
          (s, k) =>
            k !== old &&
            s!.node.statusSync().role === 'leader' &&
            s!.node.statusSync().term > oldTerm,
        );
        return i >= 0 ? i : undefined;
      },
      10_000,
    );
    const other = [0, 1, 2].find((i) => i !== old && i !== fresh)!;
    t.comment(`old leader n${old + 1}, new leader n${fresh + 1}`);

    const w1 = await putKey(c.url(fresh), 'iso/after', 'v1');
    t.equal(w1.status, 200, 'the new leader accepts writes');
    const w2 = await putKey(c.url(other), 'iso/after2', 'v2');
    t.equal(w2.status, 200, 'the other follower forwards writes to the new leader');

    const refused = await putKey(c.url(old), 'iso/refused', 'x');
    t.ok(
      refused.status === 503 || refused.status === 504,
      `the cut-off old leader does not acknowledge a write (${refused.status})`,
    );
    const stale = await getKey(c.url(old), 'iso/after');
    t.not(stale.status, 200, 'the cut-off old leader serves no linearizable read');
    t.not(stale.status, 404, 'the cut-off old leader does not claim the new key is missing');
    const doomedResult = await doomed;
    // 504 when it was proposed before the step-down (the usual case), 503 if it arrived after.
    t.ok(
      doomedResult.status === 504 || doomedResult.status === 503,
      `a write sent to the isolated leader is not acknowledged (${doomedResult.status})`,
    );

    healAll(c);
    await waitUntil(
      'the old leader to follow the new one',
      () => {
        const s = oldNode.statusSync();
        return s.role === 'follower' && s.leader === ids[fresh] ? true : undefined;
      },
      10_000,
    );
    const w3 = await putKey(c.url(old), 'iso/forwarded', 'v3');
    t.equal(w3.status, 200, 'after healing, the old leader forwards writes to the new leader');
    t.ok(
      revisionOf(w3) > revisionOf(w1),
      'the forwarded write lands after the writes made meanwhile',
    );
    const seen = await getKey(c.url(old), 'iso/after');
    t.equal(
      kvValue(seen) ?? seen.status,
      'v1',
      'a linearizable read through the old leader sees the writes made while it was cut off',
    );
    const lost = await getKey(c.url(fresh), 'iso/doomed');
    t.equal(lost.status, 404, "the cut-off leader's uncommitted entry was discarded");
    if (refused.status === 503) {
      const r = await getKey(c.url(fresh), 'iso/refused');
      t.equal(r.status, 404, 'a write answered 503 was not applied');
    }
    const { kvs } = await checkConverged(t, c, 'after healing', 'iso/');
    t.same(
      kvs.map((kv) => `${kv.key}=${kv.value}`),
      ['iso/after=v1', 'iso/after2=v2', 'iso/before=v0', 'iso/forwarded=v3'],
      'the compared data is the writes this test made',
    );
  },
);
