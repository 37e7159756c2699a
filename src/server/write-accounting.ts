/**
 * Latency accounting: where a write's time goes, stage by stage, as one
 * Prometheus histogram with a `stage` label (raftkv_write_stage_seconds) and
 * the whole write beside it (raftkv_write_duration_seconds).
 *
 * A write's life on the member that proposes it, in the order it happens;
 * each stage runs from one stamp to the next, all stamps from the core's
 * monotonic clock (performance.now() in production):
 *
 *   received ─http_in─▶ proposed ─proposal_queue─▶ stored ─replication─▶ committed
 *     ─commit─▶ applying ─apply─▶ applied ─http_out─▶ responded
 *
 * 1. `http_in`: the HTTP request routed (fastify's start of the reply) → the
 *    command handed to the node core (body parsing, validation, access checks,
 *    encoding, waiting for a known leader).
 * 2. `proposal_queue`: → its entry handed to storage in a Ready (the proposal
 *    waits for the turn's batch, then for the Ready loop to finish the Ready in
 *    progress: the previous batch's sync).
 * 3. `replication`: → the commit index passes it, when the acknowledgement that
 *    completes a quorum is stepped (the leader's appends leave with that
 *    Ready; the leader's own synced copy counts as one of the quorum).
 * 4. `commit`: → the Ready that carries it as committed starts applying (the
 *    Ready loop is busy meanwhile: a Ready in flight waits for its own sync).
 * 5. `apply`: → its result out of the state machine (the entries before it in
 *    the same batch are applied first).
 * 6. `http_out`: → the response written (promise hops, serialization, socket).
 *
 * These six add up to the total. Two more are not on that chain:
 * - `append_sync`: the LevelDB write with fsync of the Ready that stored the
 *   entry. It runs in parallel with `replication` (the leader's appends leave
 *   before its own write), so it is not part of the sum. It is a batch-level
 *   figure, observed once per write in the batch (the same duration N times),
 *   so its percentiles are per write like every other stage;
 *   raftkv_disk_sync_duration_seconds has it once per Ready.
 * - `forward`: on a member that is not the leader, the write handed to the
 *   forwarder → the leader's answer back; it stands in for stages 2–5, which the
 *   leader accounts (a leader accounts stages 2–5 for every write it proposes,
 *   forwarded or not; stages 1 and 6 and the total for the requests its own client
 *   port received).
 *
 * Only single-write requests are accounted end to end (PUT and DELETE of
 * /v1/kv/*, POST /v1/txn); other proposals (leases, locks, the lease keeper's
 * revokes, forwarded writes) count in stages 2–5 only.
 *
 * Hot path cost: a few performance.now() stamps on objects that exist anyway
 * (the queued proposal, its wait, the request's write options) and one
 * typed-array increment per stage; no timer, closure or object per write.
 */

/** The stages of raftkv_write_stage_seconds, in the order a write passes them. */
export const WRITE_STAGES = [
  'http_in',
  'proposal_queue',
  'append_sync',
  'replication',
  'commit',
  'apply',
  'http_out',
  'forward',
] as const;
export type WriteStage = (typeof WRITE_STAGES)[number];

/** Index of each stage in WRITE_STAGES (observations go by index, not by name). */
export const Stage = {
  httpIn: 0,
  proposalQueue: 1,
  appendSync: 2,
  replication: 3,
  commit: 4,
  apply: 5,
  httpOut: 6,
  forward: 7,
} as const satisfies Record<string, number>;

/**
 * Latency buckets from 50 µs to 5 s in steps of about 1.5×, fine enough to
 * read a p99 from (the doubling buckets of the other duration histograms are
 * not); shared by the write stages, event-loop delay and GC pauses.
 */
export const LATENCY_BUCKETS_SECONDS = [
  0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
  0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5,
];

/**
 * What the HTTP layer and the server stamp on a write's options object (an
 * object that exists per request anyway): when the command reached the core
 * (or was forwarded) and when it was applied (or the leader's answer came
 * back), performance.now() milliseconds; NaN until stamped.
 */
export interface WriteStamps {
  proposedMs?: number;
  appliedMs?: number;
}

/**
 * A Prometheus histogram whose label values are fixed up front, kept in a
 * Float64Array: an observation is a bucket search and two additions (a
 * prom-client observe hashes its labels each time, about 0.5–1 µs here, and a
 * write makes seven). Written into the /metrics text by NodeMetrics.
 */
export class FixedLabelHistogram {
  /** Per label value: one count per bucket (not cumulative), then +Inf, then the sum. */
  private readonly cells: Float64Array;
  private readonly width: number;

  constructor(
    readonly name: string,
    readonly help: string,
    /** undefined: no label (then `labelValues` is `['']`). */
    readonly labelName: string | undefined,
    readonly labelValues: readonly string[],
    readonly bucketsSeconds: readonly number[],
  ) {
    this.width = bucketsSeconds.length + 2;
    this.cells = new Float64Array(this.width * labelValues.length);
  }

