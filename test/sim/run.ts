import {
  checkLinearizable,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
} from '../support/linearizability.js';
import { Violation } from './invariants.js';
import { checkRegisterReads } from './read-check.js';
import type { Schedule } from './schedule.js';
import { type SimOptions, type SimStats, SimWorld } from './world.js';

export interface RunOutcome {
  stats: SimStats;
}

/**
 * Runs one schedule: the safety phase (events with faults, invariants checked
 * at every step), then the liveness phase (heal, bounded convergence), then the
 * linearizability check of the client history. Throws a Violation.
 */
export function runSchedule(schedule: Schedule, options: SimOptions): RunOutcome {
  const world = new SimWorld(schedule, options);
  try {
    for (const event of schedule.events) world.apply(event);
    world.checkLiveness();
  } catch (err) {
    if (err instanceof Violation) {
      err.message += `\n  last events:\n    ${world.trace.slice(-25).join('\n    ')}`;
    }
    throw err;
  }
  checkRegisterReads(world.history, world.logIndexOfValue);
  // The general search; a history too tangled for its budget is left to the direct check above.
  const result = checkLinearizable(kvModel, prunedHistory(world.history), { maxSteps: 100_000 });
  if (result.outcome === 'illegal') {
    throw new Violation('linearizability', `key ${result.partition}: ${result.info}`);
  }
  return { stats: world.finalStats() };
}

/**
 * Drops operations that cannot constrain the check, which keeps it fast:
 * reads that never returned, and puts with an unknown outcome whose (unique)
 * value no read observed — if such a put took effect, no read saw it, so a
 * linearization without it exists whenever one with it does.
 */
function prunedHistory(history: Operation<KvInput, KvOutput>[]): Operation<KvInput, KvOutput>[] {
  const observed = new Set<string>();
  for (const op of history) {
    if (op.ret !== undefined && op.output?.op === 'get' && op.output.value !== null)
      observed.add(op.output.value);
  }
  return history.filter((op) => {
    if (op.ret !== undefined) return true;
    return op.input.op === 'put' && observed.has(op.input.value);
  });
}
