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
  };
  for (const ops of byKey.values()) result.operations += ops.length;
  for (const [key, ops] of byKey) {
    let verdict = checkLinearizable(kvModel, ops, { maxSteps });
    if (verdict.outcome === 'unknown') {
      result.retriedKeys.push(key);
      verdict = checkLinearizable(kvModel, ops, { maxSteps: maxSteps * retryFactor });
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
