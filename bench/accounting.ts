/**
 * What raftkv's latency accounting showed during a bench cell: the leader's
 * /metrics scraped before and after the cell, the histograms' differences,
 * and percentiles read from those differences the way Prometheus'
 * histogram_quantile does (linear within the bucket that holds the rank).
 *
 * Read from the leader: raftkv_write_stage_seconds{stage} (where a write's
 * time goes; see src/server/write-accounting.ts), raftkv_write_duration_seconds
 * (the writes its own client port received, end to end),
 * raftkv_eventloop_delay_seconds and raftkv_gc_pause_seconds{kind}.
 */
import { Agent, type Dispatcher, request } from 'undici';

/** One histogram series: cumulative counts by upper bound (ascending, +Inf last), sum, count. */
export interface Series {
  buckets: { le: number; cumulative: number }[];
  sum: number;
  count: number;
}

/** metric name → the value of its one label other than `le` ('' when none) → series. */
export type Histograms = Map<string, Map<string, Series>>;

const sampleLine = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)/;
const labelPair = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/**
 * The histograms named `names` in Prometheus' text format. Series are keyed by
 * the value of their one label besides `le` (a series with several other labels
 * is keyed by them joined with ',').
 */
export function parseHistograms(text: string, names: readonly string[]): Histograms {
  const out: Histograms = new Map();
  const wanted = new Set(names);
  for (const line of text.split('\n')) {
    const m = sampleLine.exec(line);
    if (!m) continue;
    const [, sample, labelText = '', valueText] = m;
    const suffix = /_(bucket|sum|count)$/.exec(sample!);
    if (!suffix) continue;
    const name = sample!.slice(0, -suffix[0].length);
    if (!wanted.has(name)) continue;
    let le: number | undefined;
    const others: string[] = [];
    for (const [, key, value] of labelText.matchAll(labelPair)) {
      if (key === 'le') le = value === '+Inf' ? Number.POSITIVE_INFINITY : Number(value);
      else others.push(value!);
    }
    const key = others.join(',');
    const byKey = out.get(name) ?? new Map<string, Series>();
    out.set(name, byKey);
    const series = byKey.get(key) ?? { buckets: [], sum: 0, count: 0 };
    byKey.set(key, series);
    const value = Number(valueText);
    if (suffix[1] === 'bucket' && le !== undefined) series.buckets.push({ le, cumulative: value });
    else if (suffix[1] === 'sum') series.sum = value;
    else if (suffix[1] === 'count') series.count = value;
  }
  for (const byKey of out.values())
    for (const series of byKey.values()) series.buckets.sort((a, b) => a.le - b.le);
  return out;
}

/** after − before, bucket by bucket (a series missing before counts from zero). */
export function delta(before: Series | undefined, after: Series): Series {
  const earlier = new Map(before?.buckets.map((b) => [b.le, b.cumulative]));
  return {
    buckets: after.buckets.map((b) => ({
      le: b.le,
      cumulative: b.cumulative - (earlier.get(b.le) ?? 0),
    })),
    sum: after.sum - (before?.sum ?? 0),
    count: after.count - (before?.count ?? 0),
  };
}

/**
 * The q-quantile (0 < q ≤ 1) of a series, as Prometheus' histogram_quantile
 * reads it: linear interpolation inside the bucket holding rank q × count,
 * from its lower bound (0 for the first bucket); in the +Inf bucket, the
 * highest finite bound. Undefined when the series is empty.
 */
export function quantile(series: Series, q: number): number | undefined {
  const total = series.buckets.at(-1)?.cumulative ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of series.buckets) {
    if (b.cumulative >= rank) {
      if (!Number.isFinite(b.le)) return lower;
      const inBucket = b.cumulative - below;
      return inBucket > 0 ? lower + (b.le - lower) * ((rank - below) / inBucket) : b.le;
    }
    lower = b.le;
    below = b.cumulative;
  }
  return lower;
}

/** The upper bound of the highest bucket with any observation: the largest value is at most this. */
export function maxBound(series: Series): number | undefined {
  let below = 0;
  let bound: number | undefined;
  let lower = 0;
  for (const b of series.buckets) {
    if (b.cumulative > below) bound = Number.isFinite(b.le) ? b.le : lower;
    below = b.cumulative;
    if (Number.isFinite(b.le)) lower = b.le;
  }
  return bound;
}

/** Adds series together (GC kinds into one). */
export function sumSeries(all: readonly Series[]): Series | undefined {
  const first = all[0];
  if (!first) return undefined;
  return {
    buckets: first.buckets.map((b, i) => ({
      le: b.le,
      cumulative: all.reduce((n, s) => n + (s.buckets[i]?.cumulative ?? 0), 0),
    })),
    sum: all.reduce((n, s) => n + s.sum, 0),
    count: all.reduce((n, s) => n + s.count, 0),
  };
}

export interface StageFigures {
  count: number;
  p50Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
}

/** What the accounting showed on one member during one cell (all from histogram deltas). */
export interface Accounting {
  /** The stage's figures per write, by stage name, in the order the member exported them. */
  stages: Record<string, StageFigures>;
  /** Accounted writes received on this member's client port, end to end. */
  total: StageFigures;
  eventLoopDelay: { samples: number; p99Ms: number | null; maxMsAtMost: number | null };
  gc: { pauses: number; totalMs: number; maxMsAtMost: number | null };
}

