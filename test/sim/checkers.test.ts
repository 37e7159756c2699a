import t, { type Test } from 'tap';
import type { Entry, Role } from '../../src/raft/index.js';
import type { KvInput, KvOutput, Operation } from '../support/linearizability.js';
import { checkDurability } from './checkers/durability.js';
import { LeaseSafetyChecker } from './checkers/lease-safety.js';
import { checkInWriteOrder, checkKvHistory, pruneKvHistory } from './checkers/linearizability.js';
import { type ObservedLog, type ObservedNode, SafetyChecker, Violation } from './invariants.js';
import { checkRegisterReads } from './read-check.js';

// Each checker must reject a bad history or state (and accept the good twin),
// or the simulator's "0 violations" would prove nothing.

const encoder = new TextEncoder();

/** An entry of `term` at `index` carrying `payload` (the checker compares term, type and payload). */
const entry = (index: number, term: number, payload = `e${index}t${term}`): Entry => ({
  index,
  term,
  type: 'normal',
  data: encoder.encode(payload),
});

/** A log of `terms[i]` at index first + i (first defaults to 1). */
function log(terms: number[], committed: number, first = 1, payloads?: string[]): ObservedLog {
  const entries = terms.map((term, i) => entry(first + i, term, payloads?.[i]));
  return {
    committed,
    firstIndex: () => first,
    lastIndex: () => first + entries.length - 1,
    term: (i) => entries[i - first]?.term,
    slice: (lo, hi) => entries.slice(lo - first, hi - first),
  };
}

interface FakeNode extends ObservedNode {
  incarnation: number;
  applied: number;
  raft: { role: Role; term: number; log: ObservedLog; voters?: readonly string[] } | undefined;
}

function node(
  id: string,
  role: Role,
  term: number,
  l: ObservedLog,
  opts: { applied?: number; incarnation?: number } = {},
): FakeNode {
  return {
    id,
    incarnation: opts.incarnation ?? 1,
    applied: opts.applied ?? 0,
    raft: { role, term, log: l },
  };
}

const rejects = (t: Test, property: string, fn: () => void, name: string) =>
  t.throws(fn, { name: 'Violation', property }, name);

t.test('election safety: two leaders of one term are rejected', async (t) => {
  const c = new SafetyChecker();
  c.observe(node('n1', 'leader', 2, log([1, 2], 0)));
  c.observe(node('n2', 'leader', 3, log([1, 2, 3], 0)));
  t.equal(c.leaderTermCount(), 2, 'leaders of different terms are fine');
  rejects(
    t,
    'election-safety',
    () => c.observe(node('n3', 'leader', 3, log([1, 3], 0))),
    'second leader of term 3',
  );
  // The same leader observed again is not a second leader.
  const again = new SafetyChecker();
  again.observe(node('n1', 'leader', 2, log([1, 2], 0)));
  t.doesNotThrow(() => again.observe(node('n1', 'leader', 2, log([1, 2, 2], 0))));
});

t.test('log matching: logs agreeing at (index, term) must agree before it', async (t) => {
  const c = new SafetyChecker();
  const same = [
    node('n1', 'follower', 3, log([1, 1, 2, 3], 0)),
    node('n2', 'follower', 3, log([1, 1, 2, 3], 0)),
  ];
  t.doesNotThrow(() => c.checkLogMatching(same), 'identical logs');
  // Divergent tails are allowed: they disagree on the term at the top.
  const tails = [
    node('n1', 'follower', 3, log([1, 1, 2, 2], 0)),
    node('n2', 'follower', 3, log([1, 1, 3], 0)),
  ];
  t.doesNotThrow(() => c.checkLogMatching(tails), 'divergent uncommitted tails');
  // Compacted prefixes are compared only where both hold entries.
  const compacted = [
    node('n1', 'follower', 3, log([2, 3], 0, 3)),
    node('n2', 'follower', 3, log([1, 1, 2, 3], 0)),
  ];
  t.doesNotThrow(() => c.checkLogMatching(compacted), 'one log compacted');
  // Same term at index 3 but a different entry at index 2.
  const bad = [
    node('n1', 'follower', 3, log([1, 1, 2], 0)),
    node('n2', 'follower', 3, log([1, 1, 2], 0, 1, ['e1t1', 'other', 'e3t2'])),
  ];
  rejects(
    t,
    'log-matching',
    () => c.checkLogMatching(bad),
    'entries differ below a matching entry',
  );
  // A crashed node (raft undefined) is skipped.
  const crashed: FakeNode = { ...bad[1]!, raft: undefined };
  t.doesNotThrow(() => c.checkLogMatching([bad[0]!, crashed]));
});

