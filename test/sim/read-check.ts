import type { KvInput, KvOutput, Operation } from '../support/linearizability.js';
import { Violation } from './invariants.js';

/**
 * A direct linearizability check for registers whose writes are totally
 * ordered by the Raft log (state machine safety is checked separately), so
 * every value maps to the log index that wrote it. Linear-ish in the history
 * size, it finds stale reads even when the general Wing–Gong/Lowe search runs
 * out of budget. Writes are puts and successful CASes of unique values; keys
 * that are ever deleted are skipped (a read of "absent" there has no index).
 * A read R of a key returning the value written at index i (0 for "absent")
 * must satisfy:
 * 1. the value was committed somewhere, by a write invoked before R returned;
 * 2. no write of the key acknowledged before R was invoked sits after i in the log;
 * 3. a read invoked after R returned sees an index ≥ i.
 * And writes keep real-time order: a write acknowledged before another was
 * invoked sits earlier in the log. An acknowledged write must be in the log.
 */
export function checkRegisterReads(
  history: readonly Operation<KvInput, KvOutput>[],
  logIndexOfValue: ReadonlyMap<string, number>,
): void {
  const deletedKeys = new Set<string>();
  for (const op of history) if (op.input.op === 'delete') deletedKeys.add(op.input.key);
  const writeCall = new Map<string, number>();
  const writes = new Map<string, { call: number; ret?: number; index?: number; value: string }[]>();
  const reads: { key: string; call: number; ret: number; index: number; value: string | null }[] =
    [];
  for (const op of history) {
    const { input } = op;
    if (deletedKeys.has(input.key)) continue;
    const isWrite = input.op === 'put' || input.op === 'cas';
    if (!isWrite) continue;
    writeCall.set(input.value, op.call);
    // A CAS answered "not applied" wrote nothing.
    if (input.op === 'cas' && op.ret !== undefined && op.output?.op === 'cas' && !op.output.ok)
      continue;
    const index = logIndexOfValue.get(input.value);
    if (op.ret !== undefined && index === undefined) {
      throw new Violation(
        'durability',
        `acknowledged write ${input.key}=${input.value} was never applied`,
      );
    }
    const list = writes.get(input.key) ?? [];
    list.push({
      call: op.call,
      value: input.value,
      ...(op.ret === undefined ? {} : { ret: op.ret }),
      ...(index === undefined ? {} : { index }),
    });
    writes.set(input.key, list);
  }
  for (const op of history) {
    if (deletedKeys.has(op.input.key)) continue;
    if (op.input.op !== 'get' || op.ret === undefined || op.output?.op !== 'get') continue;
    const value = op.output.value;
    let index = 0;
    if (value !== null) {
      const i = logIndexOfValue.get(value);
      if (i === undefined)
        throw new Violation(
          'linearizability',
          `read of ${op.input.key} returned ${value}, never committed`,
        );
      const call = writeCall.get(value);
      if (call === undefined || call > op.ret) {
        throw new Violation(
          'linearizability',
          `read of ${op.input.key} returned ${value} before it was written`,
        );
      }
      index = i;
    }
    reads.push({ key: op.input.key, call: op.call, ret: op.ret, index, value });
  }
  for (const [key, list] of writes) {
    for (const a of list) {
      if (a.ret === undefined) continue;
      for (const b of list) {
        if (b.index !== undefined && a.ret < b.call && b.index < a.index!) {
          throw new Violation(
            'linearizability',
            `writes of ${key} out of real-time order: ${a.value} was acknowledged before ${b.value} began, yet sits later in the log (${a.index} > ${b.index})`,
          );
        }
      }
    }
  }
  for (const r of reads) {
    for (const w of writes.get(r.key) ?? []) {
      if (w.ret !== undefined && w.ret < r.call && w.index! > r.index) {
        throw new Violation(
          'linearizability',
          `stale read of ${r.key}: returned ${r.value} (log index ${r.index}) though the write at index ${w.index} was acknowledged before the read began`,
        );
      }
    }
  }
  const readsByKey = new Map<string, typeof reads>();
  for (const r of reads) {
    const list = readsByKey.get(r.key) ?? [];
    list.push(r);
    readsByKey.set(r.key, list);
  }
  for (const [key, list] of readsByKey) {
    for (const a of list) {
      for (const b of list) {
        if (a.ret < b.call && b.index < a.index) {
          throw new Violation(
            'linearizability',
            `reads of ${key} went backwards: ${a.value} (index ${a.index}) then ${b.value} (index ${b.index})`,
          );
        }
      }
    }
  }
}
