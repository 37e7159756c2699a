/** The dashboard's pure logic (src/ui/lib), run in Node: formatting, rates and percentiles, SSE, failover. */
import t from 'tap';
import { chooseEndpoint, connectionProblem } from '../../src/ui/lib/failover.js';
import {
  formatAgo,
  formatBytes,
  formatPercent,
  formatRate,
  formatSeconds,
  keyPath,
  lagOf,
  prefixCrumbs,
} from '../../src/ui/lib/format.js';
import {
  histogramDelta,
  histogramSum,
  kindOf,
  parseLabels,
  quantile,
  requestHistograms,
  samplePoint,
} from '../../src/ui/lib/metrics.js';
import { type SseEvent, sseParser } from '../../src/ui/lib/sse.js';

t.test('formatting', async (t) => {
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(1536), '1.50 KiB');
  t.equal(formatBytes(200 * 1024 * 1024), '200.0 MiB');
  t.equal(formatBytes(undefined), '–');
  t.equal(formatSeconds(0.0004), '0.40 ms');
  t.equal(formatSeconds(0.0123), '12.3 ms');
  t.equal(formatSeconds(1.5), '1.50 s');
  t.equal(formatSeconds(undefined), '–');
  t.equal(formatAgo(undefined, 1000), 'never');
  t.equal(formatAgo(1000, 1200), 'now');
  t.equal(formatAgo(1000, 4000), '3 s ago');
  t.equal(formatAgo(0, 300_000), '5 min ago');
  t.equal(formatRate(3.16), '3.2/s');
  t.equal(formatRate(1234.5), '1235/s');
  t.equal(formatPercent(1, 8), '12.5 %');
  t.equal(formatPercent(1, 0), '–');
  t.equal(lagOf({ appliedIndex: 90 }, { commitIndex: 100 }), 10);
  t.equal(lagOf({ appliedIndex: 101 }, { commitIndex: 100 }), 0, 'never negative');
  t.equal(lagOf(undefined, { commitIndex: 100 }), undefined);
  t.same(prefixCrumbs('app/config/db'), [
    ['app/', 'app'],
    ['app/config/', 'config'],
  ]);
  t.same(prefixCrumbs('flat'), []);
  t.equal(keyPath('a b/c?d/é'), 'a%20b/c%3Fd/%C3%A9');
});

const METRICS = `# HELP raftkv_http_request_duration_seconds Client API requests
# TYPE raftkv_http_request_duration_seconds histogram
raftkv_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/v1/kv/*",status="200"} 10
raftkv_http_request_duration_seconds_bucket{le="0.002",method="GET",route="/v1/kv/*",status="200"} 30
raftkv_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/v1/kv/*",status="200"} 40
raftkv_http_request_duration_seconds_sum{method="GET",route="/v1/kv/*",status="200"} 0.1
raftkv_http_request_duration_seconds_count{method="GET",route="/v1/kv/*",status="200"} 40
raftkv_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/v1/kv",status="200"} 0
raftkv_http_request_duration_seconds_bucket{le="0.002",method="GET",route="/v1/kv",status="200"} 10
raftkv_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/v1/kv",status="200"} 10
raftkv_http_request_duration_seconds_count{method="GET",route="/v1/kv",status="200"} 10
raftkv_http_request_duration_seconds_bucket{le="0.001",method="PUT",route="/v1/kv/*",status="200"} 0
raftkv_http_request_duration_seconds_bucket{le="0.002",method="PUT",route="/v1/kv/*",status="200"} 5
raftkv_http_request_duration_seconds_bucket{le="+Inf",method="PUT",route="/v1/kv/*",status="200"} 5
raftkv_http_request_duration_seconds_count{method="PUT",route="/v1/kv/*",status="200"} 5
raftkv_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/v1/status",status="200"} 99
raftkv_http_request_duration_seconds_count{method="GET",route="/v1/status",status="200"} 99
raftkv_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/v1/watch/*",status="200"} 2
raftkv_http_request_duration_seconds_count{method="GET",route="/v1/watch/*",status="200"} 2
`;

t.test('request kinds', async (t) => {
  t.equal(kindOf('GET', '/v1/kv/*'), 'read');
  t.equal(kindOf('GET', '/v1/kv'), 'read');
  t.equal(kindOf('PUT', '/v1/kv/*'), 'write');
  t.equal(kindOf('POST', '/v1/txn'), 'write');
  t.equal(kindOf('POST', '/v1/locks/*'), 'write');
  t.equal(kindOf('GET', '/v1/watch/*'), 'watch');
  t.equal(kindOf('GET', '/v1/status'), undefined, "the dashboard's own polling is not charted");
  t.equal(kindOf('GET', '/ui/*'), undefined);
  t.same(parseLabels('a="x",b="q\\"uote",c="back\\\\slash"'), {
    a: 'x',
    b: 'q"uote',
    c: 'back\\slash',
  });
});

