/**
 * Network partitions through the transports' fault filters, on an in-process
 * 3-node cluster over real HTTP: concurrent clients keep reading, writing and
 * compare-and-swapping while the leader is isolated, a minority is cut off and
 * a link fails one way; afterwards no acknowledged write is missing, every
 * node holds the same data, and the client history is linearizable.
 */
import t, { type Test } from 'tap';
import type { FaultFilter } from '../../src/transport/index.js';
import {
  checkLinearizable,
  HistoryRecorder,
  type KvInput,
  type KvOutput,
  kvModel,
} from '../support/linearizability.js';
import { startCluster, type TestCluster } from './helpers.js';
import {
  call,
  casTxn,
  getKey,
  kvValue,
  mapLimit,
  type Outcome,
  putKey,
  revisionOf,
  seededRandom,
  sleep,
  waitUntil,
} from './http-ops.js';

const KEYS = ['part/a', 'part/b', 'part/c'];
const CLIENTS = 4;
/** Hard cap on operations per client, whatever the timing. */
const OPS_PER_CLIENT_MAX = 2_000;

const nodeIds = (c: TestCluster) => c.nodes.map((s) => s!.node.id);
/** Filters act on the sender's side: a rule must be on every node's filter to cut a link both ways. */
const everyFilter = (c: TestCluster, rule: (f: FaultFilter) => unknown) => {
  for (const f of c.filters) rule(f);
};
const healAll = (c: TestCluster) => everyFilter(c, (f) => f.heal());

interface Write {
  key: string;
  value: string;
  result: 'acked' | 'unknown' | 'failed';
  revision?: number;
}

/** The value a get outcome observed: a string, null for key_not_found, undefined if it observed nothing. */
function observedValue(r: Outcome): string | null | undefined {
  if (r.kind === 'ok' && r.status === 200) return r.body.kv!.value;
  if (r.kind === 'failed' && r.status === 404 && r.body?.error?.code === 'key_not_found')
    return null;
  return undefined;
}

/** Waits until every node has applied the same index, then compares their data. */
async function checkConverged(
  t: Test,
  c: TestCluster,
  what: string,
  prefix: string,
): Promise<number> {
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
      call(c.url(i), `/v1/kv?prefix=${encodeURIComponent(prefix)}&consistency=serializable`),
    ),
  );
  const views = ranges.map((r) => (r.kind === 'ok' ? r.body.kvs : r));
  for (let i = 1; i < views.length; i++)
    t.same(views[i], views[0], `${what}: n${i + 1} holds the same keys and values as n1`);
  return revision;
}

