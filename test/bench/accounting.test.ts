/**
 * The bench's reading of raftkv's latency accounting (bench/accounting.ts):
 * histogram differences between two scrapes and percentiles read from them,
 * on synthetic /metrics text; and that the text raftkv's own fixed-label
 * histogram writes is read back as written.
 */
import t from 'tap';
import {
  accountingBetween,
  delta,
  maxBound,
  parseHistograms,
  quantile,
  type Series,
} from '../../bench/accounting.js';
import { FixedLabelHistogram, WriteAccounting } from '../../src/server/write-accounting.js';

/** A histogram's text with non-cumulative `counts` per bound of `les` (+Inf last). */
function histogramText(
  name: string,
  label: string,
  les: number[],
  counts: number[],
  sum: number,
): string {
  const lines = [`# HELP ${name} test`, `# TYPE ${name} histogram`];
  let cumulative = 0;
  const withLabel = label ? `,${label}` : '';
  les.forEach((le, i) => {
    cumulative += counts[i]!;
    lines.push(`${name}_bucket{le="${le}"${withLabel}} ${cumulative}`);
  });
  cumulative += counts[les.length] ?? 0;
  lines.push(`${name}_bucket{le="+Inf"${withLabel}} ${cumulative}`);
  lines.push(`${name}_sum${label ? `{${label}}` : ''} ${sum}`);
  lines.push(`${name}_count${label ? `{${label}}` : ''} ${cumulative}`);
  return lines.join('\n');
}

const les = [0.001, 0.002, 0.005, 0.01];

t.test('a difference of two scrapes counts only what happened between them', async (t) => {
  const before = histogramText('h', 'stage="apply"', les, [10, 0, 0, 0, 0], 0.005);
  const after = histogramText('h', 'stage="apply"', les, [10, 90, 0, 0, 0], 0.005 + 0.135);
  const d = delta(
    parseHistograms(before, ['h']).get('h')!.get('apply'),
    parseHistograms(after, ['h']).get('h')!.get('apply')!,
  );
  t.equal(d.count, 90);
  t.equal(Math.round(d.sum * 1000), 135);
  t.strictSame(
    d.buckets.map((b) => b.cumulative),
    [0, 90, 90, 90, 90],
  );
  t.equal(d.buckets.at(-1)!.le, Number.POSITIVE_INFINITY, '+Inf is the last bucket');
});

t.test('a series that first appears after the first scrape counts from zero', async (t) => {
  const after = histogramText('h', 'stage="forward"', les, [1, 2, 3, 0, 0], 0.01);
  const d = delta(undefined, parseHistograms(after, ['h']).get('h')!.get('forward')!);
  t.equal(d.count, 6);
});

t.test('percentiles interpolate inside the bucket that holds the rank', async (t) => {
  // 100 observations: 50 in (0, 1 ms], 40 in (1, 2 ms], 10 in (2, 5 ms].
  const s = parseHistograms(histogramText('h', '', les, [50, 40, 10, 0, 0], 0.15), ['h'])
    .get('h')!
    .get('')!;
  t.equal(quantile(s, 0.5), 0.001, 'p50 is the first bucket top: 50 of 100 are at most 1 ms');
  t.equal(quantile(s, 0.7)!.toFixed(6), '0.001500', 'p70: halfway through (1, 2 ms]');
  t.equal(quantile(s, 0.99)!.toFixed(6), '0.004700', 'p99: 9 of 10 into (2, 5 ms]');
  t.equal(maxBound(s), 0.005, 'the largest observation is at most 5 ms');
});

t.test('a rank in the +Inf bucket reads as the highest finite bound', async (t) => {
  const s: Series = parseHistograms(histogramText('h', '', les, [0, 0, 0, 1, 1], 1), ['h'])
    .get('h')!
    .get('')!;
  t.equal(quantile(s, 0.99), 0.01);
  t.equal(maxBound(s), 0.01);
});

t.test('an empty difference has no percentile', async (t) => {
  const text = histogramText('h', '', les, [5, 0, 0, 0, 0], 0.001);
  const s = parseHistograms(text, ['h']).get('h')!.get('')!;
  t.equal(quantile(delta(s, s), 0.99), undefined);
  t.equal(maxBound(delta(s, s)), undefined);
});

t.test('the accounting of a cell: stages, total, event loop and GC kinds added up', async (t) => {
  const scrape = (apply: number[], loop: number[], minor: number[], major: number[]) =>
    [
      histogramText('raftkv_write_stage_seconds', 'stage="apply"', les, apply, apply[0]! * 0.001),
      histogramText('raftkv_write_duration_seconds', '', les, apply, apply[0]! * 0.004),
      histogramText('raftkv_eventloop_delay_seconds', '', les, loop, 0),
      histogramText('raftkv_gc_pause_seconds', 'kind="minor"', les, minor, minor[0]! * 0.0005),
      histogramText('raftkv_gc_pause_seconds', 'kind="major"', les, major, major[2]! * 0.004),
      'raftkv_is_leader 1',
    ].join('\n');
  const a = accountingBetween(
    scrape([10, 0, 0, 0, 0], [100, 0, 0, 0, 0], [3, 0, 0, 0, 0], [0, 0, 0, 0, 0]),
    scrape([30, 0, 0, 0, 0], [298, 1, 0, 1, 0], [13, 0, 0, 0, 0], [0, 0, 2, 0, 0]),
  );
  t.equal(a.stages.apply!.count, 20);
  t.equal(a.total.count, 20);
  t.equal(a.eventLoopDelay.samples, 200);
  t.equal(a.eventLoopDelay.maxMsAtMost, 10, 'one sample in (5, 10 ms]');
  t.equal(a.gc.pauses, 12, '10 minor and 2 major');
  t.equal(a.gc.totalMs.toFixed(1), '13.0', '10 × 0.5 ms + 2 × 4 ms');
  t.equal(a.gc.maxMsAtMost, 5);
});

t.test("raftkv's own histogram text is read back as written", async (t) => {
  const h = new FixedLabelHistogram('x_seconds', 'test', 'stage', ['a', 'b'], les);
  h.observe(0, 0.0015);
  h.observe(0, 0.0015, 3);
  h.observe(1, 20); // beyond the last bound: +Inf
  const parsed = parseHistograms(h.text(), ['x_seconds']).get('x_seconds')!;
  const a = parsed.get('a')!;
  t.equal(a.count, 4);
  t.equal(a.sum.toFixed(4), '0.0060');
  t.strictSame(
    a.buckets.map((b) => b.cumulative),
    [0, 4, 4, 4, 4],
  );
  t.equal(parsed.get('b')!.count, 1);
  t.equal(parsed.get('b')!.buckets.at(-2)!.cumulative, 0, 'nothing in a finite bucket');
  t.equal(h.count(0), 4);
});

t.test('every stage of the write accounting is exported, with a HELP text', async (t) => {
  const w = new WriteAccounting();
  const text = `${w.stages.text()}\n${w.total.text()}`;
  t.match(text, /^# HELP raftkv_write_stage_seconds \S/m);
  t.match(text, /^# HELP raftkv_write_duration_seconds \S/m);
  const stages = parseHistograms(text, ['raftkv_write_stage_seconds']).get(
    'raftkv_write_stage_seconds',
  )!;
  t.strictSame(
    [...stages.keys()],
    [
      'http_in',
      'proposal_queue',
      'append_sync',
      'replication',
      'commit',
      'apply',
      'http_out',
      'forward',
    ],
  );
});