t.test(
  'log completeness: a log with entries of a later term must hold what was committed before them',
  async (t) => {
    // n1 leads term 2 and commits entries 1–3 (3 is of term 2).
    const c = new SafetyChecker();
    c.observe(node('n1', 'leader', 2, log([1, 2, 2], 3)));
    t.doesNotThrow(
      () => c.observe(node('n2', 'follower', 3, log([1, 2, 2, 3], 1))),
      'holds entry 3 under its term-3 entry',
    );
    t.doesNotThrow(
      () => c.observe(node('n3', 'follower', 2, log([1, 2, 2, 9].slice(0, 2), 1))),
      'a shorter log is only behind',
    );
    t.doesNotThrow(
      () => c.observe(node('n4', 'follower', 2, log([1, 1, 1], 1))),
      'a stale tail of older terms will be overwritten',
    );
    rejects(
      t,
      'log-completeness',
      () => c.observe(node('n5', 'follower', 3, log([1, 2, 3, 3], 1))),
      'a term-3 entry at 3 where term 2 committed another',
    );
    // The entry itself checked, not just its term.
    const d = new SafetyChecker();
    d.observe(node('n1', 'leader', 2, log([1, 2, 2], 3)));
    rejects(
      t,
      'log-completeness',
      () =>
        d.observe(node('n2', 'follower', 3, log([1, 2, 2, 3], 1, 1, ['e1t1', 'e2t2', 'x', 'y']))),
      'same term, another entry',
    );
  },
);

t.test('leader completeness: a new leader must hold every committed entry', async (t) => {
  const c = new SafetyChecker();
  c.observe(node('n1', 'leader', 2, log([1, 2, 2], 3)));
  t.doesNotThrow(() => c.observe(node('n2', 'leader', 3, log([1, 2, 2, 3], 2))), 'holds all three');
  const d = new SafetyChecker();
  d.observe(node('n1', 'leader', 2, log([1, 2, 2], 3)));
  rejects(
    t,
    'leader-completeness',
    () => d.observe(node('n3', 'leader', 3, log([1, 2], 2))),
    'lacks entry 3',
  );
  const e = new SafetyChecker();
  e.observe(node('n1', 'leader', 2, log([1, 2, 2], 3)));
  rejects(
    t,
    'leader-completeness',
    () => e.observe(node('n3', 'leader', 3, log([1, 2, 3], 2))),
    'holds another entry at index 3',
  );
  // Entries covered by the new leader's snapshot are state machine safety's business.
  const f = new SafetyChecker();
  f.observe(node('n1', 'leader', 2, log([1, 2, 2], 3)));
  t.doesNotThrow(
    () => f.observe(node('n2', 'leader', 3, log([2, 3], 3, 3))),
    'snapshot covers 1–2',
  );
  // Raft's property is about terms, not real time: a candidate of term 2 that was paused with
  // its votes in hand may win term 2 after the leader of term 3 committed entry 3.
  const g = new SafetyChecker();
  g.observe(node('n1', 'leader', 3, log([1, 1, 3], 3)));
  t.doesNotThrow(
    () => g.observe(node('n2', 'leader', 2, log([1, 1, 2], 2))),
    'a lower-term leader need not hold what a higher term committed',
  );
  rejects(
    t,
    'leader-completeness',
    () => g.observe(node('n3', 'leader', 4, log([1, 1, 2], 2))),
    'a higher-term leader must',
  );
});

