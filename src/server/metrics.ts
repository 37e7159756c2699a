import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { LATENCY_BUCKETS_SECONDS, WriteAccounting } from './write-accounting.js';

/** What the gauges read when Prometheus scrapes. */
export interface MetricSources {
  status(): {
    term: number;
    commitIndex: number;
    appliedIndex: number;
    revision: number;
    role: string;
    leader: string | null;
  };
  proposalsPending(): number;
  watchers(): number;
  leases(): number;
  /** The state machine's size estimate, the figure the space quota is held against. */
  stateSizeBytes(): number;
  quotaBytes(): number;
  dbSizeBytes(): Promise<number>;
}

/** Durations from 1 ms to about 8 s, doubling (a sync or an apply past 1 s is already an incident). */
const SECONDS_BUCKETS = [
  0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
];
/** Snapshots take longer: 10 ms to about 80 s. */
const SNAPSHOT_BUCKETS = [0.01, 0.04, 0.16, 0.64, 2.56, 10.24, 40.96, 81.92];
/** An apply batch slower than this is counted as slow (etcd warns at 100 ms). */
export const SLOW_APPLY_MS = 100;

let processRegistry: Registry | undefined;

/** How often the event-loop delay is sampled, in ms (prom-client's own monitor uses 10 ms too). */
export const EVENT_LOOP_SAMPLE_MS = 10;

/**
 * Process and Node.js metrics (CPU, memory, heap, event-loop lag, GC), once per
 * process: several nodes may share one (tests, embedding), and each collector
 * keeps an event-loop monitor and a GC observer running.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    eventLoopDelay(processRegistry);
    gcPauses(processRegistry);
  }
  return processRegistry;
}

/**
 * raftkv_eventloop_delay_seconds: how late a timer due every 10 ms fires,
 * as a histogram. prom-client's nodejs_eventloop_lag_p99_seconds and its
 * siblings are gauges of a perf_hooks monitor that are reset at every scrape,
 * so they cannot be added up over time or between two scrapes; a perf_hooks
 * histogram cannot be read as bucket counts, so this one samples the same way
 * the monitor does (a repeating timer, its lateness recorded) in JavaScript.
 * The timer is unref'd: it keeps no process alive.
 */
function eventLoopDelay(registry: Registry): void {
  const histogram = new Histogram({
    name: 'raftkv_eventloop_delay_seconds',
    help: `Event-loop delay: how late a timer due every ${EVENT_LOOP_SAMPLE_MS} ms ran, one sample per firing (a stall of the loop shows as one long sample)`,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [registry],
  });
  let lastMs = performance.now();
  const timer = setInterval(() => {
    const nowMs = performance.now();
    histogram.observe(Math.max(0, nowMs - lastMs - EVENT_LOOP_SAMPLE_MS) / 1000);
    lastMs = nowMs;
  }, EVENT_LOOP_SAMPLE_MS);
  timer.unref();
}

/**
 * raftkv_gc_pause_seconds{kind}: every GC pause, with buckets fine enough for
 * sub-millisecond scavenges. prom-client's nodejs_gc_duration_seconds has
 * buckets of 1 ms, 10 ms, 100 ms and up, and records only the first entry of
 * each batch its PerformanceObserver is handed: GCs that come in bursts (a
 * loaded server's scavenges) are undercounted there.
 */
function gcPauses(registry: Registry): void {
  const histogram = new Histogram({
    name: 'raftkv_gc_pause_seconds',
    help: 'Garbage-collection pauses (every one the PerformanceObserver reports), by kind: minor (scavenge), major (mark-compact), incremental, weakcb',
    labelNames: ['kind'] as const,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [registry],
  });
  const kinds: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[])
      histogram.observe({ kind: kinds[entry.detail?.kind ?? 0] ?? 'other' }, entry.duration / 1000);
  });
  observer.observe({ entryTypes: ['gc'] });
}

