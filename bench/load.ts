/**
 * The load generator: a closed loop (a fixed number of requests in flight) over undici keep-alive
 * pools, one pool per endpoint, requests rotated over the endpoints, latencies in an HDR
 * histogram (microseconds), errors counted by status (or network error code). Every run is
 * bounded by time and by an op count. Also the watch fan-out: many streaming watchers, one
 * paced (open-loop) writer, latency from a put's acknowledgement to each watcher's receipt.
 */
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { build, type Histogram } from 'hdr-histogram-js';
import { Pool } from 'undici';
import type { ClientSecurity } from './security.js';

/** One HTTP request; the path starts with `/`. */
export interface Op {
  method: 'GET' | 'PUT' | 'POST';
  path: string;
  body?: string;
}

/** Which requests a closed loop sends. `worker` is the in-flight slot, 0..concurrency-1. */
export interface Workload {
  next(worker: number): Op;
  /**
   * Reads a 2xx answer when the workload needs it (e.g. a CAS that follows modRevision);
   * returns an error label to count the op as failed.
   */
  check?(worker: number, op: Op, body: string): string | undefined;
}

export interface LoadOptions {
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  maxOps: number;
  /** Bound on one request (headers and body), in ms. */
  requestTimeoutMs: number;
  /** Called once when the measured window starts (after the warm-up); closed-loop cells only. */
  onWindowStart?: () => void;
}

export interface LoadResult {
  ops: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  errors: Record<string, number>;
}

const jsonHeaders = { 'content-type': 'application/json' };

function newHistogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000 });
}

function summarize(h: Histogram, ops: number, seconds: number, errors: Map<string, number>) {
  const ms = (p: number) => h.getValueAtPercentile(p) / 1000;
  return {
    ops,
    seconds,
    opsPerSec: seconds > 0 ? ops / seconds : 0,
    p50Ms: ms(50),
    p99Ms: ms(99),
    p999Ms: ms(99.9),
    maxMs: h.maxValue / 1000,
    errors: Object.fromEntries(errors),
  };
}

function count(errors: Map<string, number>, label: string): void {
  errors.set(label, (errors.get(label) ?? 0) + 1);
}

/** `429 too_many_requests` from a raftkv/etcd error body, or just the status. */
function errorLabel(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown } | string; code?: unknown };
    const code = typeof parsed.error === 'object' ? parsed.error.code : parsed.code;
    return code !== undefined ? `${status} ${code}` : `${status}`;
  } catch {
    return `${status}`;
  }
}

function networkLabel(err: unknown): string {
  const e = err as { code?: string; name?: string };
  return e.code ?? e.name ?? 'error';
}

function makePools(
  endpoints: string[],
  connections: number,
  timeoutMs: number,
  security: ClientSecurity,
): Pool[] {
  return endpoints.map(
    (e) =>
      new Pool(e, {
        connections,
        pipelining: 1,
        keepAliveTimeout: 60_000,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(security.connect ? { connect: security.connect } : {}),
      }),
  );
}

/** The headers of one request: JSON when it has a body, the credentials when auth is on. */
function headersFor(op: Op, authorization: string | undefined): Record<string, string> | undefined {
  if (authorization === undefined) return op.body !== undefined ? jsonHeaders : undefined;
  return op.body !== undefined ? { ...jsonHeaders, authorization } : { authorization };
}

/**
 * Sends `op` with the current credentials; on a 401 (expired or replaced token) renews them
 * and sends it once more, as a client library does. Without credentials: one plain request.
 */
async function send(pool: Pool, op: Op, security: ClientSecurity) {
  const { credentials } = security;
  if (!credentials) {
    return pool.request({
      method: op.method,
      path: op.path,
      ...(op.body !== undefined ? { body: op.body, headers: jsonHeaders } : {}),
    });
  }
  for (let attempt = 0; ; attempt++) {
    const authorization = credentials.header;
    const res = await pool.request({
      method: op.method,
      path: op.path,
      headers: headersFor(op, authorization),
      ...(op.body !== undefined ? { body: op.body } : {}),
    });
    if (res.statusCode !== 401 || attempt > 0) return res;
    await res.body.dump();
    await credentials.renew(authorization);
  }
}