t.test(
  'state machine safety: two nodes committing or applying different entries at one index',
  async (t) => {
    const c = new SafetyChecker();
    c.observe(node('n1', 'follower', 2, log([1, 2], 2)));
    t.doesNotThrow(
      () => c.observe(node('n2', 'follower', 2, log([1, 2], 2))),
      'same committed entries',
    );
    rejects(
      t,
      'committed-entry-changed',
      () => c.observe(node('n3', 'follower', 3, log([1, 3], 2))),
      'another entry committed at index 2',
    );
    const a = new SafetyChecker();
    a.onApply(node('n1', 'follower', 2, log([1], 1), { applied: 0 }), entry(1, 1));
    t.doesNotThrow(() =>
      a.onApply(node('n2', 'follower', 2, log([1], 1), { applied: 0 }), entry(1, 1)),
    );
    rejects(
      t,
      'state-machine-safety',
      () => a.onApply(node('n3', 'follower', 2, log([2], 1), { applied: 0 }), entry(1, 2)),
      'another entry applied at index 1',
    );
  },
);

t.test('commit and applied never go backwards within a life', async (t) => {
  const c = new SafetyChecker();
  const n = node('n1', 'follower', 2, log([1, 2, 2], 3));
  c.observe(n);
  n.raft!.log = log([1, 2, 2], 2);
  rejects(t, 'commit-monotonic', () => c.observe(n), 'commit 3 → 2 in one incarnation');
  const d = new SafetyChecker();
  const m = node('n1', 'follower', 2, log([1, 2, 2], 3));
  d.observe(m);
  m.incarnation = 2;
  m.raft!.log = log([1, 2, 2], 1);
  t.doesNotThrow(() => d.observe(m), 'a restart may begin from the persisted commit');
  d.onPersistHardState(m, 3);
  rejects(t, 'commit-monotonic', () => d.onPersistHardState(m, 2), 'persisted commit 3 → 2');
  rejects(
    t,
    'applied-monotonic',
    () => d.onApply(node('n1', 'follower', 2, log([1, 2, 2], 3), { applied: 1 }), entry(3, 2)),
    'applying 3 after 1 skips 2',
  );
  rejects(
    t,
    'applied-monotonic',
    () => d.onApplySnapshot(node('n1', 'follower', 2, log([1, 2, 2], 3), { applied: 3 }), 2),
    'a snapshot older than what is applied',
  );
  t.doesNotThrow(() =>
    d.onApplySnapshot(node('n1', 'follower', 2, log([], 0, 6), { applied: 3 }), 5),
  );
});

