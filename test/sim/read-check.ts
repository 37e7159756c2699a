import type { KvInput, KvOutput, Operation } from '../support/linearizability.js';
import { Violation } from './invariants.js';

/**
 * A direct linearizability check for registers whose writes are totally
 * ordered by the Raft log (state machine safety is checked separately), so
 * every value maps to the log index that wrote it. Exact for this setting and
 * linear-ish in the history size, it backs up the general Wing–Gong/Lowe
 * search when that one runs out of budget. A read R of a key returning the
 * value written at index i (0 for "absent") must satisfy:
 * 1. the value was committed somewhere, by a write invoked before R returned;
 * 2. no write of the key acknowledged before R was invoked sits after i in the log;
 * 3. a read invoked after R returned sees an index ≥ i.
 */
export function checkRegisterReads(
  history: readonly Operation<KvInput, KvOutput>[],
  logIndexOfValue: ReadonlyMap<string, number>,
): void {
  const writeCall = new Map<string, number>();
  const ackedWrites = new Map<string, { ret: number; index: number }[]>();
  const reads: { key: string; call: number; ret: number; index: number; value: string | null }[] =
    [];
  for (const op of history) if (op.input.op === 'put') writeCall.set(op.input.value, op.call);
  for (const op of history) {
    if (op.input.op === 'put') {
      const index = logIndexOfValue.get(op.input.value);
      if (op.ret !== undefined) {
        if (index === undefined)
          throw new Violation(
            'durability',
            `acknowledged write ${op.input.value} was never applied`,
          );
        const list = ackedWrites.get(op.input.key) ?? [];
        list.push({ ret: op.ret, index });
        ackedWrites.set(op.input.key, list);
      }
    } else if (op.input.op === 'get' && op.ret !== undefined && op.output?.op === 'get') {
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
  }
  for (const r of reads) {
    for (const w of ackedWrites.get(r.key) ?? []) {
      if (w.ret < r.call && w.index > r.index) {
        throw new Violation(
          'linearizability',
          `stale read of ${r.key}: returned ${r.value} (log index ${r.index}) though the write at index ${w.index} was acknowledged before the read began`,
        );
      }
    }
  }
  for (const a of reads) {
    for (const b of reads) {
      if (a.key === b.key && a.ret < b.call && b.index < a.index) {
        throw new Violation(
          'linearizability',
          `reads of ${a.key} went backwards: ${a.value} (index ${a.index}) then ${b.value} (index ${b.index})`,
        );
      }
    }
  }
}