const maxWritesInFlight = 32;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `workload` with `concurrency` requests in flight: warm-up first (not recorded), then a
 * measured window that ends after `seconds` or `maxOps` recorded ops, whichever comes first.
 */
export async function runClosedLoop(
  endpoints: string[],
  workload: Workload,
  opts: LoadOptions,
  security: ClientSecurity = {},
): Promise<LoadResult> {
  // Enough connections per endpoint that the client never queues (requests rotate over endpoints).
  const pools = makePools(endpoints, opts.concurrency, opts.requestTimeoutMs, security);
  const hist = newHistogram();
  const errors = new Map<string, number>();
  const start = performance.now();
  const windowStart = start + opts.warmupSeconds * 1000;
  const windowEnd = windowStart + opts.seconds * 1000;
  let issued = 0; // ops started inside the window
  let ops = 0; // successful ops recorded
  let lastDone = windowStart;
  let rotation = 0;
  const windowTimer = opts.onWindowStart
    ? setTimeout(opts.onWindowStart, windowStart - performance.now())
    : undefined;

  async function worker(w: number): Promise<void> {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= windowEnd) return;
      const measured = t0 >= windowStart;
      if (measured && issued++ >= opts.maxOps) return;
      const op = workload.next(w);
      const pool = pools[rotation++ % pools.length]!;
      let label: string | undefined;
      try {
        const res = await send(pool, op, security);
        if (res.statusCode >= 200 && res.statusCode < 300) {
          if (workload.check) label = workload.check(w, op, await res.body.text());
          else await res.body.dump();
        } else {
          label = errorLabel(res.statusCode, await res.body.text());
        }
      } catch (err) {
        label = networkLabel(err);
        await sleep(10); // a dead socket fails fast: do not spin
      }
      const t1 = performance.now();
      if (!measured) continue;
      lastDone = Math.max(lastDone, t1);
      if (label) count(errors, label);
      else {
        ops++;
        hist.recordValue(Math.max(0, Math.round((t1 - t0) * 1000)));
      }
    }
  }

  try {
    await Promise.all(Array.from({ length: opts.concurrency }, (_, w) => worker(w)));
  } finally {
    clearTimeout(windowTimer);
    await Promise.all(pools.map((p) => p.destroy()));
  }
  return summarize(hist, ops, (lastDone - windowStart) / 1000, errors);
}

/** How one system exposes a streaming watch and a put whose revision we can read. */
export interface WatchApi {
  /** The streaming request that watches every key under `prefix`. */
  watch(prefix: string): Op;
  /** True when the stream is live as soon as the 200 headers arrive (else: when `feed` says so). */
  liveOnHeaders: boolean;
  /** A parser for one stream: text in, revisions of change events out (and `live` once created). */
  parser(): (text: string) => { revisions: number[]; live: boolean };
  put(key: string): Op;
  /** The revision of an acknowledged put, from its 2xx body. */
  putRevision(body: string): number;
}

export interface FanoutOptions {
  watchers: number;
  seconds: number;
  maxOps: number;
  putsPerSec: number;
  requestTimeoutMs: number;
}

/**
 * Opens `watchers` streaming watches on one prefix (spread over the endpoints), then one writer
 * puts keys under it at `putsPerSec` (open loop, at most maxWritesInFlight outstanding).
 * Latency per delivery = receipt time - the put's ack time (0 when the event beat the ack).
 * Throughput = deliveries per second. Deliveries still missing 2 s after the writer stops are
 * counted as `missing` errors.
 */
