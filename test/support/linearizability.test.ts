import fc from 'fast-check';
import t from 'tap';
import {
  type CheckResult,
  checkLinearizable,
  HistoryRecorder,
  type KvInput,
  type KvOutput,
  kvModel,
  type Model,
  type Operation,
  SINGLE_PARTITION,
} from './linearizability.js';

type KvOp = Operation<KvInput, KvOutput>;

const put = (key: string, value: string): KvInput => ({ op: 'put', key, value });
const get = (key: string): KvInput => ({ op: 'get', key });
const del = (key: string): KvInput => ({ op: 'delete', key });
const cas = (key: string, expected: string | null, value: string): KvInput => ({
  op: 'cas',
  key,
  expected,
  value,
});
const putOk: KvOutput = { op: 'put' };
const got = (value: string | null): KvOutput => ({ op: 'get', value });
const deleted = (wasPresent: boolean): KvOutput => ({ op: 'delete', deleted: wasPresent });
const casOk = (ok: boolean): KvOutput => ({ op: 'cas', ok });

/** A completed op: [call, ret] interval with an observed output. */
const done = (clientId: number, input: KvInput, call: number, ret: number, output: KvOutput) => ({
  clientId,
  input,
  call,
  ret,
  output,
});
/** An op whose outcome is unknown (timed out / client crashed). */
const lost = (clientId: number, input: KvInput, call: number): KvOp => ({ clientId, input, call });

const check = (history: KvOp[], maxSteps?: number): CheckResult =>
  checkLinearizable(kvModel, history, maxSteps === undefined ? undefined : { maxSteps });

/** Pattern for t.match: an illegal verdict blaming `partition`. */
const illegalIn = (partition: string) => ({ outcome: 'illegal', partition });

