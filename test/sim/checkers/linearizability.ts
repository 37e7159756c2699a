import {
  checkLinearizable,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
} from '../../support/linearizability.js';

export type KvOperation = Operation<KvInput, KvOutput>;

export interface HistoryCheckOptions {
  /** Search steps per key on the first try. */
  maxSteps?: number;
  /** A key that exhausts its budget is searched again with maxSteps × retryFactor. */
  retryFactor?: number;
  /**
   * The log index that applied each written value (values are unique), for
   * every value applied anywhere. With it, a key the search still gives up on
   * is decided exactly against the log's order of writes (checkInWriteOrder),
   * when its ops allow (puts, reads and successful CASes only).
   */
  writeOrder?: ReadonlyMap<string, number>;
}

export interface HistoryCheck {
  outcome: 'ok' | 'illegal' | 'unknown';
  /** Operations checked after pruning, and how many keys (independent partitions) they span. */
  operations: number;
  keys: number;
  /** Keys that needed the larger budget. */
  retriedKeys: string[];
  /** Keys the search gave up on even with the larger budget: neither passed nor failed. */
  unknownKeys: string[];
  /** Keys the search gave up on that the check in log order of writes then decided. */
  decidedInWriteOrder: string[];
  /** For 'illegal': the key and the checker's explanation. */
  illegal?: { key: string; info: string };
  /** For 'unknown': why the search gave up on the first unknown key. */
  reason?: string;
}

export const DEFAULT_MAX_STEPS = 100_000;
export const DEFAULT_RETRY_FACTOR = 10;

/**
 * The simulator's linearizability check of a KV history: each key is its own
 * partition (P-compositionality), searched with a step budget; a key whose
 * search gives up is retried with a budget retryFactor times larger, and if it
 * still gives up the verdict is 'unknown' naming the key — never a pass. An
 * 'illegal' key anywhere wins over unknowns elsewhere.
 */
export function checkKvHistory(
  history: readonly KvOperation[],
  options: HistoryCheckOptions = {},
): HistoryCheck {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  const retryFactor = options.retryFactor ?? DEFAULT_RETRY_FACTOR;
  const byKey = new Map<string, KvOperation[]>();
  for (const op of pruneKvHistory(history)) {
    const ops = byKey.get(op.input.key);
    if (ops) ops.push(op);
    else byKey.set(op.input.key, [op]);
  }
  const result: HistoryCheck = {
    outcome: 'ok',
    operations: 0,
    keys: byKey.size,
    retriedKeys: [],
    unknownKeys: [],
    decidedInWriteOrder: [],
  };
  for (const ops of byKey.values()) result.operations += ops.length;
  for (const [key, ops] of byKey) {
    let verdict = checkLinearizable(kvModel, ops, { maxSteps });
    if (verdict.outcome === 'unknown') {
      result.retriedKeys.push(key);
      verdict = checkLinearizable(kvModel, ops, { maxSteps: maxSteps * retryFactor });
    }
    if (verdict.outcome === 'unknown' && options.writeOrder) {
      const ordered = checkInWriteOrder(ops, options.writeOrder);
      if (ordered.outcome !== 'not-applicable') {
        result.decidedInWriteOrder.push(key);
        verdict =
          ordered.outcome === 'ok'
            ? { outcome: 'ok' }
            : { outcome: 'illegal', partition: key, info: ordered.info };
      }
    }
    if (verdict.outcome === 'illegal') {
      result.outcome = 'illegal';
      result.illegal = { key, info: verdict.info };
      delete result.reason;
      return result;
    }
    if (verdict.outcome === 'unknown') {
      result.unknownKeys.push(key);
      if (result.outcome === 'ok') {
        result.outcome = 'unknown';
        result.reason = verdict.reason;
      }
    }
  }
  return result;
}

/**
 * Drops operations that cannot constrain the check, which keeps it fast:
 * reads that never returned (they change nothing), and puts of unknown outcome
 * whose value no read and no CAS observed, on keys written only by puts (with
 * unique values): if such a put took effect, nobody saw it, so a linearization
 * without it exists whenever one with it does. A delete or a CAS on the key
 * could be explained by the hidden value (deleted: true, a failed CAS), so
 * those keys keep every op.
 */
export function pruneKvHistory(history: readonly KvOperation[]): KvOperation[] {
  const observed = new Set<string>();
  const keysWithOtherWrites = new Set<string>();
  for (const op of history) {
    if (op.ret !== undefined && op.output?.op === 'get' && op.output.value !== null)
      observed.add(op.output.value);
    if (op.input.op === 'delete' || op.input.op === 'cas') keysWithOtherWrites.add(op.input.key);
  }
  return history.filter((op) => {
    if (op.ret !== undefined) return true;
    if (op.input.op === 'get') return false;
    if (op.input.op !== 'put') return true;
    return keysWithOtherWrites.has(op.input.key) || observed.has(op.input.value);
  });
}