export async function runWatchFanout(
  endpoints: string[],
  api: WatchApi,
  prefix: string,
  opts: FanoutOptions,
  security: ClientSecurity = {},
): Promise<LoadResult> {
  const streamPools = makePools(endpoints, opts.watchers, opts.requestTimeoutMs, security);
  const writePools = makePools(endpoints, maxWritesInFlight, opts.requestTimeoutMs, security);
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per watch request
  const hist = newHistogram();
  const errors = new Map<string, number>();
  const acked = new Map<number, number>(); // revision -> ack time (ms)
  let delivered = 0;

  /** Resolves once the watch is live (with its stream's promise, which ends on abort). */
  const openOne = (i: number) =>
    new Promise<{ stream: Promise<void> }>((live, fail) => {
      const op = api.watch(prefix);
      const feed = api.parser();
      const pool = streamPools[i % streamPools.length]!;
      const timer = setTimeout(() => fail(new Error('watch: not live after 10 s')), 10_000);
      const ready = () => {
        clearTimeout(timer);
        live({ stream });
      };
      const stream = (async () => {
        const authorization = security.credentials?.header;
        const res = await pool.request({
          method: op.method,
          path: op.path,
          signal: abort.signal,
          bodyTimeout: 0,
          ...(op.body !== undefined ? { body: op.body } : {}),
          ...(op.body !== undefined || authorization !== undefined
            ? { headers: headersFor(op, authorization) }
            : {}),
        });
        if (res.statusCode !== 200)
          throw new Error(`watch: ${errorLabel(res.statusCode, await res.body.text())}`);
        if (api.liveOnHeaders) ready();
        res.body.setEncoding('utf8');
        for await (const chunk of res.body) {
          const now = performance.now();
          const { revisions, live: isLive } = feed(chunk as string);
          if (isLive) ready();
          for (const r of revisions) {
            const ackMs = acked.get(r);
            delivered++;
            hist.recordValue(
              ackMs === undefined ? 0 : Math.max(0, Math.round((now - ackMs) * 1000)),
            );
          }
        }
        if (!abort.signal.aborted) count(errors, 'watch ended');
      })()
        .catch((err) => {
          if (abort.signal.aborted) return;
          count(errors, `watch ${networkLabel(err)}`);
          fail(err);
        })
        .finally(() => {
          clearTimeout(timer);
          fail(new Error('watch: stream ended before it was live'));
        });
    });

  let puts = 0;
  let seconds = 0;
  try {
    const opened = await Promise.all(Array.from({ length: opts.watchers }, (_, i) => openOne(i)));
    const start = performance.now();
    const end = start + opts.seconds * 1000;
    const intervalMs = 1000 / opts.putsPerSec;
    const writes = new Set<Promise<void>>();
    const write = async (i: number) => {
      const op = api.put(`${prefix}${i % 100}`);
      try {
        const authorization = security.credentials?.header;
        const res = await writePools[i % writePools.length]!.request({
          method: op.method,
          path: op.path,
          body: op.body ?? null,
          headers: authorization === undefined ? jsonHeaders : { ...jsonHeaders, authorization },
        });
        const body = await res.body.text();
        if (res.statusCode >= 200 && res.statusCode < 300) {
          acked.set(api.putRevision(body), performance.now());
          puts++;
        } else count(errors, `put ${errorLabel(res.statusCode, body)}`);
      } catch (err) {
        count(errors, `put ${networkLabel(err)}`);
      }
    };
    // Open loop on a fixed schedule, so both systems get the same event rate whatever their put
    // latency; at most maxWritesInFlight outstanding (a late put delays the schedule).
    for (let i = 0; performance.now() < end && i < opts.maxOps; i++) {
      const wait = start + i * intervalMs - performance.now();
      if (wait > 0) await sleep(wait);
      while (writes.size >= maxWritesInFlight) await Promise.race(writes);
      const p: Promise<void> = write(i).finally(() => writes.delete(p));
      writes.add(p);
    }
    await Promise.all(writes);
    seconds = (performance.now() - start) / 1000;
    const expected = puts * opts.watchers;
    for (let waited = 0; delivered < expected && waited < 2000; waited += 50) await sleep(50);
    if (delivered < expected) errors.set('missing', expected - delivered);
    abort.abort();
    await Promise.allSettled(opened.map((o) => o.stream));
  } finally {
    abort.abort();
    await Promise.all([...streamPools, ...writePools].map((p) => p.destroy()));
  }
  return summarize(hist, delivered, seconds, errors);
}
