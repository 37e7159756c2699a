/**
 * Request rates and latency percentiles from the members' Prometheus text
 * (GET /metrics, histogram raftkv_http_request_duration_seconds by method,
 * route and status), computed in the page: pure functions, tested in Node.
 */

const HISTOGRAM = 'raftkv_http_request_duration_seconds';

/** The kinds of requests the dashboard charts. */
export const KINDS = ['read', 'write', 'watch'];

/**
 * The kind of a request by method and route pattern, or undefined for what
 * is not charted (status, metrics, health, the dashboard's own files).
 */
export function kindOf(method, route) {
  if (route.startsWith('/v1/watch')) return 'watch';
  const data =
    route.startsWith('/v1/kv') ||
    route === '/v1/txn' ||
    route.startsWith('/v1/leases') ||
    route.startsWith('/v1/registry') ||
    route.startsWith('/v1/locks') ||
    route.startsWith('/v1/elections');
  if (!data) return undefined;
  if (method === 'GET') return route.startsWith('/v1/kv') ? 'read' : undefined;
  return 'write';
}

/** `a="x",b="y"` → { a: 'x', b: 'y' } (Prometheus escapes: \\, \", \n). */
export function parseLabels(text) {
  const labels = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

/**
 * The request histogram summed by kind: for each kind, cumulative bucket
 * counts by upper bound (`le`, +Inf last) and the total count.
 * @returns {Record<string, {bounds: number[], buckets: number[], count: number}>}
 */
export function requestHistograms(text) {
  const byKind = {};
  for (const kind of KINDS) byKind[kind] = { bounds: [], buckets: [], count: 0, index: new Map() };
  for (const line of text.split('\n')) {
    if (!line.startsWith(HISTOGRAM)) continue;
    const open = line.indexOf('{');
    const close = line.lastIndexOf('}');
    if (open < 0 || close < open) continue;
    const series = line.slice(0, open);
    const labels = parseLabels(line.slice(open + 1, close));
    const value = Number(
      line
        .slice(close + 1)
        .trim()
        .split(' ')[0],
    );
    const kind = kindOf(labels.method ?? '', labels.route ?? '');
    if (kind === undefined || !Number.isFinite(value)) continue;
    const h = byKind[kind];
    if (series === `${HISTOGRAM}_bucket`) {
      const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
      let i = h.index.get(le);
      if (i === undefined) {
        i = h.bounds.length;
        h.index.set(le, i);
        h.bounds.push(le);
        h.buckets.push(0);
      }
      h.buckets[i] += value;
    } else if (series === `${HISTOGRAM}_count`) {
      h.count += value;
    }
  }
  const out = {};
  for (const kind of KINDS) {
    const h = byKind[kind];
    const order = h.bounds.map((b, i) => [b, h.buckets[i]]).sort((a, b) => a[0] - b[0]);
    out[kind] = { bounds: order.map((o) => o[0]), buckets: order.map((o) => o[1]), count: h.count };
  }
  return out;
}

/**
 * What happened between two readings of one member's histogram. A counter
 * that went down means the member restarted: the new reading is all new.
 */
export function histogramDelta(prev, cur) {
  if (prev === undefined || cur.count < prev.count) return cur;
  const buckets = cur.bounds.map((b, i) => {
    const j = prev.bounds.indexOf(b);
    return cur.buckets[i] - (j >= 0 ? prev.buckets[j] : 0);
  });
  return { bounds: cur.bounds, buckets, count: cur.count - prev.count };
}

/** Two histograms (of the same buckets, e.g. from two members) added. */
export function histogramSum(a, b) {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const bounds = [...new Set([...a.bounds, ...b.bounds])].sort((x, y) => x - y);
  const at = (h, bound) => {
    // Cumulative: a bound missing from h counts what h has at its next lower bound.
    let v = 0;
    for (let i = 0; i < h.bounds.length && h.bounds[i] <= bound; i++) v = h.buckets[i];
    return v;
  };
  return { bounds, buckets: bounds.map((x) => at(a, x) + at(b, x)), count: a.count + b.count };
}

/**
 * The q-quantile (0..1) in seconds of a cumulative histogram, interpolated
 * linearly inside its bucket as Prometheus's histogram_quantile does; the
 * +Inf bucket answers its lower bound. Undefined when the histogram is empty.
 */
export function quantile(h, q) {
  const total = h.buckets.length > 0 ? h.buckets[h.buckets.length - 1] : 0;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  for (let i = 0; i < h.bounds.length; i++) {
    if (h.buckets[i] >= rank) {
      const lower = i === 0 ? 0 : h.bounds[i - 1];
      const below = i === 0 ? 0 : h.buckets[i - 1];
      const upper = h.bounds[i];
      if (upper === Number.POSITIVE_INFINITY) return lower;
      const inBucket = h.buckets[i] - below;
      if (inBucket <= 0) return upper;
      return lower + (upper - lower) * ((rank - below) / inBucket);
    }
  }
  return h.bounds.length > 1 ? h.bounds[h.bounds.length - 2] : undefined;
}

/**
 * One chart point from two readings of every member, `seconds` apart:
 * requests/s and p50/p99 (seconds) for each kind, over all members.
 * `prev` and `cur` map a member id to its requestHistograms().
 */
export function samplePoint(prev, cur, seconds) {
  const point = {};
  for (const kind of KINDS) {
    let sum;
    for (const [id, now] of cur) {
      const before = prev.get(id);
      if (before === undefined) continue;
      sum = histogramSum(sum, histogramDelta(before[kind], now[kind]));
    }
    const count = sum?.count ?? 0;
    point[kind] = {
      rate: seconds > 0 ? count / seconds : 0,
      p50: sum && count > 0 ? quantile(sum, 0.5) : undefined,
      p99: sum && count > 0 ? quantile(sum, 0.99) : undefined,
    };
  }
  return point;
}