/** Independent reference store used to produce "true" outputs for generated histories. */
function applyToStore(store: Map<string, string>, input: KvInput): KvOutput {
  const current = store.get(input.key) ?? null;
  if (input.op === 'put') {
    store.set(input.key, input.value);
    return putOk;
  }
  if (input.op === 'get') return got(current);
  if (input.op === 'delete') return deleted(store.delete(input.key));
  if (current !== input.expected) return casOk(false);
  store.set(input.key, input.value);
  return casOk(true);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('empty history and a plain sequential history are ok', async (t) => {
  t.same(check([]), { outcome: 'ok' });
  t.same(
    check([
      done(1, put('x', 'a'), 0, 1, putOk),
      done(1, get('x'), 2, 3, got('a')),
      done(2, del('x'), 4, 5, deleted(true)),
      done(2, del('x'), 6, 7, deleted(false)),
      done(1, get('x'), 8, 9, got(null)),
    ]),
    { outcome: 'ok' },
  );
});

t.test('stale read after an acknowledged write is illegal', async (t) => {
  const history = [
    done(1, put('x', 'a'), 0, 1, putOk),
    done(1, put('x', 'b'), 2, 3, putOk),
    done(2, get('x'), 4, 5, got('a')),
  ];
  const result = check(history);
  t.match(result, illegalIn('x'));
  if (result.outcome === 'illegal') {
    t.match(result.info, /#2 client 2 \[4, 5\]/, 'names the stale read');
    t.match(result.info, /model would return \{"op":"get","value":"b"\}/, 'shows expected value');
  }
  // The same read overlapping the second write may legally see the old value.
  t.same(check([history[0]!, history[1]!, done(2, get('x'), 2.5, 5, got('a'))]), { outcome: 'ok' });
});

t.test('concurrent writes observed in contradictory orders are illegal', async (t) => {
  const writes = [done(1, put('x', 'a'), 0, 100, putOk), done(2, put('x', 'b'), 0, 100, putOk)];
  const contradictory = [
    ...writes,
    done(3, get('x'), 10, 20, got('a')),
    done(3, get('x'), 30, 40, got('b')),
    done(4, get('x'), 10, 20, got('b')),
    done(4, get('x'), 30, 40, got('a')),
  ];
  t.match(check(contradictory), illegalIn('x'));
  const consistent = [
    ...writes,
    done(3, get('x'), 10, 20, got('a')),
    done(3, get('x'), 30, 40, got('b')),
    done(4, get('x'), 10, 20, got('a')),
    done(4, get('x'), 30, 40, got('b')),
  ];
  t.same(check(consistent), { outcome: 'ok' });
});

t.test('CAS succeeding twice from the same expected value is illegal', async (t) => {
  const setup = done(1, put('x', 'v0'), 0, 1, putOk);
  t.match(
    check([
      setup,
      done(2, cas('x', 'v0', 'a'), 2, 5, casOk(true)),
      done(3, cas('x', 'v0', 'b'), 2, 5, casOk(true)),
    ]),
    illegalIn('x'),
  );
  t.same(
    check([
      setup,
      done(2, cas('x', 'v0', 'a'), 2, 5, casOk(true)),
      done(3, cas('x', 'v0', 'b'), 2, 5, casOk(false)),
      done(3, get('x'), 6, 7, got('a')),
    ]),
    { outcome: 'ok' },
  );
  // expected: null means "absent": create-if-absent semantics.
  t.same(
    check([
      done(1, cas('y', null, 'first'), 0, 1, casOk(true)),
      done(2, cas('y', null, 'second'), 2, 3, casOk(false)),
      done(2, get('y'), 4, 5, got('first')),
    ]),
    { outcome: 'ok' },
  );
});

t.test('a read of a value never written is illegal', async (t) => {
  const result = check([
    done(1, put('x', 'a'), 0, 10, putOk),
    done(2, get('x'), 0, 10, got('ghost')),
  ]);
  t.match(result, illegalIn('x'));
});

t.test('unknown-outcome ops may take effect late, or never', async (t) => {
  const timedOutWrite = lost(1, put('x', 'a'), 0);
  t.same(
    check([timedOutWrite, done(2, get('x'), 5, 6, got('a'))]),
    { outcome: 'ok' },
    'took effect',
  );
  t.same(
    check([timedOutWrite, done(2, get('x'), 5, 6, got(null))]),
    { outcome: 'ok' },
    'never did',
  );
  t.same(
    check([
      timedOutWrite,
      done(2, get('x'), 5, 6, got(null)),
      done(2, get('x'), 1000, 1001, got('a')),
    ]),
    { outcome: 'ok' },
    'took effect long after its call',
  );
  t.match(
    check([timedOutWrite, done(2, get('x'), 5, 6, got('a')), done(2, get('x'), 7, 8, got(null))]),
    illegalIn('x'),
  );
  // It cannot take effect before it was invoked.
  t.match(check([done(2, get('x'), 0, 1, got('a')), lost(1, put('x', 'a'), 2)]), illegalIn('x'));
  // An output recorded on an unknown op is ignored.
  const withStaleOutput: KvOp = { ...lost(1, get('x'), 0), output: got('nonsense') };
  t.same(check([withStaleOutput]), { outcome: 'ok' });
  // Unknown CAS: at most one of two racing CASes from v0 may have applied.
  t.match(
    check([
      done(1, put('x', 'v0'), 0, 1, putOk),
      lost(2, cas('x', 'v0', 'a'), 2),
      lost(3, cas('x', 'v0', 'b'), 2),
      done(4, get('x'), 10, 11, got('a')),
      done(4, get('x'), 12, 13, got('b')),
    ]),
    illegalIn('x'),
  );
});

t.test('equal timestamps count as concurrent (A precedes B iff A.ret < B.call)', async (t) => {
  const write = done(1, put('x', 'a'), 0, 5, putOk);
  t.same(check([write, done(2, get('x'), 5, 6, got(null))]), { outcome: 'ok' }, 'ret === call');
  t.match(check([write, done(2, get('x'), 6, 7, got(null))]), illegalIn('x'));
  // Zero-length intervals at the same instant may be ordered either way.
  t.same(check([done(1, put('x', 'a'), 3, 3, putOk), done(2, get('x'), 3, 3, got(null))]), {
    outcome: 'ok',
  });
  t.same(check([done(1, put('x', 'a'), 3, 3, putOk), done(2, get('x'), 3, 3, got('a'))]), {
    outcome: 'ok',
  });
  // Input order does not matter.
  t.same(check([done(2, get('x'), 5, 6, got(null)), write]), { outcome: 'ok' });
});

t.test('partitions are checked independently and the failing one is named', async (t) => {
  const result = check([
    done(1, put('alpha', 'a'), 0, 1, putOk),
    done(1, get('alpha'), 2, 3, got('a')),
    done(2, put('beta', 'b'), 0, 1, putOk),
    done(2, get('beta'), 2, 3, got(null)),
    done(3, get('gamma'), 0, 1, got(null)),
  ]);
  t.match(result, illegalIn('beta'));
  if (result.outcome === 'illegal') {
    t.match(result.info, /partition "beta"/);
    t.notMatch(result.info, /alpha/, 'other keys stay out of the report');
  }
  // A cross-key "anomaly" is not one: keys are independent registers.
  t.same(check([done(1, put('a', '1'), 0, 1, putOk), done(2, get('b'), 2, 3, got(null))]), {
    outcome: 'ok',
  });
});

t.test('the report points at the earliest failure, not the end of the history', async (t) => {
  const history: KvOp[] = [
    done(1, put('x', 'v0'), 0, 1, putOk),
    done(2, get('x'), 2, 3, got('nope')),
  ];
  for (let i = 1; i <= 50; i++) {
    history.push(done(1, put('x', `v${i}`), 10 * i, 10 * i + 5, putOk));
    history.push(done(2, get('x'), 10 * i + 6, 10 * i + 8, got(`v${i}`)));
  }
  const result = check(history);
  t.match(result, illegalIn('x'));
  if (result.outcome === 'illegal') {
    t.match(result.info, /the first 2 of 102 ops/);
    t.match(result.info, /op #1 must take effect/);
  }
});

t.test('budget exhaustion reports unknown instead of hanging', async (t) => {
  // 14 concurrent writes and an impossible read: refuting it needs ~2^14 configurations.
  const history: KvOp[] = [];
  for (let i = 0; i < 14; i++) history.push(done(i, put('hot', `v${i}`), 0, 100, putOk));
  history.push(done(99, get('hot'), 0, 100, got('ghost')));
  const result = check(history, 1_000);
  t.equal(result.outcome, 'unknown');
  if (result.outcome === 'unknown') {
    t.equal(result.partition, 'hot');
    t.match(result.reason, /1000 steps/);
  }
});

t.test('kvModel keeps an absent key distinct from every value', async (t) => {
  const tricky = ['', 'absent', '\0absent', '\0', '\0\0absent', 'null'];
  const hashes = new Set([kvModel.hash(null), ...tricky.map((value) => kvModel.hash(value))]);
  t.equal(hashes.size, tricky.length + 1);
  t.match(
    check([done(1, put('x', '\0absent'), 0, 1, putOk), done(1, get('x'), 2, 3, got(null))]),
    illegalIn('x'),
  );
  t.notOk(
    kvModel.matches(got(null), undefined as unknown as KvOutput),
    'missing output never matches',
  );
  t.notOk(kvModel.matches(got(null), deleted(false)), 'output of another op type never matches');
});

t.test('the report explains unknown-outcome ops at the dead end', async (t) => {
  const result = check([
    done(1, put('x', 'a'), 0, 1, putOk),
    done(1, put('x', 'b'), 2, 3, putOk),
    lost(3, put('x', 'c'), 2),
    done(2, get('x'), 4, 5, got('a')),
  ]);
  t.match(result, illegalIn('x'));
  if (result.outcome === 'illegal') {
    t.match(result.info, /#2 client 3 \[2, \?\] .* -> outcome unknown/);
    t.match(result.info, /State after it: "b"/, 'prefers prefixes without unknown ops');
  }
});

t.test('malformed operations are rejected', async (t) => {
  t.throws(() => check([done(1, get('x'), 5, 4, got(null))]), RangeError);
  t.throws(() => check([done(1, get('x'), Number.NaN, 4, got(null))]), RangeError);
});

t.test('the checker is generic: a FIFO queue model without partitions', async (t) => {
  type QueueInput = { op: 'enqueue'; value: number } | { op: 'dequeue' };
  type QueueOutput = number | null | 'ok';
  const queueModel: Model<readonly number[], QueueInput, QueueOutput> = {
    init: () => [],
    step: (queue, input) =>
      input.op === 'enqueue'
        ? { state: [...queue, input.value], output: 'ok' }
        : { state: queue.slice(1), output: queue[0] ?? null },
    matches: (expected, observed) => expected === observed,
    hash: (queue) => queue.join(','),
  };
  const enqueue = (value: number): QueueInput => ({ op: 'enqueue', value });
  const dequeue: QueueInput = { op: 'dequeue' };
  const concurrentEnqueues: Operation<QueueInput, QueueOutput>[] = [
    { clientId: 1, input: enqueue(1), call: 0, ret: 10, output: 'ok' },
    { clientId: 2, input: enqueue(2), call: 0, ret: 10, output: 'ok' },
  ];
  t.same(
    checkLinearizable(queueModel, [
      ...concurrentEnqueues,
      { clientId: 3, input: dequeue, call: 11, ret: 12, output: 2 },
      { clientId: 3, input: dequeue, call: 13, ret: 14, output: 1 },
    ]),
    { outcome: 'ok' },
  );
  const result = checkLinearizable(queueModel, [
    ...concurrentEnqueues,
    { clientId: 3, input: dequeue, call: 11, ret: 12, output: 2 },
    { clientId: 3, input: dequeue, call: 13, ret: 14, output: 2 },
  ]);
  t.equal(result.outcome, 'illegal');
  if (result.outcome === 'illegal') t.equal(result.partition, SINGLE_PARTITION);
});

t.test('HistoryRecorder', async (t) => {
  t.test('default clock orders events as observed, without ties', async (t) => {
    const recorder = new HistoryRecorder<KvInput, KvOutput>();
    const finishWrite = recorder.begin(1, put('x', 'a'));
    const finishRead = recorder.begin(2, get('x'));
    finishRead(got(null));
    finishWrite(putOk);
    const timedOut = recorder.begin(3, get('x'));
    timedOut();
    recorder.begin(4, del('x')); // never completed
    t.same(recorder.operations(), [
      { clientId: 1, input: put('x', 'a'), call: 0, ret: 3, output: putOk },
      { clientId: 2, input: get('x'), call: 1, ret: 2, output: got(null) },
      { clientId: 3, input: get('x'), call: 4 },
      { clientId: 4, input: del('x'), call: 5 },
    ]);
    t.throws(() => finishRead(got(null)), /completed twice/);
  });

  t.test('fail() drops a definitely failed op', async (t) => {
    const recorder = new HistoryRecorder<KvInput, KvOutput>();
    const rejected = recorder.begin(1, put('x', 'a'));
    const read = recorder.begin(2, get('x'));
    rejected.fail();
    read(got(null));
    t.same(recorder.operations(), [
      { clientId: 2, input: get('x'), call: 1, ret: 2, output: got(null) },
    ]);
    t.throws(() => rejected(putOk), /completed twice/);
    t.throws(() => read.fail(), /failing a completed operation/);
  });

  t.test('custom clock', async (t) => {
    let now = 100;
    const recorder = new HistoryRecorder<KvInput, KvOutput>(() => now);
    const finish = recorder.begin(1, get('x'));
    now = 150;
    finish(got(null));
    t.same(recorder.operations(), [
      { clientId: 1, input: get('x'), call: 100, ret: 150, output: got(null) },
    ]);
  });

  t.test('records a linearizable history from concurrent async clients', async (t) => {
    const store = new Map<string, string>();
    const random = mulberry32(7);
    const pause = () => new Promise<void>((resolve) => setTimeout(resolve, random() < 0.5 ? 0 : 1));
    const recorder = new HistoryRecorder<KvInput, KvOutput>();
    const client = async (clientId: number) => {
      for (let i = 0; i < 20; i++) {
        const key = random() < 0.5 ? 'a' : 'b';
        const input = random() < 0.5 ? put(key, `${clientId}-${i}`) : get(key);
        const finish = recorder.begin(clientId, input);
        await pause();
        const fate = random();
        if (fate < 0.1) {
          finish.fail(); // rejected before being applied: not part of the history
          continue;
        }
        const output = applyToStore(store, input); // the "server" applies it here
        await pause();
        if (fate < 0.2)
          finish(); // reply lost: outcome unknown
        else finish(output);
      }
    };
    await Promise.all([1, 2, 3, 4].map(client));
    t.same(check(recorder.operations()), { outcome: 'ok' });
  });
});

// ---------------------------------------------------------------------------
// Properties over generated histories

const keyArb = fc.constantFrom('k0', 'k1', 'k2');
const valueArb = fc.constantFrom('v0', 'v1', 'v2', 'v3');
const kvInputArb: fc.Arbitrary<KvInput> = fc.oneof(
  fc.tuple(keyArb, valueArb).map(([key, value]) => put(key, value)),
  keyArb.map(get),
  keyArb.map(get),
  keyArb.map(del),
  fc
    .tuple(keyArb, fc.option(valueArb), valueArb)
    .map(([key, expected, value]) => cas(key, expected, value)),
);
/** known: completed; applied: unknown outcome but took effect; dropped: unknown, never applied. */
const fateArb = fc.constantFrom<'known' | 'applied' | 'dropped'>(
  ...(['known', 'known', 'known', 'known', 'known', 'known', 'applied', 'dropped'] as const),
);
const plannedOpArb = fc.record({
  input: kvInputArb,
  clientId: fc.nat(4),
  // The op takes effect at its slot time; its interval extends this far either side.
  before: fc.nat(30),
  after: fc.nat(30),
  fate: fateArb,
});
type PlannedOp = typeof plannedOpArb extends fc.Arbitrary<infer Planned> ? Planned : never;

/**
 * Runs the ops sequentially against a reference store (op i takes effect at
 * time 10·i) and gives each an interval around that instant, so real-time
 * order never contradicts the execution order: the history is linearizable.
 */
function sequentialHistory(plan: PlannedOp[]): KvOp[] {
  const store = new Map<string, string>();
  return plan.map(({ input, clientId, before, after, fate }, i): KvOp => {
    const effectTime = 10 * i;
    const call = effectTime - before;
    if (fate === 'dropped') return { clientId, input, call };
    const output = applyToStore(store, input);
    if (fate === 'applied') return { clientId, input, call };
    return { clientId, input, call, ret: effectTime + after, output };
  });
}

t.test('property: histories from a sequential execution are linearizable', async (t) => {
  fc.assert(
    fc.property(fc.array(plannedOpArb, { maxLength: 40 }), (plan) => {
      const result = check(sequentialHistory(plan));
      return result.outcome === 'ok';
    }),
    { numRuns: 300 },
  );
  t.pass('300 generated histories checked ok');
});

t.test('property: corrupting one read to an unwritten value makes it illegal', async (t) => {
  fc.assert(
    fc.property(fc.array(plannedOpArb, { minLength: 1, maxLength: 40 }), fc.nat(), (plan, pick) => {
      const history = sequentialHistory(plan);
      const knownReads = history.flatMap((op, i) =>
        op.ret !== undefined && op.input.op === 'get' ? [i] : [],
      );
      fc.pre(knownReads.length > 0);
      const victim = history[knownReads[pick % knownReads.length]!]!;
      victim.output = got('never-written');
      const result = check(history);
      return result.outcome === 'illegal' && result.partition === victim.input.key;
    }),
    { numRuns: 200 },
  );
  t.pass('200 corrupted histories rejected');
});

/**
 * Reference checker by exhaustive search, written straight from the definition:
 * repeatedly pick any remaining op that no remaining known op strictly precedes
 * (ret < call); unknown ops may be placed or left out. Exponential; tiny inputs only.
 */
function bruteForceLinearizable(history: KvOp[]): boolean {
  const search = (store: Map<string, string>, remaining: KvOp[]): boolean => {
    if (remaining.every((op) => op.ret === undefined)) return true;
    return remaining.some((candidate, i) => {
      const blocked = remaining.some(
        (other) => other.ret !== undefined && other.ret < candidate.call,
      );
      if (blocked) return false;
      const nextStore = new Map(store);
      const output = applyToStore(nextStore, candidate.input);
      if (candidate.ret !== undefined && !sameKvOutput(output, candidate.output)) return false;
      return search(
        nextStore,
        remaining.filter((_, j) => j !== i),
      );
    });
  };
  return search(new Map(), history);
}

function sameKvOutput(a: KvOutput, b: KvOutput | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const tinyValueArb = fc.constantFrom('a', 'b');
/** Random ops with random (often wrong) outputs on coarse clocks, so ties are common. */
const arbitraryOpArb: fc.Arbitrary<KvOp> = fc
  .record({
    clientId: fc.nat(3),
    key: fc.constantFrom('k', 'k', 'k', 'other'),
    kind: fc.constantFrom('put', 'get', 'delete', 'cas'),
    value: tinyValueArb,
    expected: fc.option(tinyValueArb),
    call: fc.nat(8),
    duration: fc.nat(4),
    unknownOutcome: fc.integer({ min: 0, max: 4 }).map((roll) => roll === 0),
    observedValue: fc.option(tinyValueArb),
    observedFlag: fc.boolean(),
  })
  .map((drawn): KvOp => {
    const { clientId, key, kind, value, expected, call, duration, observedValue, observedFlag } =
      drawn;
    const [input, output]: [KvInput, KvOutput] =
      kind === 'put'
        ? [put(key, value), putOk]
        : kind === 'get'
          ? [get(key), got(observedValue)]
          : kind === 'delete'
            ? [del(key), deleted(observedFlag)]
            : [cas(key, expected, value), casOk(observedFlag)];
    if (drawn.unknownOutcome) return { clientId, input, call };
    return { clientId, input, call, ret: call + duration, output };
  });

t.test('property: agrees with an exhaustive reference checker on small histories', async (t) => {
  let legal = 0;
  let illegal = 0;
  fc.assert(
    fc.property(fc.array(arbitraryOpArb, { maxLength: 8 }), (history) => {
      const expected = bruteForceLinearizable(history);
      const result = check(history);
      if (expected) legal++;
      else illegal++;
      return result.outcome === (expected ? 'ok' : 'illegal');
    }),
    { numRuns: 2000 },
  );
  t.ok(legal > 100 && illegal > 100, `both verdicts exercised (${legal} ok, ${illegal} illegal)`);
});

t.test('many unknown-outcome writes do not blow up refuting a stale read', async (t) => {
  // 30 timed-out writes could each have landed or not: 2^30 subsets without pruning.
  const history: KvOp[] = [];
  for (let i = 0; i < 30; i++) history.push(lost(i, put('x', `maybe${i}`), i));
  history.push(done(100, put('x', 'final'), 40, 41, putOk));
  history.push(done(101, get('x'), 42, 43, got('stale')));
  t.match(check(history), illegalIn('x'));
  // Same shape but legal: any of the unknown writes may land after 'final'.
  history[history.length - 1] = done(101, get('x'), 42, 43, got('maybe7'));
  t.same(check(history), { outcome: 'ok' });
});

// ---------------------------------------------------------------------------
// Performance sanity

/** Five clients issuing ops back to back; each op takes effect at a random point inside its interval. */
function simulatedHistory(seed: number, count: number, unknownRate: number): KvOp[] {
  const random = mulberry32(seed);
  const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
  const clientClock = [0, 0, 0, 0, 0];
  const planned: { op: KvOp; effectTime: number; lostReply: boolean }[] = [];
  for (let i = 0; i < count; i++) {
    const clientId = i % clientClock.length;
    const key = pick(keys);
    const roll = random();
    const value = `v${Math.floor(random() * 1000)}`;
    const input =
      roll < 0.35
        ? put(key, value)
        : roll < 0.75
          ? get(key)
          : roll < 0.85
            ? del(key)
            : cas(key, random() < 0.3 ? null : `v${Math.floor(random() * 1000)}`, value);
    const call = clientClock[clientId]! + random() * 2;
    const effectTime = call + random() * 10;
    const ret = effectTime + random() * 10;
    clientClock[clientId] = ret;
    planned.push({
      op: { clientId, input, call, ret },
      effectTime,
      lostReply: random() < unknownRate,
    });
  }
  const store = new Map<string, string>();
  for (const entry of [...planned].sort((a, b) => a.effectTime - b.effectTime)) {
    entry.op.output = applyToStore(store, entry.op.input);
    if (entry.lostReply) {
      delete entry.op.ret;
      delete entry.op.output;
    }
  }
  return planned.map((entry) => entry.op);
}

t.test('performance: 1,000 ops, 5 keys, 5 clients', async (t) => {
  const started = performance.now();
  t.same(check(simulatedHistory(1, 1000, 0)), { outcome: 'ok' }, 'all outcomes known');
  t.same(check(simulatedHistory(2, 1000, 0.02)), { outcome: 'ok' }, 'with 2% unknown outcomes');

  for (const unknownRate of [0, 0.1]) {
    const corrupted = simulatedHistory(3, 1000, unknownRate);
    const lastRead = corrupted.filter((op) => op.input.op === 'get' && op.ret !== undefined).pop()!;
    lastRead.output = got('never-written');
    t.match(
      check(corrupted),
      illegalIn(lastRead.input.key),
      `refuted, ${unknownRate * 100}% unknown`,
    );
  }
  t.comment(`4 checks took ${(performance.now() - started).toFixed(0)} ms`);
});
