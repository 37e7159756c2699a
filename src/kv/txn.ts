import { type Compare, isFenceCompare, type KeyCompare, type TxnOp } from './commands.js';
import { compareKeys } from './key-order.js';
import type { KeyValue } from './mvcc/key-value.js';

/**
 * Whether a key compare holds against the key's current version (null:
 * missing, which compares as version/createRevision/modRevision 0, value
 * null, lease null).
 */
export function compareHolds(compare: Compare, kv: KeyValue | null): boolean {
  // Fences are judged by the state machine (it knows the lock's waiters); here they never hold.
  if (isFenceCompare(compare)) return false;
  const actual = targetOf(compare, kv);
  const expected = compare.value;
  switch (compare.op) {
    case '==':
      return actual === expected;
    case '!=':
      return actual !== expected;
    case '<':
      return order(actual, expected) < 0;
    case '>':
      return order(actual, expected) > 0;
  }
}

function targetOf(compare: KeyCompare, kv: KeyValue | null): string | number | null {
  switch (compare.target) {
    case 'value':
      return kv?.value ?? null;
    case 'lease':
      return kv?.lease ?? null;
    case 'version':
      return kv?.version ?? 0;
    case 'createRevision':
      return kv?.createRevision ?? 0;
    case 'modRevision':
      return kv?.modRevision ?? 0;
  }
}

/** NaN (neither < nor >) when either side is null or the types differ. */
function order(actual: string | number | null, expected: string | number | null): number {
  if (typeof actual === 'number' && typeof expected === 'number') return actual - expected;
  if (typeof actual === 'string' && typeof expected === 'string')
    return compareKeys(actual, expected);
  return Number.NaN;
}

/**
 * Why a branch is invalid, or undefined. Like etcd, a branch may not write a
 * key twice: two puts of one key, or a put and a delete (exact or prefix)
 * covering the same key, would make "the" new version of that key ambiguous
 * within one revision. Deletes may overlap each other; gets are free.
 */
export function branchConflict(ops: readonly TxnOp[]): string | undefined {
  const putKeys = new Set<string>();
  for (const op of ops) {
    if (op.op !== 'put') continue;
    if (putKeys.has(op.key)) return `txn puts key ${JSON.stringify(op.key)} twice`;
    putKeys.add(op.key);
  }
  if (putKeys.size === 0) return undefined;
  for (const op of ops) {
    if (op.op !== 'delete') continue;
    if (op.prefix) {
      for (const key of putKeys) {
        if (key.startsWith(op.key))
          return `txn puts ${JSON.stringify(key)} and deletes it by prefix`;
      }
    } else if (putKeys.has(op.key)) {
      return `txn puts and deletes key ${JSON.stringify(op.key)}`;
    }
  }
  return undefined;
}