t.test('histograms by kind, summed over routes and statuses', async (t) => {
  const h = requestHistograms(METRICS);
  t.same(h.read.bounds, [0.001, 0.002, Number.POSITIVE_INFINITY]);
  t.same(h.read.buckets, [10, 40, 50]);
  t.equal(h.read.count, 50);
  t.same(h.write.buckets, [0, 5, 5]);
  t.equal(h.watch.count, 2);
});

t.test('quantiles interpolate inside their bucket, as histogram_quantile does', async (t) => {
  const h = { bounds: [0.001, 0.002, Number.POSITIVE_INFINITY], buckets: [10, 40, 50], count: 50 };
  // rank 25: 15 into the 30 of bucket (0.001, 0.002] → 0.0015.
  t.equal(quantile(h, 0.5), 0.0015);
  t.equal(quantile(h, 0.1), 0.0005, 'rank 5: half of the first bucket, from 0');
  t.equal(quantile(h, 0.99), 0.002, 'the +Inf bucket answers its lower bound');
  t.equal(quantile({ bounds: [], buckets: [], count: 0 }, 0.5), undefined);
  t.equal(
    quantile({ bounds: [1, Number.POSITIVE_INFINITY], buckets: [0, 0], count: 0 }, 0.5),
    undefined,
  );
});

t.test('deltas between readings, restarts, and sums over members', async (t) => {
  const a = { bounds: [1, 2], buckets: [1, 2], count: 2 };
  const b = { bounds: [1, 2], buckets: [4, 6], count: 6 };
  t.same(histogramDelta(a, b), { bounds: [1, 2], buckets: [3, 4], count: 4 });
  t.same(histogramDelta(b, a), a, 'a counter that went down: the member restarted');
  t.same(histogramDelta(undefined, a), a);
  t.same(histogramSum(a, b), { bounds: [1, 2], buckets: [5, 8], count: 8 });
  t.same(histogramSum(undefined, a), a);
});

t.test('a chart point: rates and percentiles over all members', async (t) => {
  const before = requestHistograms(METRICS);
  const later = requestHistograms(
    METRICS.replace(
      'le="0.002",method="GET",route="/v1/kv/*",status="200"} 30',
      'le="0.002",method="GET",route="/v1/kv/*",status="200"} 50',
    )
      .replace(
        'le="+Inf",method="GET",route="/v1/kv/*",status="200"} 40',
        'le="+Inf",method="GET",route="/v1/kv/*",status="200"} 60',
      )
      .replace(
        '_count{method="GET",route="/v1/kv/*",status="200"} 40',
        '_count{method="GET",route="/v1/kv/*",status="200"} 60',
      ),
  );
  const point = samplePoint(
    new Map([
      ['m1', before],
      ['m2', before],
    ]),
    new Map([
      ['m1', later],
      ['m2', before],
      ['m3', later],
    ]),
    2,
  );
  t.equal(point.read.rate, 10, '20 new reads on m1 in 2 s; m3 has no earlier reading');
  t.equal(point.write.rate, 0);
  t.equal(point.write.p50, undefined, 'no writes: no percentile');
  t.ok(point.read.p50! > 0.001 && point.read.p50! <= 0.002, 'all 20 took 1 to 2 ms');
});

t.test('SSE parsing across chunk boundaries', async (t) => {
  const events: SseEvent[] = [];
  const p = sseParser((e) => events.push(e));
  p.feed('event: change\nid: 42\ndata: {"revision":');
  p.feed(' 42}\n\n: comment\n\nevent: progress\r');
  p.feed('\ndata: {"revision": 43}\r\n\r\n');
  p.feed('data: a\ndata: b\n\n');
  t.same(events, [
    { event: 'change', data: '{"revision": 42}', id: '42' },
    { event: 'progress', data: '{"revision": 43}', id: undefined },
    { event: 'message', data: 'a\nb', id: undefined },
  ]);
});

t.test('which member to use', async (t) => {
  const m = (url: string, reachable: boolean, hasLeader: boolean) => ({
    url,
    name: url,
    reachable,
    hasLeader,
  });
  t.equal(chooseEndpoint('a', [m('a', true, true), m('b', true, true)]), 'a', 'keep a good one');
  t.equal(chooseEndpoint('a', [m('a', false, false), m('b', true, true)]), 'b', 'leave a dead one');
  t.equal(
    chooseEndpoint('a', [m('a', true, false), m('b', false, false), m('c', true, true)]),
    'c',
    'leave one without a leader for one with',
  );
  t.equal(
    chooseEndpoint('a', [m('a', true, false), m('b', true, false)]),
    'a',
    'no member knows a leader: stay on one that answers',
  );
  t.equal(
    chooseEndpoint('a', [m('a', false, false), m('b', true, false)]),
    'b',
    'better one that answers than none',
  );
  t.equal(chooseEndpoint('a', [m('a', false, false), m('b', false, false)]), 'a', 'all down: stay');
  t.equal(chooseEndpoint('x', [m('a', true, true)]), 'a', 'a URL that is not a member');
  t.equal(connectionProblem(m('a', false, false)), 'a is unreachable');
  t.equal(connectionProblem(m('a', true, false)), 'a has no leader');
  t.equal(connectionProblem(m('a', true, true)), undefined);
});