t.test(
  'clients stay linearizable and lose no acknowledged write through isolation, partitions and one-way links',
  async (t) => {
    const seed = Number(process.env.RAFTKV_TEST_SEED ?? Date.now() % 1_000_000);
    t.comment(`seed ${seed} (replay with RAFTKV_TEST_SEED=${seed})`);
    const random = seededRandom(seed);
    const c = await startCluster(3);
    t.teardown(() => c.close());
    await c.waitForLeader(20_000);
    const ids = nodeIds(c);

    const recorder = new HistoryRecorder<KvInput, KvOutput>();
    const writes: Write[] = [];
    const counts = { get: 0, put: 0, cas: 0, failed: 0, unknown: 0 };
    /** How each kind of request was answered, e.g. "put 504 timeout": for the log. */
    const answers = new Map<string, number>();
    const tally = (op: string, r: Outcome) => {
      const code = r.kind === 'ok' ? '' : r.kind === 'failed' ? r.detail : r.detail;
      const label = `${op} ${r.kind === 'ok' ? r.status : code.split(' ').slice(0, 2).join(' ')}`;
      answers.set(label, (answers.get(label) ?? 0) + 1);
    };
    let running = true;

    const client = async (id: number) => {
      // The last value this client saw per key: CAS expects it, so some CAS succeed.
      const seen = new Map<string, string | null>();
      for (let n = 0; running && n < OPS_PER_CLIENT_MAX; n++) {
        const url = c.url(Math.floor(random() * 3));
        const key = KEYS[Math.floor(random() * KEYS.length)]!;
        const dice = random();
        if (dice < 0.4) {
          counts.get++;
          const finish = recorder.begin(id, { op: 'get', key });
          const r = await getKey(url, key);
          tally('get', r);
          const value = observedValue(r);
          if (value !== undefined) {
            finish({ op: 'get', value });
            seen.set(key, value);
          } else if (r.kind === 'failed') finish.fail();
          else finish();
          if (value === undefined) counts[r.kind === 'failed' ? 'failed' : 'unknown']++;
          continue;
        }
        const value = `c${id}-${n}`;
        const write: Write = { key, value, result: 'unknown' };
        writes.push(write);
        let r: Outcome;
        let ok: boolean | undefined;
        if (dice < 0.7) {
          counts.put++;
          const finish = recorder.begin(id, { op: 'put', key, value });
          r = await putKey(url, key, value);
          ok = r.kind === 'ok' ? true : undefined;
          if (ok) finish({ op: 'put' });
          else if (r.kind === 'failed') finish.fail();
          else finish();
        } else {
          counts.cas++;
          const expected = seen.get(key) ?? null;
          const finish = recorder.begin(id, { op: 'cas', key, expected, value });
          // Half as PUT with prevValue, half as a txn with a value compare.
          if (expected !== null && random() < 0.5) {
            r = await putKey(url, key, value, { prevValue: expected });
            if (r.kind === 'ok') ok = r.status === 200;
          } else {
            r = await casTxn(url, key, expected, value);
            if (r.kind === 'ok') ok = r.body.succeeded === true;
          }
          if (ok !== undefined) finish({ op: 'cas', ok });
          else if (r.kind === 'failed') finish.fail();
          else finish();
        }
        tally(dice < 0.7 ? 'put' : 'cas', r);
        if (ok === true) {
          write.result = 'acked';
          write.revision = r.kind === 'ok' ? r.body.revision : undefined;
          seen.set(key, value);
        } else if (ok === false) {
          write.result = 'failed'; // the guard was false: nothing was written
        } else if (r.kind === 'failed') {
          write.result = 'failed';
          counts.failed++;
        } else counts.unknown++;
        if (ok === undefined) await sleep(10); // a cut-off node answers fast: do not spin
      }
    };

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
    const clients = Array.from({ length: CLIENTS }, (_, i) => client(i));
    const faults: string[] = [];
    try {
      await sleep(700);
      // 1. Isolate the leader.
      const l1 = await c.waitForLeader(20_000);
      everyFilter(c, (f) => f.isolate(ids[l1]!));
      faults.push(`isolate leader n${l1 + 1}`);
      await sleep(2_000);
      healAll(c);
      await sleep(700);
      // 2. A minority partition: one follower cut off from the other two.
      const l2 = await c.waitForLeader(20_000);
      const f2 = (l2 + 1) % 3;
      everyFilter(c, (f) =>
        f.partition(
          [ids[f2]!],
          ids.filter((_, i) => i !== f2),
        ),
      );
      faults.push(`partition n${f2 + 1} | rest (leader n${l2 + 1})`);
      await sleep(1_500);
      healAll(c);
      await sleep(700);
      // 3. A one-way link failure: the leader cannot reach one follower, which still reaches it.
      const l3 = await c.waitForLeader(20_000);
      const f3 = (l3 + 2) % 3;
      everyFilter(c, (f) => f.oneWay(ids[l3]!, ids[f3]!));
      faults.push(`one-way n${l3 + 1} -> n${f3 + 1} cut (leader n${l3 + 1})`);
      await sleep(1_500);
      healAll(c);
      await sleep(700);
    } finally {
      running = false;
      healAll(c);
      await Promise.all(clients);
      clearInterval(sampler);
    }
    const twoLeaders = [...leaderOfTerm].filter(([, set]) => set.size > 1);
    t.same(twoLeaders, [], `one leader per term (terms ${[...leaderOfTerm.keys()].join(', ')})`);
    t.comment(`faults: ${faults.join('; ')}`);
    t.comment(
      `${Date.now() - started} ms of load: ${counts.get} gets, ${counts.put} puts, ${counts.cas} CAS; ` +
        `${counts.failed} definitely failed, ${counts.unknown} unknown outcomes`,
    );
    t.comment(`answers: ${[...answers].map(([k, n]) => `${k}: ${n}`).join(', ')}`);

    await c.waitForLeader(20_000);
    const revision = await checkConverged(t, c, 'after healing', 'iso/');

    // Every acknowledged write is in every node's history at its revision.
    const acked = writes.filter((w) => w.result === 'acked');
    t.ok(acked.length > 10, `${acked.length} writes were acknowledged`);
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
    t.same(missing.slice(0, 20), [], 'every acknowledged write is in every node at its revision');

    // The latest value of each key is its latest acknowledged write or a later attempt.
    for (const key of KEYS) {
      const r = await getKey(c.url(0), key);
      const latest = acked
        .filter((w) => w.key === key)
        .reduce<Write | undefined>((m, w) => (!m || w.revision! > m.revision! ? w : m), undefined);
      if (!latest) continue;
      const kv = r.kind === 'ok' ? r.body.kv : undefined;
      t.ok(kv && kv.modRevision >= latest.revision!, `${key} is at or after its last acked write`);
      const origin = writes.find((w) => w.key === key && w.value === kv?.value);
      t.ok(origin && origin.result !== 'failed', `${key} holds a value that may have been applied`);
    }

    // The whole history, checked per key.
    const history = recorder.operations();
    const checkStarted = Date.now();
    const result = checkLinearizable(kvModel, history);
    t.comment(
      `linearizability: ${history.length} operations, ${result.outcome} in ${Date.now() - checkStarted} ms`,
    );
    if (result.outcome === 'unknown')
      t.comment(`checker gave up (not a failure): ${result.reason}`);
    t.not(result.outcome, 'illegal', result.outcome === 'illegal' ? result.info : 'linearizable');
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
    await checkConverged(t, c, 'after healing', 'iso/');
  },
);
