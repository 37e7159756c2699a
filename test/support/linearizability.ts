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
 * get a return event at +Infinity, so they stay pending for the rest of the
 * history and may be linearized at any point after their call. The search
 * succeeds as soon as every op with a known outcome is linearized, which lets
 * unknown ops be omitted entirely.
 *
 * Definite failures (a request rejected before it could have been applied, such
 * as "not leader" without forwarding) must not be recorded at all: recording
 * them as unknown is sound but makes the search slower, and recording them with
 * an output would claim they took effect.
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

  // Keep going after an 'unknown' partition: a definite violation elsewhere is more useful.
  let firstUnknown: CheckResult | undefined;
  for (const [name, indices] of partitions) {
    const ops = indices.map((index) => ({ index, op: history[index]! }));
    const result = searchPartition(model, ops, maxSteps);
    if (result.kind === 'illegal') {
      return {
        outcome: 'illegal',
        partition: name,
        info: explainViolation(model, name, ops, maxSteps),
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
  | { kind: 'ok' }
  | { kind: 'illegal'; deepest: DeadEnd<S> }
  | { kind: 'exhausted'; deepest: DeadEnd<S> };

const NIL = -1;
const HEAD = 0;

function searchPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: IndexedOp<I, O>[],
  maxSteps: number,
): SearchResult<S> {
  const opCount = ops.length;
  const isKnown = ops.map(({ op }) => op.ret !== undefined);
  const knownCount = isKnown.filter(Boolean).length;
  if (knownCount === 0) return { kind: 'ok' };

  // Event list as a doubly linked list over typed arrays; node 0 is the head sentinel.
  const events: { time: number; isCall: boolean; op: number }[] = [];
  ops.forEach(({ op }, local) => {
    events.push({ time: op.call, isCall: true, op: local });
    events.push({ time: op.ret ?? Number.POSITIVE_INFINITY, isCall: false, op: local });
  });
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    // Tie rule: calls before returns, so equal timestamps mean "concurrent".
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1;
    return a.op - b.op;
  });
  const nodeCount = events.length + 1;
  const next = new Int32Array(nodeCount);
  const prev = new Int32Array(nodeCount);
  const nodeOp = new Int32Array(nodeCount);
  const nodeIsCall = new Uint8Array(nodeCount);
  const callNode = new Int32Array(opCount);
  const retNode = new Int32Array(opCount);
  for (let node = 0; node < nodeCount; node++) {
    prev[node] = node - 1;
    next[node] = node + 1 < nodeCount ? node + 1 : NIL;
  }
  events.forEach((event, position) => {
    const node = position + 1;
    nodeOp[node] = event.op;
    nodeIsCall[node] = event.isCall ? 1 : 0;
    if (event.isCall) callNode[event.op] = node;
    else retNode[event.op] = node;
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
    unlink(retNode[op]!);
  };
  const unlift = (op: number) => {
    relink(retNode[op]!);
    relink(callNode[op]!);
  };

  // Lowe's cache: (set of linearized ops, model state) configurations already explored.
  // The Zobrist hash of the bitset narrows the bucket; bitsets are then compared exactly.
  const words = Math.ceil(opCount / 32);
  const linearized = new Uint32Array(words);
  const zobristKeys = makeZobristKeys(opCount);
  let zobrist = 0;
  const seen = new Map<string, Uint32Array[]>();
  const rememberConfiguration = (stateHash: string): boolean => {
    const key = zobrist + '|' + stateHash;
    const bucket = seen.get(key);
    if (bucket) {
      for (const bits of bucket) if (sameBits(bits, linearized)) return false;
      bucket.push(linearized.slice());
    } else {
      seen.set(key, [linearized.slice()]);
    }
    return true;
  };
  const toggle = (op: number) => {
    linearized[op >>> 5]! ^= 1 << (op & 31);
    zobrist ^= zobristKeys[op]!;
  };

  const stackOps: number[] = [];
  const stackStates: S[] = [];
  let state = model.init();
  let knownLinearized = 0;
  let deepest: DeadEnd<S> | undefined;
  let steps = 0;
  let node = next[HEAD]!;

  const recordDeadEnd = (blocking: number) => {
    if (deepest && deepest.prefix.length >= stackOps.length) return;
    const pending: number[] = [];
    for (let n = next[HEAD]!; n !== NIL; n = next[n]!) {
      if (nodeIsCall[n]) pending.push(nodeOp[n]!);
      else if (n === retNode[blocking]) break;
    }
    deepest = { prefix: stackOps.slice(), state, blocking, pending };
  };

  for (;;) {
    if (knownLinearized === knownCount) return { kind: 'ok' };
    if (++steps > maxSteps) {
      const current = { prefix: stackOps.slice(), state, blocking: NIL, pending: [] };
      return { kind: 'exhausted', deepest: deepest ?? current };
    }
    // `node` is never NIL here: some known op is unlinearized, and its return ends every scan.
    const op = nodeOp[node]!;
    if (nodeIsCall[node]) {
      const candidate = ops[op]!.op;
      const result = model.step(state, candidate.input);
      if (!isKnown[op] || model.matches(result.output, candidate.output as O)) {
        toggle(op);
        if (rememberConfiguration(model.hash(result.state))) {
          stackOps.push(op);
          stackStates.push(state);
          state = result.state;
          lift(op);
          if (isKnown[op]) knownLinearized++;
          node = next[HEAD]!;
          continue;
        }
        toggle(op);
      }
      node = next[node]!;
    } else {
      // A return: its op had to be linearized by now, and no pending op could go next.
      recordDeadEnd(op);
      const undone = stackOps.pop();
      if (undone === undefined) return { kind: 'illegal', deepest: deepest! };
      state = stackStates.pop()!;
      toggle(undone);
      unlift(undone);
      if (isKnown[undone]) knownLinearized--;
      node = next[callNode[undone]!]!;
    }
  }
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
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
 * binary search over return times works.
 */
function explainViolation<S, I, O>(
  model: Model<S, I, O>,
  partition: string,
  ops: IndexedOp<I, O>[],
  maxSteps: number,
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

  let failing = ops;
  let cutTime = cutTimes[cutTimes.length - 1];
  let deadEnd: DeadEnd<S> | undefined;
  let low = 0;
  let high = cutTimes.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const candidate = truncate(cutTimes[middle]!);
    const result = searchPartition(model, candidate, maxSteps);
    if (result.kind === 'illegal') {
      failing = candidate;
      cutTime = cutTimes[middle];
      deadEnd = result.deepest;
      high = middle - 1;
    } else {
      low = middle + 1;
    }
  }
  if (!deadEnd) {
    // Unreachable unless the model is nondeterministic; re-run the full history.
    const result = searchPartition(model, ops, maxSteps);
    if (result.kind === 'ok') return `partition "${partition}": non-deterministic verdict`;
    deadEnd = result.deepest;
  }

  const lines: string[] = [];
  const blocking = failing[deadEnd.blocking]!;
  lines.push(
    `partition "${partition}": not linearizable; the first ${failing.length} of ${ops.length} ops ` +
      `(those invoked by t=${cutTime}, with any still running then treated as unknown) ` +
      `already admit no linearization.`,
  );
  lines.push(
    `Longest linearizable prefix found: ${deadEnd.prefix.length} ops` +
      (deadEnd.prefix.length > REPORT_LIMIT ? ` (last ${REPORT_LIMIT} shown)` : '') +
      ':',
  );
  for (const local of deadEnd.prefix.slice(-REPORT_LIMIT)) {
    lines.push('  ' + describeOperation(failing[local]!));
  }
  lines.push(`State after it: ${stringify(deadEnd.state)}`);
  lines.push(
    `Then op #${blocking.index} must take effect before its return at t=${blocking.op.ret}, ` +
      `but none of the pending ops can be linearized next:`,
  );
  for (const local of deadEnd.pending.slice(0, REPORT_LIMIT)) {
    const pending = failing[local]!;
    const modelOutput = model.step(deadEnd.state, pending.op.input).output;
    lines.push(`  ${describeOperation(pending)}   (model would return ${stringify(modelOutput)})`);
  }
  if (deadEnd.pending.length > REPORT_LIMIT) {
    lines.push(`  ... and ${deadEnd.pending.length - REPORT_LIMIT} more`);
  }
  return lines.join('\n');
}

function describeOperation<I, O>({ index, op }: IndexedOp<I, O>): string {
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
  // The prefix keeps null distinct from any string value.
  hash: (state) => (state === null ? 'absent' : 'value:' + state),
};

// ---------------------------------------------------------------------------
// Recording histories

/**
 * Records operations from async test code:
 *
 *   const done = recorder.begin(clientId, input);
 *   try { done(await client.run(input)); } catch (e) { if (mayHaveApplied(e)) done(); }
 *
 * Call the returned function with the output on success. Call it with no
 * argument (or never) when the outcome is unknown. Definite failures, where the
 * request certainly was not applied, should not be recorded: there is no API to
 * retract an op, so only begin() ops that you will either complete or leave
 * unknown.
 *
 * The default clock is a counter bumped on every begin/complete: in a single
 * process it orders events exactly as the test observed them, with no ties.
 */
export class HistoryRecorder<I, O> {
  private readonly recorded: Operation<I, O>[] = [];
  private readonly now: () => number;

  constructor(now?: () => number) {
    let tick = 0;
    this.now = now ?? (() => tick++);
  }

  begin(clientId: number, input: I): (output?: O) => void {
    const op: Operation<I, O> = { clientId, input, call: this.now() };
    this.recorded.push(op);
    // Rest parameter so that an explicit `undefined` output (void models) still counts.
    return (...result: [output?: O]) => {
      if (result.length === 0) return;
      if (op.ret !== undefined) throw new Error('HistoryRecorder: operation completed twice');
      op.ret = this.now();
      op.output = result[0];
    };
  }

  operations(): Operation<I, O>[] {
    return this.recorded.map((op) => ({ ...op }));
  }
}