t.test('commit durability: a leader commits only what a quorum of voters has synced', async (t) => {
  const voters = ['n1', 'n2', 'n3'];
  const durable = (terms: number[], first = 1) => ({
    firstIndex: () => first,
    lastIndex: () => first + terms.length - 1,
    term: (i: number) => terms[i - first],
  });
  const cluster = (n1: number[], n2: number[], n3: number[]) => {
    const leader: FakeNode & { durable: ReturnType<typeof durable> } = {
      ...node('n1', 'leader', 2, log([1, 2, 2], 2)),
      durable: durable(n1),
    };
    leader.raft = { ...leader.raft!, voters };
    const map = new Map<string, ObservedNode>([
      ['n1', leader],
      ['n2', { ...node('n2', 'follower', 2, log([1, 2, 2], 2)), durable: durable(n2) }],
      ['n3', { id: 'n3', incarnation: 1, applied: 0, raft: undefined, durable: durable(n3) }],
    ]);
    return { leader, map };
  };
  const ok = cluster([1, 2, 2], [1, 2, 2], [1]);
  const c = new SafetyChecker();
  c.observe(ok.leader, ok.map);
  ok.leader.raft!.log = log([1, 2, 2], 3);
  t.doesNotThrow(() => c.observe(ok.leader, ok.map), 'leader and n2 synced entry 3');

  // n2 acknowledged, but the leader's own write of entry 3 is not synced yet.
  const bad = cluster([1, 2], [1, 2, 2], [1]);
  const d = new SafetyChecker();
  d.observe(bad.leader, bad.map);
  bad.leader.raft!.log = log([1, 2, 2], 3);
  t.throws(
    () => d.observe(bad.leader, bad.map),
    { name: 'Violation', property: 'commit-durable', message: /only \[n2\]/ },
    'the leader counted its own unsynced copy',
  );
  // A snapshot covers what is compacted; a crashed voter's disk still counts.
  const snap = cluster([1, 2, 2], [2], [1, 2, 2]);
  const map = new Map(snap.map);
  map.set('n2', { ...snap.map.get('n2')!, durable: durable([2], 3) });
  const e = new SafetyChecker();
  e.observe(snap.leader, map);
  snap.leader.raft!.log = log([1, 2, 2], 3);
  t.doesNotThrow(() => e.observe(snap.leader, map));
  // One event may commit under the voters before it and apply a change (n4 promoted):
  // a quorum of the voters before is enough then; of neither, it is not.
  const grow = cluster([1, 2, 2], [1, 2, 2], [1]);
  const g = new SafetyChecker();
  const withN4 = new Map(grow.map);
  withN4.set('n4', { ...node('n4', 'follower', 2, log([1], 1)), durable: durable([1]) });
  g.observe(grow.leader, withN4);
  grow.leader.raft = { ...grow.leader.raft!, voters: [...voters, 'n4'], log: log([1, 2, 2], 3) };
  t.doesNotThrow(() => g.observe(grow.leader, withN4), '2 of the 3 voters before the change');
  const neither = cluster([1, 2], [1, 2, 2], [1]);
  const h = new SafetyChecker();
  const alsoN4 = new Map(neither.map);
  alsoN4.set('n4', { ...node('n4', 'follower', 2, log([1], 1)), durable: durable([1]) });
  h.observe(neither.leader, alsoN4);
  neither.leader.raft = {
    ...neither.leader.raft!,
    voters: [...voters, 'n4'],
    log: log([1, 2, 2], 3),
  };
  t.throws(
    () => h.observe(neither.leader, alsoN4),
    { name: 'Violation', property: 'commit-durable' },
    'a quorum of neither the voters before nor after',
  );
  // Without durable logs the check is skipped, not failed.
  const f = new SafetyChecker();
  const plain = node('n1', 'leader', 2, log([1, 2, 2], 2));
  f.observe(plain, new Map([['n1', plain]]));
  plain.raft!.log = log([1, 2, 2], 3);
  t.doesNotThrow(() => f.observe(plain, new Map([['n1', plain]])));
});

t.test('membership: a log never holds two uncommitted membership changes', async (t) => {
  const withConf = (terms: number[], confAt: number[], committed: number): ObservedLog => {
    const l = log(terms, committed);
    return {
      ...l,
      slice: (lo, hi) =>
        l
          .slice(lo, hi)
          .map((e) => (confAt.includes(e.index) ? { ...e, type: 'confChange' as const } : e)),
    };
  };
  const c = new SafetyChecker();
  const n = node('n1', 'leader', 2, withConf([1, 2], [], 2));
  c.observe(n);
  n.raft!.log = withConf([1, 2, 2], [3], 2);
  t.doesNotThrow(() => c.observe(n), 'one pending change');
  n.raft!.log = withConf([1, 2, 2, 2, 2], [3, 5], 3);
  t.doesNotThrow(() => c.observe(n), 'the first committed before the second was proposed');
  n.raft!.log = withConf([1, 2, 2, 2, 2, 2, 2], [3, 5, 7], 4);
  t.throws(
    () => c.observe(n),
    { name: 'Violation', property: 'one-conf-change-at-a-time', message: /\[5, 7\]/ },
    'two changes past the commit index',
  );
});

// ---------------------------------------------------------------- linearizability

type KvOp = Operation<KvInput, KvOutput>;
const put = (key: string, value: string, call: number, ret?: number): KvOp => ({
  clientId: call,
  input: { op: 'put', key, value },
  call,
  ...(ret === undefined ? {} : { ret, output: { op: 'put' } }),
});
const get = (key: string, value: string | null, call: number, ret: number): KvOp => ({
  clientId: call,
  input: { op: 'get', key },
  call,
  ret,
  output: { op: 'get', value },
});

