import type { NodeCore } from './node-core.js';
import type { CoreStorage } from './ports.js';

export interface SnapshotPolicyOptions {
  /** Take a snapshot (and compact the log) every this many applied entries. */
  snapshotCount: number;
  /** Entries kept before the snapshot index, so a slow follower catches up from the log. */
  catchUpEntries: number;
  /** Told about each snapshot taken (the event log). */
  onTaken?: (taken: {
    index: number;
    term: number;
    logEntriesRemoved: number;
    firstIndex: number;
    ms: number;
  }) => void;
}

/**
 * Keeps the log bounded: every `snapshotCount` applied entries the core records
 * a snapshot at its applied index and drops older entries, between Ready
 * rounds (so compaction never races a log write).
 */
export function attachSnapshotPolicy(
  core: NodeCore,
  storage: Pick<CoreStorage, 'snapshot' | 'firstIndex'>,
  options: SnapshotPolicyOptions,
): void {
  let snapshotIndex = storage.snapshot().metadata.index;
  core.on('snapshotInstalled', ({ index }) => {
    snapshotIndex = index;
  });
  core.addReadyHook(async () => {
    if (core.kv.appliedIndex - snapshotIndex < options.snapshotCount) return;
    const startMs = core.clock.now();
    const firstBefore = storage.firstIndex();
    const taken = await core.compact(options.catchUpEntries);
    if (!taken) return;
    snapshotIndex = taken.index;
    const firstIndex = storage.firstIndex();
    options.onTaken?.({
      ...taken,
      logEntriesRemoved: firstIndex - firstBefore,
      firstIndex,
      ms: core.clock.now() - startMs,
    });
  });
}