export type WriteOrderVerdict =
  | { outcome: 'ok' }
  | { outcome: 'illegal'; info: string }
  | { outcome: 'not-applicable'; reason: string };

/**
 * An exact check of one key's history when the order of its writes is known
 * (the Raft log's): is there a linearization that puts the writes in that
 * order? Each read must sit after the write whose value it returned and
 * before the next write; every op must follow those that returned before it
 * was invoked. A linearization exists iff these "must precede" edges have no
 * cycle (a topological order is one), so it never gives up, in O(n²) for n
 * ops. Passing it implies linearizability; failing it means the reads do not
 * match the order the system itself applied the writes in — a bug either way.
 * Applies to puts, reads and successful CASes of unique values; deletes and
 * failed CASes (whose state is "anything but X") are left to the search.
 */
export function checkInWriteOrder(
  ops: readonly KvOperation[],
  writeOrder: ReadonlyMap<string, number>,
): WriteOrderVerdict {
  interface Node {
    op: KvOperation;
    out: number[];
    indegree: number;
  }
  const nodes: Node[] = [];
  const writes: { node: number; index: number; value: string }[] = [];
  const reads: { node: number; value: string | null }[] = [];
  for (const op of ops) {
    const { input } = op;
    if (input.op === 'delete') return { outcome: 'not-applicable', reason: 'a delete' };
    if (input.op === 'cas' && op.ret !== undefined && op.output?.op === 'cas' && !op.output.ok)
      return { outcome: 'not-applicable', reason: 'a failed CAS' };
    if (input.op === 'get') {
      if (op.ret === undefined || op.output?.op !== 'get') continue; // changes nothing
      nodes.push({ op, out: [], indegree: 0 });
      reads.push({ node: nodes.length - 1, value: op.output.value });
      continue;
    }
    const index = writeOrder.get(input.value);
    if (index === undefined) {
      if (op.ret === undefined) continue; // never took effect
      return {
        outcome: 'illegal',
        info: `acknowledged write ${input.key}=${input.value} is not in the log`,
      };
    }
    nodes.push({ op, out: [], indegree: 0 });
    writes.push({ node: nodes.length - 1, index, value: input.value });
  }
  writes.sort((a, b) => a.index - b.index);
  const position = new Map<string, number>(); // value → place in the write chain
  for (const [i, w] of writes.entries()) position.set(w.value, i);
  const edge = (from: number, to: number) => {
    nodes[from]!.out.push(to);
    nodes[to]!.indegree++;
  };
  for (let i = 0; i + 1 < writes.length; i++) edge(writes[i]!.node, writes[i + 1]!.node);
  for (let i = 0; i < writes.length; i++) {
    const { input } = nodes[writes[i]!.node]!.op;
    if (input.op !== 'cas') continue;
    const before = i === 0 ? null : writes[i - 1]!.value;
    if (before !== input.expected) {
      return {
        outcome: 'illegal',
        info: `CAS ${input.key}: ${JSON.stringify(input.expected)} → ${input.value} succeeded, but the write before it in the log left ${JSON.stringify(before)}`,
      };
    }
  }
  for (const r of reads) {
    const at = r.value === null ? -1 : position.get(r.value);
    if (at === undefined) {
      return {
        outcome: 'illegal',
        info: `a read returned ${r.value}, which no write in the log wrote`,
      };
    }
    if (at >= 0) edge(writes[at]!.node, r.node);
    if (at + 1 < writes.length) edge(r.node, writes[at + 1]!.node);
  }
  // Real-time order: a returned before b was invoked.
  for (let a = 0; a < nodes.length; a++) {
    const ret = nodes[a]!.op.ret;
    if (ret === undefined) continue;
    for (let b = 0; b < nodes.length; b++) if (b !== a && ret < nodes[b]!.op.call) edge(a, b);
  }
  const ready: number[] = [];
  nodes.forEach((n, i) => {
    if (n.indegree === 0) ready.push(i);
  });
  let placed = 0;
  while (ready.length > 0) {
    const i = ready.pop()!;
    placed++;
    for (const j of nodes[i]!.out) if (--nodes[j]!.indegree === 0) ready.push(j);
  }
  if (placed === nodes.length) return { outcome: 'ok' };
  const stuck = nodes.filter((n) => n.indegree > 0).slice(0, 6);
  return {
    outcome: 'illegal',
    info:
      `no order of the ops agrees with the log's order of writes and with real time; ` +
      `ops on the cycle or after it include: ${stuck.map((n) => JSON.stringify({ input: n.op.input, call: n.op.call, ret: n.op.ret, output: n.op.output })).join('; ')}`,
  };
}
