/**
 * Linearizability checker in the style of Wing & Gong, with Lowe's memoization
 * ("Testing for linearizability", 2017), generic over a sequential model.
 *
 * Time and ties: op A precedes op B in real time iff `A.ret < B.call` (strict).
 * Equal timestamps therefore mean "concurrent": when events are sorted, a call
 * at time t goes before a return at the same time t, so an op that returns at t
 * overlaps one invoked at t. This is the conservative choice for coarse clocks
 * (it allows more orders, so it can never report a false violation because two
 * events happened to land on the same tick).
 *
 * Unknown outcomes (`ret === undefined`, e.g. a timeout or a crashed client)
 * are treated as returning at +Infinity: they stay pending for the rest of the
 * history and may be linearized at any point after their call. The search
 * succeeds as soon as every op with a known outcome is linearized, which lets
 * unknown ops be omitted entirely.
 *
 * Definite failures (a request rejected before it could have been applied, such
 * as "not leader" without forwarding) must not be recorded at all (with
 * HistoryRecorder: call `fail()` on the completion). Recording them as unknown
 * is sound but makes the search slower; recording them with an output would
 * claim they took effect.
 */

export interface Model<S, I, O> {
  init(): S;
  /** Must not mutate `state`: the search keeps old states on its backtracking stack. */
  step(state: S, input: I): { state: S; output: O };
  matches(modelOutput: O, observed: O): boolean;
  /** Ops in different partitions are checked independently (P-compositionality). */
  partition?(input: I): string;
  /** Must be equal for equal states and distinct for different ones: it keys the memo cache. */
  hash(state: S): string;
}

export interface Operation<I, O> {
  clientId: number;
  input: I;
  call: number;
  /** undefined = outcome unknown: may have taken effect at any time after `call`, or never. */
  ret?: number;
  /** Ignored when `ret` is undefined. */
  output?: O;
}

export type CheckResult =
  | { outcome: 'ok' }
  | { outcome: 'illegal'; partition: string; info: string }
  | { outcome: 'unknown'; partition: string; reason: string };

export interface CheckOptions {
  /** Search steps allowed per partition before giving up with 'unknown'. */
  maxSteps?: number;
}

const DEFAULT_MAX_STEPS = 5_000_000;
/** Partition name used when the model does not partition its inputs. */
export const SINGLE_PARTITION = '*';
/** Enough to shrink small histories even when finding the violation was quick. */
const MIN_EXPLANATION_STEPS = 100_000;
/** How many ops of each kind the illegal report lists before eliding. */
const REPORT_LIMIT = 12;

export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  options?: CheckOptions,
): CheckResult {
  const maxSteps = options?.maxSteps ?? DEFAULT_MAX_STEPS;
  history.forEach(validateOperation);

  const partitions = new Map<string, number[]>();
  history.forEach((op, index) => {
    const name = model.partition ? model.partition(op.input) : SINGLE_PARTITION;
    const members = partitions.get(name);
    if (members) members.push(index);
    else partitions.set(name, [index]);
  });

  // Explaining may at most about double the cost of finding the violation.
  const explanationBudget = (searchSteps: number) =>
    Math.min(maxSteps, Math.max(MIN_EXPLANATION_STEPS, searchSteps));

  // Keep going after an 'unknown' partition: a definite violation elsewhere is more useful.
  let firstUnknown: CheckResult | undefined;
  for (const [name, indices] of partitions) {
    const ops = indices.map((index) => ({ index, op: history[index]! }));
    const result = searchPartition(model, ops, maxSteps);
    if (result.kind === 'illegal') {
      return {
        outcome: 'illegal',
        partition: name,
        info: explainViolation(model, name, ops, result.deepest, explanationBudget(result.steps)),
      };
    }
    if (result.kind === 'exhausted' && !firstUnknown) {
      const unknownCount = ops.filter(({ op }) => op.ret === undefined).length;
      firstUnknown = {
        outcome: 'unknown',
        partition: name,
        reason:
          `search budget of ${maxSteps} steps exhausted for partition "${name}" ` +
          `(${ops.length} ops, ${unknownCount} with unknown outcome; ` +
          `deepest linearized prefix reached: ${result.deepest.prefix.length} ops)`,
      };
    }
  }
  return firstUnknown ?? { outcome: 'ok' };
}