t.test('checkKvHistory: ok, illegal (naming the key) and unknown after a retry', async (t) => {
  const good = [put('a', '1', 0, 1), get('a', '1', 2, 3), put('b', '2', 4, 5), get('b', '2', 6, 7)];
  t.match(checkKvHistory(good), { outcome: 'ok', keys: 2, operations: 4, unknownKeys: [] });
  const stale = [
    put('a', '1', 0, 1),
    put('b', '1', 0, 1),
    put('a', '2', 2, 3),
    get('a', '1', 4, 5),
  ];
  const bad = checkKvHistory(stale);
  t.equal(bad.outcome, 'illegal', 'a stale read after an acknowledged write');
  t.equal(bad.illegal?.key, 'a');
  // Many concurrent writes and a contradictory read: too much for a tiny budget, twice.
  const tangled: KvOp[] = [];
  for (let i = 0; i < 12; i++) tangled.push(put('k', `w${i}`, 0, 100));
  tangled.push(get('k', 'w3', 101, 102), get('k', 'w4', 103, 104), get('k', 'w3', 105, 106));
  tangled.push(put('z', 'x', 0, 1), get('z', 'x', 2, 3));
  const gaveUp = checkKvHistory(tangled, { maxSteps: 5, retryFactor: 2 });
  t.equal(gaveUp.outcome, 'unknown', 'a give-up is never a pass');
  t.same(gaveUp.unknownKeys, ['k']);
  t.ok(gaveUp.retriedKeys.includes('k'), 'retried before giving up');
  t.match(gaveUp.reason, /budget/);
  const decided = checkKvHistory(tangled, { maxSteps: 5, retryFactor: 1_000_000 });
  t.equal(decided.outcome, 'illegal', 'with a larger budget the retry decides');
  t.equal(decided.illegal?.key, 'k');
  // An illegal key wins over an unknown one, whichever comes first.
  const both = [...tangled, put('y', '1', 200, 201), get('y', null, 202, 203)];
  t.equal(checkKvHistory(both, { maxSteps: 5, retryFactor: 2 }).outcome, 'illegal');
});

t.test(
  'checkInWriteOrder decides a key exactly once the log order of writes is known',
  async (t) => {
    const order = new Map([
      ['1', 10],
      ['2', 11],
      ['3', 12],
    ]);
    // Concurrent writes; reads agree with the log order 1, 2, 3.
    const ok = [
      put('a', '2', 0, 10),
      put('a', '1', 0, 10),
      put('a', '3', 0, 10),
      get('a', '1', 1, 2),
      get('a', '3', 11, 12),
    ];
    t.same(checkInWriteOrder(ok, order), { outcome: 'ok' });
    const stale = [put('a', '1', 0, 1), put('a', '2', 2, 3), get('a', '1', 4, 5)];
    t.match(
      checkInWriteOrder(stale, order),
      { outcome: 'illegal', info: /real time/ },
      'a stale read',
    );
    const backwards = [
      put('a', '1', 0, 9),
      put('a', '2', 0, 9),
      get('a', '2', 1, 2),
      get('a', '1', 3, 4),
    ];
    t.match(
      checkInWriteOrder(backwards, order),
      { outcome: 'illegal' },
      'reads going back in the log',
    );
    t.match(checkInWriteOrder([get('a', '9', 0, 1)], order), {
      outcome: 'illegal',
      info: /no write/,
    });
    t.match(checkInWriteOrder([put('a', '7', 0, 1)], order), {
      outcome: 'illegal',
      info: /not in the log/,
    });
    const casOp = (expected: string | null, value: string, call: number, ret: number): KvOp => ({
      clientId: call,
      input: { op: 'cas', key: 'a', expected, value },
      call,
      ret,
      output: { op: 'cas', ok: true },
    });
    t.same(checkInWriteOrder([put('a', '1', 0, 1), casOp('1', '2', 2, 3)], order), {
      outcome: 'ok',
    });
    t.match(checkInWriteOrder([put('a', '1', 0, 1), casOp(null, '2', 2, 3)], order), {
      outcome: 'illegal',
      info: /CAS/,
    });
    const del: KvOp = {
      clientId: 1,
      input: { op: 'delete', key: 'a' },
      call: 0,
      ret: 1,
      output: { op: 'delete', deleted: false },
    };
    t.match(checkInWriteOrder([del], order), { outcome: 'not-applicable' });
    // An unknown-outcome write that never reached the log is left out.
    t.same(checkInWriteOrder([put('a', '8', 0), get('a', null, 1, 2)], order), { outcome: 'ok' });
  },
);

