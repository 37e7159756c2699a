import { Counter, Gauge, Registry } from 'prom-client';

/** Prometheus metrics of one node, in a registry of its own (several nodes may share a process). */
export class NodeMetrics {
  readonly registry = new Registry();
  readonly proposals = new Counter({
    name: 'raftkv_proposals_total',
    help: 'Writes proposed to Raft by this node',
    registers: [this.registry],
  });
  readonly forwardedWrites = new Counter({
    name: 'raftkv_forwarded_writes_total',
    help: 'Writes forwarded to the leader',
    registers: [this.registry],
  });
  readonly forwardBatches = new Counter({
    name: 'raftkv_forward_batches_total',
    help: 'Batches of writes forwarded to the leader, by channel: stream frames or POSTs',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  readonly rejectedWrites = new Counter({
    name: 'raftkv_rejected_writes_total',
    help: 'Writes refused with 429 (backpressure)',
    registers: [this.registry],
  });
  readonly appliedEntries = new Counter({
    name: 'raftkv_applied_entries_total',
    help: 'Raft entries applied',
    registers: [this.registry],
  });
  readonly linearizableReads = new Counter({
    name: 'raftkv_linearizable_reads_total',
    help: 'Reads confirmed with ReadIndex',
    registers: [this.registry],
  });
  readonly snapshotsInstalled = new Counter({
    name: 'raftkv_snapshots_installed_total',
    help: 'Snapshots received from the leader and installed',
    registers: [this.registry],
  });
  readonly snapshotsSent = new Counter({
    name: 'raftkv_snapshots_sent_total',
    help: 'Snapshots sent to followers',
    registers: [this.registry],
  });
  readonly leaderChanges = new Counter({
    name: 'raftkv_raft_state_changes_total',
    help: 'Changes of leader or role seen by this node',
    registers: [this.registry],
  });

  constructor(
    status: () => {
      term: number;
      commitIndex: number;
      appliedIndex: number;
      revision: number;
      role: string;
    },
  ) {
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    gauge('raftkv_raft_term', 'Current Raft term', () => status().term);
    gauge('raftkv_raft_commit_index', 'Raft commit index', () => status().commitIndex);
    gauge('raftkv_raft_applied_index', 'Applied index', () => status().appliedIndex);
    gauge('raftkv_kv_revision', 'KV store revision', () => status().revision);
    gauge('raftkv_is_leader', '1 if this node leads', () => (status().role === 'leader' ? 1 : 0));
  }
}