function validateOperation<I, O>(op: Operation<I, O>, index: number): void {
  if (!Number.isFinite(op.call)) {
    throw new RangeError(`operation #${index}: call time must be a finite number, got ${op.call}`);
  }
  if (op.ret !== undefined && (Number.isNaN(op.ret) || op.ret < op.call)) {
    throw new RangeError(`operation #${index}: ret (${op.ret}) must be >= call (${op.call})`);
  }
}

interface IndexedOp<I, O> {
  /** Position in the caller's history, so reports can refer to it. */
  index: number;
  op: Operation<I, O>;
}

/** Where the search got stuck with the longest linearized prefix it ever built. */
interface DeadEnd<S> {
  /** Partition-local op numbers, in linearization order. */
  prefix: number[];
  state: S;
  /** The op whose return could not be passed (it had to be linearized by then); NIL if none yet. */
  blocking: number;
  /** Ops that were invoked and not yet linearized at that point. */
  pending: number[];
}

type SearchResult<S> =
  | { kind: 'ok'; steps: number }
  | { kind: 'illegal'; steps: number; deepest: DeadEnd<S> }
  | { kind: 'exhausted'; steps: number; deepest: DeadEnd<S> };

const NIL = -1;
const FULL_WORD = 0xffffffff;
const HEAD = 0;

function searchPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: IndexedOp<I, O>[],
  maxSteps: number,
): SearchResult<S> {
  const opCount = ops.length;
  const isKnown = ops.map(({ op }) => op.ret !== undefined);
  const knownCount = isKnown.filter(Boolean).length;
  if (knownCount === 0) return { kind: 'ok', steps: 0 };

  // Events sorted by time, as doubly linked lists over typed arrays. Known-outcome ops
  // have a call and a return in the main list. Unknown-outcome ops return at +Infinity,
  // which never blocks anything, so they only have a call, kept in a list of their own:
  // the main scan then never walks past them. Node numbers follow the sorted order.
  const events: { time: number; isCall: boolean; op: number }[] = [];
  ops.forEach(({ op }, local) => {
    events.push({ time: op.call, isCall: true, op: local });
    if (op.ret !== undefined) events.push({ time: op.ret, isCall: false, op: local });
  });
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    // Tie rule: calls before returns, so equal timestamps mean "concurrent".
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1;
    return a.op - b.op;
  });
  const UNKNOWN_HEAD = events.length + 1;
  const nodeCount = events.length + 2;
  const next = new Int32Array(nodeCount);
  const prev = new Int32Array(nodeCount);
  const nodeOp = new Int32Array(nodeCount);
  const nodeIsCall = new Uint8Array(nodeCount);
  const callNode = new Int32Array(opCount);
  const retNode = new Int32Array(opCount).fill(NIL);
  next[HEAD] = NIL;
  next[UNKNOWN_HEAD] = NIL;
  let mainTail = HEAD;
  let unknownTail = UNKNOWN_HEAD;
  events.forEach((event, position) => {
    const node = position + 1;
    nodeOp[node] = event.op;
    nodeIsCall[node] = event.isCall ? 1 : 0;
    if (event.isCall) callNode[event.op] = node;
    else retNode[event.op] = node;
    const tail = isKnown[event.op] ? mainTail : unknownTail;
    next[tail] = node;
    prev[node] = tail;
    next[node] = NIL;
    if (isKnown[event.op]) mainTail = node;
    else unknownTail = node;
  });

  const unlink = (node: number) => {
    next[prev[node]!] = next[node]!;
    if (next[node] !== NIL) prev[next[node]!] = prev[node]!;
  };
  const relink = (node: number) => {
    next[prev[node]!] = node;
    if (next[node] !== NIL) prev[next[node]!] = node;
  };
  // Dancing-links style: relink in the reverse order of unlinking.
  const lift = (op: number) => {
    unlink(callNode[op]!);
    if (isKnown[op]) unlink(retNode[op]!);
  };
  const unlift = (op: number) => {
    if (isKnown[op]) relink(retNode[op]!);
    relink(callNode[op]!);
  };

  // Lowe's cache of explored configurations (linearized ops, model state), extended
  // with a dominance rule for unknown-outcome ops: (K, U, s) is pruned if some
  // (K, U', s) with U' ⊆ U was already visited, where K and U are the linearized
  // known and unknown ops. Sound because pending unknown ops never block anything
  // (their return is at +Infinity), so every continuation of (K, U, s) is also
  // one of (K, U', s). Without it, each unknown op doubles the configurations
  // that a violating history has to refute. The bucket key is a Zobrist hash of
  // K plus the state hash; bitsets are then compared exactly.
  //
  // Known ops get bit slots in call order, so K is a run of all-ones words, a short
  // window, then zero words. Tracking where the window lies lets the cache store and
  // compare only the window, which matters for partitions with thousands of ops.
  const slot = new Int32Array(opCount); // index into the known or the unknown bitset
  let knownSlots = 0;
  let unknownSlots = 0;
  for (const event of events) {
    if (event.isCall) slot[event.op] = isKnown[event.op] ? knownSlots++ : unknownSlots++;
  }
  const linearizedKnown = new Uint32Array(Math.ceil(knownSlots / 32));
  let knownFullWords = 0; // words [0, knownFullWords) are all ones
  let knownTopWord = 0; // words [knownTopWord, ...) are zero
  const linearizedUnknown = new Uint32Array(Math.ceil(unknownSlots / 32));
  const zobristKeys = makeZobristKeys(knownSlots);
  let zobrist = 0;
  // state hash -> Zobrist hash of K -> the K bitsets with that hash, each with the
  // antichain of U bitsets visited for it. Two map levels so that lookups allocate nothing.
  const visited = new Map<string, Map<number, CacheGroup[]>>();
  const visitIfNew = (stateHash: string): boolean => {
    let byKnown = visited.get(stateHash);
    if (!byKnown) {
      byKnown = new Map();
      visited.set(stateHash, byKnown);
    }
    let groups = byKnown.get(zobrist);
    if (!groups) {
      groups = [];
      byKnown.set(zobrist, groups);
    }
    const group = groups.find(
      (candidate) =>
        candidate.fullWords === knownFullWords &&
        candidate.topWord === knownTopWord &&
        sameWords(candidate.window, linearizedKnown, knownFullWords),
    );
    if (!group) {
      groups.push({
        fullWords: knownFullWords,
        topWord: knownTopWord,
        window: linearizedKnown.slice(knownFullWords, knownTopWord),
        unknowns: [linearizedUnknown.slice()],
      });
      return true;
    }
    let dominatesSome = false;
    for (const unknown of group.unknowns) {
      if (isSubset(unknown, linearizedUnknown)) return false;
      dominatesSome ||= isSubset(linearizedUnknown, unknown);
    }
    if (dominatesSome) {
      // Entries the new one dominates can never prune anything it would not.
      group.unknowns = group.unknowns.filter((unknown) => !isSubset(linearizedUnknown, unknown));
    }
    group.unknowns.push(linearizedUnknown.slice());
    return true;
  };
  const toggle = (op: number) => {
    const bit = slot[op]!;
    if (isKnown[op]) {
      const index = bit >>> 5;
      linearizedKnown[index]! ^= 1 << (bit & 31);
      const word = linearizedKnown[index]!; // read back: the ^= expression is a signed int32
      zobrist ^= zobristKeys[bit]!;
      if (word === FULL_WORD && index === knownFullWords) {
        while (linearizedKnown[knownFullWords] === FULL_WORD) knownFullWords++;
      } else if (word !== FULL_WORD && index < knownFullWords) {
        knownFullWords = index;
      }
      if (word !== 0 && index >= knownTopWord) {
        knownTopWord = index + 1;
      } else if (word === 0 && index === knownTopWord - 1) {
        while (knownTopWord > 0 && linearizedKnown[knownTopWord - 1] === 0) knownTopWord--;
      }
    } else {
      linearizedUnknown[bit >>> 5]! ^= 1 << (bit & 31);
    }
  };

  // Backtracking stack: the op linearized at each level, the state before it, and for
  // unknown ops the parent's unknown pass to resume.
  const stackOps: number[] = [];
  const stackStates: S[] = [];
  const stackPasses: (UnknownPass<S> | undefined)[] = [];
  let state = model.init();
  let knownLinearized = 0;
  let deepest: DeadEnd<S> | undefined;
  let deepestKnown = -1;
  let steps = 0;

  // Ranked by known ops linearized, then by fewer unknown ops assumed to have taken effect.
  const recordDeadEnd = (blocking: number) => {
    if (knownLinearized < deepestKnown) return;
    if (knownLinearized === deepestKnown && stackOps.length >= deepest!.prefix.length) return;
    const pending: number[] = [];
    const blockingNode = retNode[blocking]!;
    for (let n = next[HEAD]!; n !== blockingNode; n = next[n]!) pending.push(nodeOp[n]!);
    for (let n = next[UNKNOWN_HEAD]!; n !== NIL && n < blockingNode; n = next[n]!) {
      pending.push(nodeOp[n]!);
    }
    pending.sort((a, b) => callNode[a]! - callNode[b]!);
    deepest = { prefix: stackOps.slice(), state, blocking, pending };
    deepestKnown = knownLinearized;
  };

  // Each configuration is expanded in two passes. The known pass scans the event list
  // from the head, linearizing the first known-outcome call that fits. When it reaches
  // a return, the unknown pass registers every unknown-outcome successor in the cache
  // up front and only then descends into them one by one. Registering siblings first
  // means (K, U, s) is seen before its supersets such as (K, U + {a, b}, s'), which
  // the dominance rule then prunes; plain depth-first order would reach those
  // supersets first and explore exponentially many subsets of unknown ops.
  let node = next[HEAD]!; // known-pass scan position
  let unknownPass: UnknownPass<S> | undefined; // set once the known pass is done
  for (;;) {
    if (knownLinearized === knownCount) return { kind: 'ok', steps };
    if (++steps > maxSteps) {
      const current = { prefix: stackOps.slice(), state, blocking: NIL, pending: [] };
      return { kind: 'exhausted', steps, deepest: deepest ?? current };
    }

    if (!unknownPass) {
      // `node` is never NIL: some known op is unlinearized and its return ends the scan.
      const op = nodeOp[node]!;
      if (!nodeIsCall[node]) {
        unknownPass = { blocking: op, successors: unknownSuccessors(op), cursor: 0 };
        steps += unknownPass.successors.length;
        continue;
      }
      const candidate = ops[op]!.op;
      const result = model.step(state, candidate.input);
      if (model.matches(result.output, candidate.output as O)) {
        toggle(op);
        if (visitIfNew(model.hash(result.state))) {
          stackOps.push(op);
          stackStates.push(state);
          stackPasses.push(undefined);
          state = result.state;
          lift(op);
          knownLinearized++;
          node = next[HEAD]!;
          continue;
        }
        toggle(op);
      }
      node = next[node]!;
      continue;
    }

    const successor = unknownPass.successors[unknownPass.cursor];
    if (successor) {
      // Already registered in the cache by unknownSuccessors().
      stackOps.push(successor.op);
      stackStates.push(state);
      stackPasses.push(unknownPass);
      state = successor.state;
      toggle(successor.op);
      lift(successor.op);
      node = next[HEAD]!;
      unknownPass = undefined;
      continue;
    }

    // The blocking op had to be linearized by its return, and nothing pending could go next.
    recordDeadEnd(unknownPass.blocking);
    const undone = stackOps.pop();
    if (undone === undefined) return { kind: 'illegal', steps, deepest: deepest! };
    state = stackStates.pop()!;
    unknownPass = stackPasses.pop();
    toggle(undone);
    unlift(undone);
    if (unknownPass) {
      unknownPass.cursor++;
    } else {
      knownLinearized--;
      node = next[callNode[undone]!]!;
    }
  }

  /** Unknown-outcome calls before the blocking return whose successor is not yet covered. */
  function unknownSuccessors(blocking: number): { op: number; state: S }[] {
    const successors: { op: number; state: S }[] = [];
    if (unknownSlots === 0) return successors;
    const blockingNode = retNode[blocking]!;
    for (let n = next[UNKNOWN_HEAD]!; n !== NIL && n < blockingNode; n = next[n]!) {
      const op = nodeOp[n]!;
      const successorState = model.step(state, ops[op]!.op.input).state;
      toggle(op);
      if (visitIfNew(model.hash(successorState))) {
        successors.push({ op, state: successorState });
      }
      toggle(op);
    }
    return successors;
  }
}