t.test(
  'checkKvHistory decides a key the search gave up on in log order, when given it',
  async (t) => {
    const tangled: KvOp[] = [];
    const order = new Map<string, number>();
    for (let i = 0; i < 12; i++) {
      tangled.push(put('k', `w${i}`, 0, 100));
      order.set(`w${i}`, i + 1);
    }
    tangled.push(get('k', 'w3', 101, 102), get('k', 'w4', 103, 104), get('k', 'w3', 105, 106));
    const bad = checkKvHistory(tangled, { maxSteps: 5, retryFactor: 2, writeOrder: order });
    t.match(bad, { outcome: 'illegal', illegal: { key: 'k' }, decidedInWriteOrder: ['k'] });
    const fine = [...tangled.slice(0, 12), get('k', 'w11', 101, 102), get('k', 'w11', 103, 104)];
    const good = checkKvHistory(fine, { maxSteps: 5, retryFactor: 1, writeOrder: order });
    t.match(good, { outcome: 'ok', unknownKeys: [], decidedInWriteOrder: ['k'] });
  },
);

t.test('pruneKvHistory drops only what cannot matter', async (t) => {
  const history = [
    put('a', 'seen', 0),
    put('a', 'hidden', 0),
    { clientId: 9, input: { op: 'get', key: 'a' }, call: 1 } as KvOp,
    get('a', 'seen', 2, 3),
    put('b', 'hidden-b', 0),
    {
      clientId: 8,
      input: { op: 'delete', key: 'b' },
      call: 1,
      ret: 2,
      output: { op: 'delete', deleted: true },
    } as KvOp,
  ];
  const kept = pruneKvHistory(history).map((op) =>
    op.input.op === 'put' ? op.input.value : op.input.op,
  );
  t.same(
    kept,
    ['seen', 'get', 'hidden-b', 'delete'],
    'an unseen unknown put goes, unless a delete could have seen it',
  );
  // The delete saw "hidden-b": dropping it would make a linearizable history illegal.
  t.equal(checkKvHistory(history).outcome, 'ok');
});

t.test(
  'register check: stale, invented, backwards and out-of-order histories are rejected',
  async (t) => {
    const index = new Map([
      ['1', 2],
      ['2', 3],
    ]);
    const ok = [put('a', '1', 0, 1), put('a', '2', 2, 3), get('a', '2', 4, 5), get('a', '2', 6, 7)];
    t.doesNotThrow(() => checkRegisterReads(ok, index));
    const reject = (history: KvOp[], pattern: RegExp, what: string, idx = index) =>
      t.throws(
        () => checkRegisterReads(history, idx),
        { name: 'Violation', message: pattern },
        what,
      );
    reject(
      [put('a', '1', 0, 1), put('a', '2', 2, 3), get('a', '1', 4, 5)],
      /stale read/,
      'stale read',
    );
    reject([get('a', '9', 0, 1)], /never committed/, 'a value nobody wrote');
    reject(
      [get('a', '2', 0, 1), put('a', '2', 2, 3)],
      /before it was written/,
      'a read from the future',
    );
    reject(
      [put('a', '1', 0), put('a', '2', 0), get('a', '2', 1, 2), get('a', '1', 3, 4)],
      /went backwards/,
      'reads going backwards',
    );
    reject(
      [put('a', '2', 0, 1), put('a', '1', 2, 3)],
      /out of real-time order/,
      'a later write placed earlier in the log',
    );
    reject([put('a', '3', 0, 1)], /never applied/, 'an acknowledged write missing from the log');
    // Deleted keys are left to the general search.
    const deleted: KvOp = {
      clientId: 5,
      input: { op: 'delete', key: 'a' },
      call: 5,
      ret: 6,
      output: { op: 'delete', deleted: true },
    };
    t.doesNotThrow(() =>
      checkRegisterReads([put('a', '1', 0, 1), deleted, get('a', null, 7, 8)], index),
    );
  },
);

// ---------------------------------------------------------------- durability