/** Prometheus metrics of one node, in a registry of its own (several nodes may share a process). */
export class NodeMetrics {
  readonly registry = new Registry();
  readonly proposals = this.counter(
    'raftkv_proposals_total',
    'Writes proposed to Raft by this node',
  );
  readonly proposalsFailed = this.counter(
    'raftkv_proposals_failed_total',
    'Proposals whose outcome the client could not be told: superseded by another leader, caught up by snapshot, or abandoned by a stop',
  );
  readonly forwardedWrites = this.counter(
    'raftkv_forwarded_writes_total',
    'Writes forwarded to the leader',
  );
  readonly forwardBatches = new Counter({
    name: 'raftkv_forward_batches_total',
    help: 'Batches of writes forwarded to the leader, by channel: stream frames or POSTs',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  readonly rejectedWrites = this.counter(
    'raftkv_rejected_writes_total',
    'Writes refused with 429 (backpressure)',
  );
  readonly appliedEntries = this.counter('raftkv_applied_entries_total', 'Raft entries applied');
  readonly linearizableReads = this.counter(
    'raftkv_linearizable_reads_total',
    'Reads confirmed with ReadIndex',
  );
  readonly snapshotsInstalled = this.counter(
    'raftkv_snapshots_installed_total',
    'Snapshots received from the leader and installed',
  );
  readonly snapshotsSent = this.counter(
    'raftkv_snapshots_sent_total',
    'Snapshots sent to followers',
  );
  readonly leaderChanges = this.counter(
    'raftkv_raft_state_changes_total',
    'Changes of leader or role seen by this node',
  );
  readonly leaderChangesSeen = this.counter(
    'raftkv_leader_changes_seen_total',
    'Changes of the leader this node knows of (to none included)',
  );
  readonly slowApplies = this.counter(
    'raftkv_slow_applies_total',
    `Batches of committed entries that took longer than ${SLOW_APPLY_MS} ms to apply`,
  );
  readonly diskSync = this.histogram(
    'raftkv_disk_sync_duration_seconds',
    'Synced log writes (entries and hard state, one LevelDB batch with fsync per Ready)',
    SECONDS_BUCKETS,
  );
  readonly apply = this.histogram(
    'raftkv_apply_duration_seconds',
    "Applying one Ready's committed entries to the state machine",
    SECONDS_BUCKETS,
  );
  readonly snapshotSave = this.histogram(
    'raftkv_snapshot_save_duration_seconds',
    'Recording a snapshot at the applied index and compacting the log before it',
    SNAPSHOT_BUCKETS,
  );
  readonly snapshotSend = this.histogram(
    'raftkv_snapshot_send_duration_seconds',
    'Sending a snapshot to a follower, until it reported the snapshot installed or failed',
    SNAPSHOT_BUCKETS,
  );
  readonly snapshotInstall = this.histogram(
    'raftkv_snapshot_install_duration_seconds',
    'Installing a snapshot received from the leader (one synced batch)',
    SNAPSHOT_BUCKETS,
  );
  readonly peerSendFailures = new Counter({
    name: 'raftkv_peer_send_failures_total',
    help: 'Raft messages or snapshots that could not be delivered to a peer, by peer id',
    labelNames: ['peer'] as const,
    registers: [this.registry],
  });
  readonly peerRoundTrip = new Histogram({
    name: 'raftkv_peer_round_trip_time_seconds',
    help: "Round trip of a probe to each peer's peer port, every 5 s, by peer id",
    labelNames: ['peer'] as const,
    buckets: [
      0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024,
      0.2048, 0.4096, 0.8192,
    ],
    registers: [this.registry],
  });
  readonly httpRequests = new Histogram({
    name: 'raftkv_http_request_duration_seconds',
    help: 'Client API requests by method, route (the route pattern, not the path) and status; a watch counts until its stream ends',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });
  /** Where writes' time goes (write-accounting.ts): written into the text by text(). */
  readonly writes = new WriteAccounting();
  readonly watchEventsSent = this.counter(
    'raftkv_watch_events_sent_total',
    'Watch events (changes) sent to clients',
  );
  readonly watchSlowConsumers = this.counter(
    'raftkv_watch_slow_consumers_closed_total',
    'Watch streams closed because their client did not read fast enough',
  );

  constructor(sources: MetricSources) {
    const gauge = (name: string, help: string, read: () => number | Promise<number>) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        async collect() {
          this.set(await read());
        },
      });
    const { status } = sources;
    gauge('raftkv_raft_term', 'Current Raft term', () => status().term);
    gauge('raftkv_raft_commit_index', 'Raft commit index', () => status().commitIndex);
    gauge('raftkv_raft_applied_index', 'Applied index', () => status().appliedIndex);
    gauge('raftkv_kv_revision', 'KV store revision', () => status().revision);
    gauge('raftkv_is_leader', '1 if this node leads', () => (status().role === 'leader' ? 1 : 0));
    gauge('raftkv_has_leader', '1 if this node knows a leader', () =>
      status().leader === null ? 0 : 1,
    );
    gauge('raftkv_proposals_pending', 'Proposals waiting to be applied', sources.proposalsPending);
    gauge('raftkv_watchers', 'Open watch streams on this member', sources.watchers);
    gauge('raftkv_leases', 'Leases granted and not yet revoked', sources.leases);
    gauge(
      'raftkv_state_size_bytes',
      'Size estimate of the replicated state (keys, history, leases), held against the quota',
      sources.stateSizeBytes,
    );
    gauge(
      'raftkv_quota_bytes',
      'The space quota (--quota-bytes): writes that grow the state get 507 past it',
      sources.quotaBytes,
    );
    gauge(
      'raftkv_db_size_bytes',
      'Size of the data dir on disk (LevelDB files)',
      sources.dbSizeBytes,
    );
  }

  /** Every metric of this node and of the process, in Prometheus' text format. */
  async text(): Promise<{ contentType: string; body: string }> {
    const merged = Registry.merge([this.registry, processMetrics()]);
    // prom-client writes a not-yet-measured event-loop figure as "Nan"; the format says NaN.
    const registered = (await merged.metrics()).replace(/ Nan$/gm, ' NaN');
    const body = `${registered}\n${this.writes.stages.text()}\n\n${this.writes.total.text()}\n`;
    return { contentType: this.registry.contentType, body };
  }

  private counter(name: string, help: string): Counter {
    return new Counter({ name, help, registers: [this.registry] });
  }

  private histogram(name: string, help: string, buckets: number[]): Histogram {
    return new Histogram({ name, help, buckets, registers: [this.registry] });
  }
}