/** Visited configurations sharing one set K of linearized known ops (and one state). */
interface CacheGroup {
  /** K: all ones below word fullWords, `window` up to word topWord, zero above. */
  fullWords: number;
  topWord: number;
  window: Uint32Array;
  /** Minimal sets U of linearized unknown ops visited with this K. */
  unknowns: Uint32Array[];
}

/** The unknown-outcome successors of one configuration, explored in order. */
interface UnknownPass<S> {
  /** The return that ended the known pass. */
  blocking: number;
  successors: { op: number; state: S }[];
  cursor: number;
}

/** Whether every bit set in `a` is also set in `b`. */
function isSubset(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if ((a[i]! & ~b[i]!) !== 0) return false;
  return true;
}

/** Whether `window` equals `bits` from word `offset` on, for window.length words. */
function sameWords(window: Uint32Array, bits: Uint32Array, offset: number): boolean {
  for (let i = 0; i < window.length; i++) if (window[i] !== bits[offset + i]) return false;
  return true;
}

/** Deterministic (xorshift32) so that runs are reproducible. */
function makeZobristKeys(count: number): Int32Array {
  const keys = new Int32Array(count);
  let x = 0x9e3779b9 | 0;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    keys[i] = x;
  }
  return keys;
}

/**
 * Builds the report for an illegal partition. It first shrinks the history to
 * the earliest cut-off time T at which it is already non-linearizable (ops
 * invoked after T dropped, ops still running at T treated as unknown), since
 * that keeps the report near the actual anomaly rather than wherever the full
 * search happened to get deepest. Legality only gets harder as T grows, so a
 * binary search over return times works. The probes share one step budget; if
 * it runs out, the report uses the smallest failing cut found so far, or the
 * full search's dead end.
 */