t.test(
  'durability: acknowledged writes present, refused ones absent, unknowns either',
  async (t) => {
    const writes = [
      { key: 'k1', value: 'v1', outcome: 'ok' as const },
      { key: 'k2', value: 'v2', outcome: 'refused' as const },
      { key: 'k3', value: 'v3', outcome: 'unknown' as const },
      { key: 'k4', value: 'v4', outcome: 'unknown' as const },
    ];
    const final = new Map<string, string | null>([
      ['k1', 'v1'],
      ['k2', null],
      ['k3', 'v3'],
    ]);
    t.same(checkDurability(writes, final), {
      ok: 1,
      refused: 1,
      unknownPresent: 1,
      unknownAbsent: 1,
    });
    const lost = new Map(final);
    lost.delete('k1');
    t.throws(() => checkDurability(writes, lost), {
      name: 'Violation',
      property: 'durability',
      message: /k1=v1 is missing/,
    });
    const changed = new Map(final).set('k1', 'other');
    t.throws(() => checkDurability(writes, changed), {
      property: 'durability',
      message: /k1=other/,
    });
    const applied = new Map(final).set('k2', 'v2');
    t.throws(() => checkDurability(writes, applied), {
      property: 'durability',
      message: /refused write k2=v2 was applied/,
    });
    const invented = new Map(final).set('k4', 'x');
    t.throws(() => checkDurability(writes, invented), {
      property: 'durability',
      message: /nobody wrote/,
    });
    t.throws(
      () => checkDurability([...writes, writes[0]!], final),
      TypeError,
      'keys must be unique',
    );
  },
);

// ---------------------------------------------------------------- lease safety

t.test('lease safety: an expiry revoke before TTL on the slowest clock is rejected', async (t) => {
  const c = new LeaseSafetyChecker({ minClockRate: 0.99 });
  c.granted(1, 1000, 0);
  c.keepaliveAcked(1, 500);
  // 1000 ms on a clock at 0.99 takes 1000 / 0.99 ≈ 1010.1 ms of true time.
  t.throws(() => c.revoked(1, 1505, 'expired'), {
    name: 'Violation',
    property: 'lease-safety',
    message: /lease 1/,
  });

  const ok = new LeaseSafetyChecker({ minClockRate: 0.99 });
  ok.granted('L', 1000, 0);
  ok.keepaliveAcked('L', 500);
  t.doesNotThrow(() => ok.revoked('L', 1511, 'expired'), 'after TTL / minClockRate');
  t.doesNotThrow(() => ok.revoked('L', 1600, 'expired'), "another replica's later apply");
  t.ok(ok.stats.minSlackMs >= 0 && ok.stats.minSlackMs < 1, `slack ${ok.stats.minSlackMs}`);

  const early = new LeaseSafetyChecker({ minClockRate: 1 });
  early.granted(2, 1000, 100);
  t.throws(
    () => early.revoked(2, 1099, 'expired'),
    { name: 'Violation', property: 'lease-safety' },
    'revoked 1 ms early after the grant',
  );

  const client = new LeaseSafetyChecker({ minClockRate: 0.99 });
  client.granted(3, 1000, 0);
  t.doesNotThrow(() => client.revoked(3, 10, 'client'), 'a client may revoke at any time');

  const late = new LeaseSafetyChecker({ minClockRate: 1 });
  late.granted(4, 1000, 0);
  late.revoked(4, 1000, 'expired');
  t.throws(
    () => late.keepaliveAcked(4, 1200),
    { name: 'Violation', property: 'lease-safety' },
    'a keepalive acknowledged after the revoke',
  );

  const unknown = new LeaseSafetyChecker({ minClockRate: 1 });
  t.doesNotThrow(() => unknown.revoked(5, 1, 'expired'), 'nobody was told the lease lived');
  t.match(unknown.stats, { expiredRevokes: 1, checkedRevokes: 0 });
  t.throws(() => new LeaseSafetyChecker({ minClockRate: 1.5 }), RangeError);
});

t.test('Violation carries the property name', async (t) => {
  const v = new Violation('durability', 'x');
  t.equal(v.property, 'durability');
  t.equal(v.message, 'durability: x');
});
