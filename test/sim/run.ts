import { Violation } from './invariants.js';
import type { Schedule } from './schedule.js';
import { type SimOptions, type SimStats, SimWorld } from './world.js';

export interface RunOutcome {
  stats: SimStats;
}

/**
 * Runs one schedule: the events with faults (Raft safety checked after every
 * simulated event), then the liveness phase (heal, bounded convergence), then
 * the checks of the whole run: linearizability of the history (unknowns are
 * counted, never passed), durability of every answered unique write, and the
 * lease promise (checked as revokes apply). Throws a Violation.
 */
export async function runSchedule(schedule: Schedule, options: SimOptions): Promise<RunOutcome> {
  const world = new SimWorld(schedule, options);
  try {
    for (const event of schedule.events) await world.apply(event);
    await world.finish();
  } catch (err) {
    if (err instanceof Violation) {
      err.message += `\n  last events:\n    ${world.trace.slice(-30).join('\n    ')}`;
    }
    throw err;
  }
  return { stats: world.finalStats() };
}

/** Adds one run's stats into a running total. */
export function addStats(total: SimStats, run: SimStats): void {
  for (const key of Object.keys(run) as (keyof SimStats)[]) total[key] += run[key];
}

/** One line per figure, for the CLI and the test's comments. */
export function formatStats(s: SimStats, seconds: number): string {
  const rate = seconds > 0 ? (s.runs / seconds).toFixed(2) : '-';
  return [
    `runs ${s.runs} (${rate} runs/s, ${seconds.toFixed(1)} s), events ${s.events}, virtual ${s.virtualSeconds.toFixed(0)} s`,
    `writes: acked ${s.ackedWrites} (unique ${s.uniqueWritesAcked}, CAS ${s.casOps}, txn ${s.txns}), refused ${s.refusedWrites}, unknown ${s.unknownWrites}; reads ${s.reads}`,
    `faults: process crashes ${s.processCrashes}, power losses ${s.powerLosses} (batches lost ${s.lostBatches}, torn ${s.tornBatches}), partitions ${s.partitions}, pauses ${s.pauses}`,
    `disk: failed writes ${s.diskWriteFaults}, failed fsyncs ${s.diskSyncFaults}, fail-stops ${s.failStops}, corruptions ${s.corruptions} (detected ${s.corruptionsDetected})`,
    `raft: leader terms ${s.leaderTerms}, transfers ${s.leaderTransfers}, conf changes ${s.confChanges}, snapshots taken ${s.snapshotsTaken}, installed ${s.snapshotsInstalled}`,
    `leases: grants ${s.leaseGrants}, renewals ${s.leaseRenewals}, expiry revokes ${s.leaseRevokes}`,
    `linearizability: ${s.checkedOperations} ops checked; UNKNOWN (checker gave up, not a pass): ${s.checkerUnknownRuns} runs, ${s.checkerUnknownKeys} keys`,
  ].join('\n');
}