export const accountingMetrics = [
  'raftkv_write_stage_seconds',
  'raftkv_write_duration_seconds',
  'raftkv_eventloop_delay_seconds',
  'raftkv_gc_pause_seconds',
] as const;

const ms = (seconds: number | undefined) => (seconds === undefined ? null : seconds * 1000);

function figures(series: Series): StageFigures {
  return {
    count: series.count,
    p50Ms: ms(quantile(series, 0.5)),
    p99Ms: ms(quantile(series, 0.99)),
    meanMs: series.count > 0 ? (series.sum / series.count) * 1000 : null,
  };
}

/** The accounting between two scrapes of one member's /metrics. */
export function accountingBetween(beforeText: string, afterText: string): Accounting {
  const before = parseHistograms(beforeText, accountingMetrics);
  const after = parseHistograms(afterText, accountingMetrics);
  const diff = (name: string, key: string): Series | undefined => {
    const a = after.get(name)?.get(key);
    return a ? delta(before.get(name)?.get(key), a) : undefined;
  };
  const stages: Record<string, StageFigures> = {};
  for (const stage of after.get('raftkv_write_stage_seconds')?.keys() ?? []) {
    const d = diff('raftkv_write_stage_seconds', stage);
    if (d) stages[stage] = figures(d);
  }
  const total = diff('raftkv_write_duration_seconds', '');
  const loop = diff('raftkv_eventloop_delay_seconds', '');
  const gcKinds = [...(after.get('raftkv_gc_pause_seconds')?.keys() ?? [])];
  const gc = sumSeries(
    gcKinds.map((k) => diff('raftkv_gc_pause_seconds', k)).filter((s) => s !== undefined),
  );
  return {
    stages,
    total: total ? figures(total) : { count: 0, p50Ms: null, p99Ms: null, meanMs: null },
    eventLoopDelay: {
      samples: loop?.count ?? 0,
      p99Ms: loop ? ms(quantile(loop, 0.99)) : null,
      maxMsAtMost: loop ? ms(maxBound(loop)) : null,
    },
    gc: {
      pauses: gc?.count ?? 0,
      totalMs: (gc?.sum ?? 0) * 1000,
      maxMsAtMost: gc ? ms(maxBound(gc)) : null,
    },
  };
}

const f = (n: number | null, digits = 2) => (n === null ? 'n/a' : n.toFixed(digits));

/**
 * The accounting as lines for the report: one per stage (p50/p99 per write,
 * and its share of the chain's mean), then event loop and GC.
 */
export function formatAccounting(a: Accounting, indent = '    '): string[] {
  const chain = ['http_in', 'proposal_queue', 'replication', 'commit', 'apply', 'http_out'];
  const chainMean = chain.reduce((n, s) => n + (a.stages[s]?.meanMs ?? 0), 0);
  const lines: string[] = [];
  const width = Math.max(...Object.keys(a.stages).map((s) => s.length), 'total'.length);
  for (const [stage, s] of Object.entries(a.stages)) {
    if (s.count === 0) continue;
    const share =
      chain.includes(stage) && chainMean > 0 && s.meanMs !== null
        ? `  ${((s.meanMs / chainMean) * 100).toFixed(0).padStart(3)} % of mean`
        : stage === 'append_sync'
          ? '  (parallel to replication)'
          : '';
    lines.push(
      `${indent}${stage.padEnd(width)}  p50 ${f(s.p50Ms).padStart(7)}  p99 ${f(s.p99Ms).padStart(7)} ms  n=${s.count}${share}`,
    );
  }
  if (a.total.count > 0)
    lines.push(
      `${indent}${'total'.padEnd(width)}  p50 ${f(a.total.p50Ms).padStart(7)}  p99 ${f(a.total.p99Ms).padStart(7)} ms  n=${a.total.count}  (writes received by the leader itself)`,
    );
  lines.push(
    `${indent}event-loop delay p99 ${f(a.eventLoopDelay.p99Ms)} ms, max ≤ ${f(a.eventLoopDelay.maxMsAtMost)} ms (${a.eventLoopDelay.samples} samples); ` +
      `GC ${a.gc.pauses} pauses, ${f(a.gc.totalMs, 1)} ms total, max ≤ ${f(a.gc.maxMsAtMost)} ms`,
  );
  return lines;
}

/** Scrapes members' /metrics (public: no credentials even with auth on). */
export class MetricsScraper {
  private readonly dispatcher: Dispatcher | undefined;

  constructor(
    private readonly endpoints: readonly string[],
    connect: { ca: string } | undefined,
  ) {
    this.dispatcher = connect ? new Agent({ connect }) : undefined;
  }

  /** Every member's /metrics, and the index of the one that says it leads (-1: none). */
  async scrape(): Promise<{ texts: (string | undefined)[]; leader: number }> {
    const texts = await Promise.all(
      this.endpoints.map(async (e) => {
        try {
          const res = await request(`${e}/metrics`, {
            ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
            headersTimeout: 5_000,
            bodyTimeout: 5_000,
          });
          const text = await res.body.text();
          return res.statusCode === 200 ? text : undefined;
        } catch {
          return undefined;
        }
      }),
    );
    const leader = texts.findIndex((t) => t !== undefined && /^raftkv_is_leader 1$/m.test(t));
    return { texts, leader };
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }
}