  /** `count` observations of `seconds` under the label value at `label` (an index). */
  observe(label: number, seconds: number, count = 1): void {
    if (!(seconds >= 0)) seconds = 0; // NaN (a stamp missing) never gets here: callers check
    const buckets = this.bucketsSeconds;
    let i = 0;
    while (i < buckets.length && seconds > buckets[i]!) i++;
    const base = label * this.width;
    this.cells[base + i]! += count;
    this.cells[base + this.width - 1]! += seconds * count;
  }

  /** Observations so far under the label value at `label` (tests). */
  count(label: number): number {
    let n = 0;
    const base = label * this.width;
    for (let i = 0; i < this.width - 1; i++) n += this.cells[base + i]!;
    return n;
  }

  /** The histogram in Prometheus' text format (HELP, TYPE, cumulative buckets, sum, count). */
  text(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.labelValues.forEach((value, index) => {
      const base = index * this.width;
      const pair = this.labelName === undefined ? '' : `${this.labelName}="${value}"`;
      const braces = pair === '' ? '' : `{${pair}}`;
      const withLe = pair === '' ? '' : `,${pair}`;
      let cumulative = 0;
      this.bucketsSeconds.forEach((le, i) => {
        cumulative += this.cells[base + i]!;
        lines.push(`${this.name}_bucket{le="${le}"${withLe}} ${cumulative}`);
      });
      cumulative += this.cells[base + this.bucketsSeconds.length]!;
      lines.push(`${this.name}_bucket{le="+Inf"${withLe}} ${cumulative}`);
      lines.push(`${this.name}_sum${braces} ${this.cells[base + this.width - 1]!}`);
      lines.push(`${this.name}_count${braces} ${cumulative}`);
    });
    return lines.join('\n');
  }
}

/** One stage from stamp `fromMs` to stamp `toMs`, in seconds (clocks never run back: at least 0). */
function stageSeconds(fromMs: number, toMs: number): number {
  const ms = toMs - fromMs;
  return ms > 0 ? ms / 1000 : 0;
}

/**
 * The write accounting of one member: the stage histogram and the total, and
 * how each observation point turns stamps into stages.
 */
export class WriteAccounting {
  readonly stages = new FixedLabelHistogram(
    'raftkv_write_stage_seconds',
    "Where a write's time goes, per write, by stage: http_in (request received → proposed), proposal_queue (→ its entry handed to storage in a Ready), replication (→ committed by a quorum's acknowledgement), commit (→ its Ready starts applying), apply (→ applied), http_out (→ response sent) add up to raftkv_write_duration_seconds; append_sync (the synced log write of the entry's Ready, observed once per write in it) runs in parallel with replication; forward (a follower's wait for the leader's answer) stands in for proposal_queue..apply on a follower. The leader accounts proposal_queue..apply for every write it proposes, forwarded ones included; http_in, http_out and the total only for PUT/DELETE /v1/kv/* and POST /v1/txn received on its own client port",
    'stage',
    WRITE_STAGES,
    LATENCY_BUCKETS_SECONDS,
  );
  readonly total = new FixedLabelHistogram(
    'raftkv_write_duration_seconds',
    'Writes accounted in raftkv_write_stage_seconds (PUT/DELETE /v1/kv/*, POST /v1/txn received on this client port), from request received to response sent',
    undefined,
    [''],
    LATENCY_BUCKETS_SECONDS,
  );

  /** A proposal made here was applied (stages 2, 3, 4, 5; see the module comment). */
  proposalApplied(
    proposedMs: number,
    storedMs: number,
    committedMs: number,
    applyingMs: number,
    appliedMs: number,
  ): void {
    // A proposal from before a leader change, or stamps the core could not take: skipped.
    if (Number.isNaN(storedMs + committedMs)) return;
    this.stages.observe(Stage.proposalQueue, stageSeconds(proposedMs, storedMs));
    this.stages.observe(Stage.replication, stageSeconds(storedMs, committedMs));
    this.stages.observe(Stage.commit, stageSeconds(committedMs, applyingMs));
    this.stages.observe(Stage.apply, stageSeconds(applyingMs, appliedMs));
  }

  /** A Ready's synced log write that stored `count` proposals made here took `ms`. */
  proposalsSynced(ms: number, count: number): void {
    if (count > 0) this.stages.observe(Stage.appendSync, ms / 1000, count);
  }

  /** A write forwarded from here to the leader was answered after `ms`. */
  forwarded(ms: number): void {
    this.stages.observe(Stage.forward, ms / 1000);
  }

  /**
   * An accounted request's response was sent at `respondedMs`, `totalMs` after
   * it was received (stages 1 and 6, and the total). Requests never stamped
   * (refused before proposing, or not answered by an apply) are not counted.
   */
  responded(stamps: WriteStamps, totalMs: number, respondedMs: number): void {
    const { proposedMs, appliedMs } = stamps;
    if (proposedMs === undefined || appliedMs === undefined) return;
    if (Number.isNaN(proposedMs + appliedMs)) return;
    const receivedMs = respondedMs - totalMs;
    this.stages.observe(Stage.httpIn, stageSeconds(receivedMs, proposedMs));
    this.stages.observe(Stage.httpOut, stageSeconds(appliedMs, respondedMs));
    this.total.observe(0, totalMs / 1000);
  }
}
