import type { Logger } from 'pino';
import type { Command } from '../kv/commands.js';
import type { CommandResult } from '../kv/results.js';
import type { NodeCore } from './node-core.js';

export interface AutoCompactionOptions {
  /** --auto-compaction-retention, in hours; 0 turns the periodic mode off. */
  retentionHours: number;
  /** --auto-compaction-revisions N; 0 turns the revision mode off. */
  revisions: number;
  propose: (cmd: Command) => Promise<CommandResult>;
  log: Logger;
}

/**
 * MVCC history compaction decided by the leader and proposed through the log,
 * checked every tick: keep `revisions` to 2×`revisions` revisions (etcd's
 * revision mode), and/or compact to the newest once-a-minute revision sample
 * older than the retention (etcd's periodic mode).
 */
export function attachAutoCompaction(core: NodeCore, options: AutoCompactionOptions): void {
  /** (time, revision) samples, oldest first, one a minute. */
  const samples: { atMs: number; revision: number }[] = [];
  let revisionCompactionPending = false;

  const compact = (revision: number) =>
    options
      .propose({ type: 'compact', revision })
      .catch((err) => options.log.warn({ err, revision }, 'auto-compaction failed; will retry'));

  const byRevisions = () => {
    const keep = options.revisions;
    if (keep <= 0 || revisionCompactionPending || !core.isLeader) return;
    const target = core.kv.revision - keep;
    if (target - core.kv.compactRevision < keep) return;
    revisionCompactionPending = true;
    void compact(target).finally(() => {
      revisionCompactionPending = false;
    });
  };

  const byRetention = () => {
    const retentionMs = options.retentionHours * 3_600_000;
    if (retentionMs <= 0) return;
    const now = core.clock.wallNow();
    const last = samples[samples.length - 1];
    if (last && now - last.atMs < 60_000) return;
    samples.push({ atMs: now, revision: core.kv.revision });
    let target = 0;
    while (samples.length > 0 && now - samples[0]!.atMs >= retentionMs) {
      target = samples.shift()!.revision;
    }
    if (!core.isLeader || target <= core.kv.compactRevision) return;
    void compact(target);
  };

  core.on('tick', () => {
    byRevisions();
    byRetention();
  });
}