function explainViolation<S, I, O>(
  model: Model<S, I, O>,
  partition: string,
  ops: IndexedOp<I, O>[],
  fullDeadEnd: DeadEnd<S>,
  stepBudget: number,
): string {
  const cutTimes = [...new Set(ops.flatMap(({ op }) => (op.ret === undefined ? [] : [op.ret])))];
  cutTimes.sort((a, b) => a - b);
  const truncate = (time: number): IndexedOp<I, O>[] =>
    ops
      .filter(({ op }) => op.call <= time)
      .map(({ index, op }) =>
        op.ret !== undefined && op.ret <= time
          ? { index, op }
          : { index, op: { clientId: op.clientId, input: op.input, call: op.call } },
      );

  // The full search's dead end is the fallback if the probes run out of budget.
  let failing = ops;
  let cutTime: number | undefined;
  let deadEnd = fullDeadEnd;
  let budget = stepBudget;
  let low = 0;
  let high = cutTimes.length - 2; // the last cut is the full history, already known to fail
  while (low <= high && budget > 0) {
    const middle = (low + high) >>> 1;
    const candidate = truncate(cutTimes[middle]!);
    const result = searchPartition(model, candidate, budget);
    budget -= result.steps;
    if (result.kind === 'illegal') {
      failing = candidate;
      cutTime = cutTimes[middle];
      deadEnd = result.deepest;
      high = middle - 1;
    } else {
      low = middle + 1;
    }
  }

  // Show ops as recorded, not as truncated for the probe.
  const recorded = new Map(ops.map(({ index, op }) => [index, op]));
  const describe = ({ index }: IndexedOp<I, O>) => describeOperation(index, recorded.get(index)!);

  const lines: string[] = [];
  const blocking = failing[deadEnd.blocking]!;
  lines.push(
    cutTime === undefined
      ? `partition "${partition}": not linearizable (${ops.length} ops).`
      : `partition "${partition}": not linearizable; the first ${failing.length} of ${ops.length} ` +
          `ops (those invoked by t=${cutTime}, with any still running then treated as unknown) ` +
          `already admit no linearization.`,
  );
  lines.push(
    `Longest linearizable prefix found: ${deadEnd.prefix.length} ops` +
      (deadEnd.prefix.length > REPORT_LIMIT ? ` (last ${REPORT_LIMIT} shown)` : '') +
      ':',
  );
  for (const local of deadEnd.prefix.slice(-REPORT_LIMIT)) {
    lines.push('  ' + describe(failing[local]!));
  }
  lines.push(`State after it: ${stringify(deadEnd.state)}`);
  lines.push(
    `Then op #${blocking.index} must take effect before its return at t=${blocking.op.ret}, ` +
      `but no pending op can go next:`,
  );
  for (const local of deadEnd.pending.slice(0, REPORT_LIMIT)) {
    const pending = failing[local]!;
    const modelOutput = model.step(deadEnd.state, pending.op.input).output;
    const why =
      pending.op.ret === undefined
        ? 'outcome unknown; taking effect here leads to a dead end too'
        : model.matches(modelOutput, pending.op.output as O)
          ? 'fits here, but leads to a dead end later'
          : `model would return ${stringify(modelOutput)}`;
    lines.push(`  ${describe(pending)}   (${why})`);
  }
  if (deadEnd.pending.length > REPORT_LIMIT) {
    lines.push(`  ... and ${deadEnd.pending.length - REPORT_LIMIT} more`);
  }
  return lines.join('\n');
}

