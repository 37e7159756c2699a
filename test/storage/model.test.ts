/**
 * Model-based: random sequences of Readys (appends, suffix overwrites,
 * snapshot installs), applies, compactions and restarts give LevelRaftStorage
 * exactly the observable state of MemoryRaftStorage, the reference, after
 * every step. fast-check shrinks a failure to a minimal sequence.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { type ConfState, type Entry, MemoryRaftStorage, NONE } from '../../src/raft/index.js';
import { LevelRaftStorage } from '../../src/storage/index.js';
import { IDENTITY, observe } from './helpers.js';

const VOTERS = ['n1', 'n2', 'n3'];
const encoder = new TextEncoder();

type Step =
  | { kind: 'append'; back: number; count: number; newTerm: boolean; commitBy: number }
  | { kind: 'apply'; by: number }
  | { kind: 'compact'; keepEntries: number }
  | { kind: 'installSnapshot'; ahead: number; learner: boolean }
  | { kind: 'reopen' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      back: fc.nat(6),
      count: fc.integer({ min: 1, max: 8 }),
      newTerm: fc.boolean(),
      commitBy: fc.nat(8),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('apply' as const), by: fc.nat(8) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('compact' as const), keepEntries: fc.nat(6) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('installSnapshot' as const),
      ahead: fc.nat(4),
      learner: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

function compare(
  mem: MemoryRaftStorage,
  applied: number,
  level: LevelRaftStorage,
): string | undefined {
  const want = { ...observe(mem), applied };
  const got = { ...observe(level), applied: level.appliedIndex() };
  if (isDeepStrictEqual(got, want)) return undefined;
  return `\n${JSON.stringify(got)}\n!==\n${JSON.stringify(want)}`;
}

/** Runs `steps` on both implementations; returns a description of the first difference. */
async function runSteps(steps: Step[]): Promise<string | undefined> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'raftkv-model-'));
  let level = await LevelRaftStorage.open(dir);
  try {
    await level.initialize(IDENTITY, VOTERS);
    const mem = MemoryRaftStorage.bootstrap(VOTERS);
    let applied = 1;
    let term = 1;
    for (const [i, step] of steps.entries()) {
      const commit = mem.hardState.commit;
      const last = mem.lastIndex();
      switch (step.kind) {
        case 'append': {
          // Overwrite only what is not committed, always with a term at least as high.
          const start = Math.max(commit + 1, last + 1 - step.back);
          if (step.newTerm || start <= last) term++;
          const entries: Entry[] = [];
          for (let j = start; j < start + step.count; j++) {
            entries.push({ index: j, term, type: 'normal', data: encoder.encode(`${term}.${j}`) });
          }
          const newLast = start + step.count - 1;
          const hs = { term, vote: 'n1', commit: Math.min(newLast, commit + step.commitBy) };
          mem.append(entries);
          mem.setHardState(hs);
          await level.persistReady({ entries, hardState: hs }, false);
          break;
        }
        case 'apply':
          applied = Math.min(commit, applied + step.by);
          await level.persistApplied(applied, undefined, [
            { type: 'put', key: `a${applied}`, value: encoder.encode(String(applied)) },
          ]);
          break;
        case 'compact': {
          if (applied <= mem.snapshot().metadata.index) break;
          const cs = mem.confState;
          mem.createSnapshot(applied, cs, new Uint8Array());
          mem.compact(applied - step.keepEntries);
          await level.compact(applied, mem.term(applied), cs, step.keepEntries);
          break;
        }
        case 'installSnapshot': {
          const index = last + step.ahead;
          if (index <= mem.snapshot().metadata.index) break;
          term++;
          const confState: ConfState = {
            voters: VOTERS,
            learners: step.learner ? ['n4'] : [],
          };
          const snapshot = { metadata: { index, term, confState }, data: new Uint8Array() };
          const hs = { term, vote: NONE, commit: index };
          mem.applySnapshot(snapshot);
          mem.setHardState(hs);
          await level.persistReady({ snapshot, entries: [], hardState: hs }, false);
          await level.replaceKv([['snap', encoder.encode(String(index))]], index, confState);
          applied = index;
          break;
        }
        case 'reopen':
          await level.close();
          level = await LevelRaftStorage.open(dir);
          break;
      }
      const difference = compare(mem, applied, level);
      if (difference) return `after step ${i} (${JSON.stringify(step)}): ${difference}`;
    }
    await level.close();
    level = await LevelRaftStorage.open(dir);
    const difference = compare(mem, applied, level);
    return difference && `after the final reopen: ${difference}`;
  } finally {
    await level.close();
    await rm(dir, { recursive: true, force: true });
  }
}

t.test('LevelRaftStorage matches MemoryRaftStorage on random step sequences', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 25 }), async (steps) => {
      const difference = await runSteps(steps);
      if (difference) throw new Error(difference);
    }),
    { numRuns: 40 },
  );
  t.pass('40 random sequences agree');
});