function describeOperation<I, O>(index: number, op: Operation<I, O>): string {
  const interval = `[${op.call}, ${op.ret ?? '?'}]`;
  const outcome = op.ret === undefined ? 'outcome unknown' : stringify(op.output);
  return `#${index} client ${op.clientId} ${interval} ${stringify(op.input)} -> ${outcome}`;
}

function stringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// ---------------------------------------------------------------------------
// KV model

export type KvInput =
  | { op: 'put'; key: string; value: string }
  | { op: 'get'; key: string }
  | { op: 'delete'; key: string }
  /** Succeeds iff the current value === expected (null = key absent). */
  | { op: 'cas'; key: string; expected: string | null; value: string };

export type KvOutput =
  | { op: 'put' }
  | { op: 'get'; value: string | null }
  | { op: 'delete'; deleted: boolean }
  | { op: 'cas'; ok: boolean };

/** State is the value of a single key (null = absent); the history is partitioned by key. */
export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,
  step(state, input) {
    switch (input.op) {
      case 'put':
        return { state: input.value, output: { op: 'put' } };
      case 'get':
        return { state, output: { op: 'get', value: state } };
      case 'delete':
        return { state: null, output: { op: 'delete', deleted: state !== null } };
      case 'cas': {
        const ok = state === input.expected;
        return { state: ok ? input.value : state, output: { op: 'cas', ok } };
      }
    }
  },
  matches(modelOutput, observed) {
    if (observed === undefined || observed === null) return false;
    switch (modelOutput.op) {
      case 'put':
        return observed.op === 'put';
      case 'get':
        return observed.op === 'get' && observed.value === modelOutput.value;
      case 'delete':
        return observed.op === 'delete' && observed.deleted === modelOutput.deleted;
      case 'cas':
        return observed.op === 'cas' && observed.ok === modelOutput.ok;
    }
  },
  partition: (input) => input.key,
  // Returns the value string itself where it can (V8 caches a string's hash, and the
  // cache looks states up constantly); the NUL escape keeps null distinct from every value.
  hash: (state) => (state === null ? '\0absent' : state.startsWith('\0') ? '\0' + state : state),
};

// ---------------------------------------------------------------------------
// Recording histories

/** Completes an operation begun with HistoryRecorder.begin(). */
export type Completion<O> = ((output?: O) => void) & {
  /** Definite failure: the op certainly did not take effect, so it is dropped from the history. */
  fail(): void;
};

/**
 * Records operations from async test code:
 *
 *   const finish = recorder.begin(clientId, input);
 *   try { finish(await client.run(input)); }
 *   catch (error) { if (isRejectedBeforeApply(error)) finish.fail(); else finish(); }
 *
 * Call the returned function with the output on success, and with no argument
 * (or never) when the outcome is unknown (timeout, crash, 504). A definite
 * failure, where the request certainly was not applied (e.g. rejected by a
 * follower before reaching the log), must not appear in the history: call
 * `finish.fail()` to drop it. Leaving it unknown would also be sound, but
 * makes the search slower.
 *
 * The default clock is a counter bumped on every begin/complete: in a single
 * process it orders events exactly as the test observed them, with no ties.
 */
export class HistoryRecorder<I, O> {
  private readonly recorded: Operation<I, O>[] = [];
  private readonly dropped = new Set<Operation<I, O>>();
  private readonly now: () => number;

  constructor(now?: () => number) {
    let tick = 0;
    this.now = now ?? (() => tick++);
  }

  begin(clientId: number, input: I): Completion<O> {
    const op: Operation<I, O> = { clientId, input, call: this.now() };
    this.recorded.push(op);
    // Rest parameter so that an explicit `undefined` output (void models) still counts.
    const finish = (...result: [output?: O]) => {
      if (result.length === 0) return;
      if (op.ret !== undefined || this.dropped.has(op)) {
        throw new Error('HistoryRecorder: operation completed twice');
      }
      op.ret = this.now();
      op.output = result[0];
    };
    const fail = () => {
      if (op.ret !== undefined) throw new Error('HistoryRecorder: failing a completed operation');
      this.dropped.add(op);
    };
    return Object.assign(finish, { fail });
  }

  operations(): Operation<I, O>[] {
    return this.recorded.filter((op) => !this.dropped.has(op)).map((op) => ({ ...op }));
  }
}
