/**
 * npm run bench -- [--quick] [--only put-64,lget,...] [--seconds N] [--max-ops N] [--no-etcd]
 *                    [--cpu-prof] [--tls] [--auth] [--etcd-auth-token simple|jwt]
 *                    [--node-arg=--v8-flag ...] [--alloc-prof]
 *
 * Starts a fresh 3-node raftkv cluster (real processes, free ports on 127.0.0.1, temp data dirs)
 * and, when an `etcd` binary is on PATH (Debian: `apt-get install etcd-server`; this harness
 * never installs anything), a 3-node etcd cluster beside it. Then runs each cell — a workload at
 * a concurrency — on both, alternating which system goes first to cancel machine drift, and
 * prints one table (ops/s, p50/p99/p99.9 latency, errors, peak RSS of the busiest member during
 * the cell, CPU used by the 3 members and by the harness in % of one core — the machine has
 * only so many — and raftkv/etcd ratios) and writes it as JSON to bench/results/<timestamp>.json.
 * Next to each raftkv cell it prints what raftkv's own latency accounting showed on the leader
 * during the cell's measured window (accounting.ts: the leader's /metrics scraped when the window
 * starts and after the cell, histogram differences): per write stage p50/p99, the event-loop delay
 * p99 and GC pauses; a second table repeats them after the main one, and the JSON has them per row.
 * Everything it started is stopped at the end, on errors and on Ctrl-C. `--cpu-prof` runs the
 * raftkv members under node's --cpu-prof and keeps the temp dir: profiles are in <tmp>/profiles.
 * `--node-arg` (repeatable) passes a flag to the raftkv members' node only, not to the harness
 * (NODE_OPTIONS would reach both): for trying V8 settings such as --max-semi-space-size.
 * `--alloc-prof` samples what each raftkv member allocates during each cell's measured window
 * (alloc-profile.ts: V8's sampling heap profiler through the inspector, the members run with
 * --inspect=127.0.0.1:0) and prints KB per operation and the top allocating functions; the
 * .heapprofile files stay in <tmp>/alloc-profiles.
 *
 * Secure cells, for both systems alike (see security.ts): `--tls` serves the client port over
 * HTTPS and runs peer traffic over mutual TLS (one CA and node certificate made by raftkv's
 * certs code); `--auth` creates root, a role with readwrite on bench/ and a user with it,
 * enables authentication and sends the user's token on every request (etcd's token kind:
 * `--etcd-auth-token`, `simple` by default as in etcd, or `jwt` signed RS256). Each row and the
 * JSON say which mode ran ('plain', 'tls', 'auth', 'tls+auth').
 *
 * Cells (`--only` takes ids or workload names):
 *   put-1/16/64/256   PUT of a 256-byte value to one of 10k keys, uniformly at random
 *   lget-1/64/256     linearizable GET of one of the 10k keys (all preloaded)
 *   sget-64           serializable GET
 *   cas-64            txn: put iff modRevision is the last one seen (each slot owns a key)
 *   mix-64            90% linearizable GET, 10% PUT
 *   watch-100         100 streaming watchers on one prefix (etcd: the gateway's streaming
 *                     /v3/watch), one paced open-loop writer at 100 puts/s; latency is put
 *                     acknowledgement -> event receipt (0 if the event came first); ops/s is
 *                     deliveries per second.
 * Closed loop: `concurrency` requests always in flight, rotated over the 3 members (raftkv and
 * etcd forward writes to their leader). Each cell: warm-up (1 s, 0.5 s with --quick), then a
 * measured window of --seconds (15, 3 with --quick) or --max-ops ops (1,000,000).
 * Before the first cell each system is warmed up alike, unmeasured: the 10k keys written,
 * then --cluster-warmup seconds (5, 1 with --quick, 0 to skip) of 90 % GET / 10 % PUT at 16 in
 * flight — a fresh node process runs its hot paths interpreted until the JIT catches up.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  type Accounting,
  accountingBetween,
  formatAccounting,
  MetricsScraper,
} from './accounting.js';
import {
  AllocationSampler,
  type AllocationSummary,
  formatAllocations,
  inspectorUrl,
} from './alloc-profile.js';
import {
  type Cluster,
  type ClusterSecurity,
  type EtcdToken,
  findEtcd,
  killAllNow,
  logTail,
  procCpuMs,
  procKb,
  type System,
  startEtcd,
  startRaftkv,
  stopAll,
} from './cluster.js';
import { type LoadOptions, type LoadResult, runClosedLoop, runWatchFanout } from './load.js';
import { makeCerts, modeName, type SecurityMode } from './security.js';
import {
  type Api,
  apis,
  casWorkload,
  getWorkload,
  keyCount,
  mixWorkload,
  preloadWorkload,
  putWorkload,
} from './workloads.js';

interface Cell {
  id: string;
  workload: string;
  concurrency: number;
  /** Needs the 10k keys to exist. */
  reads: boolean;
  run(cluster: Cluster, api: Api, opts: LoadOptions): Promise<LoadResult>;
}

const closed =
  (make: (api: Api, tag: string) => Parameters<typeof runClosedLoop>[1]) =>
  (id: string) =>
  (cluster: Cluster, api: Api, opts: LoadOptions) =>
    runClosedLoop(cluster.endpoints, make(api, id), opts, cluster.client);

function cell(
  workload: string,
  concurrency: number,
  reads: boolean,
  runner: (id: string) => Cell['run'],
): Cell {
  const id = `${workload}-${concurrency}`;
  return { id, workload, concurrency, reads, run: runner(id) };
}

const put = closed((api) => putWorkload(api));
const lget = closed((api) => getWorkload(api, false));
const sget = closed((api) => getWorkload(api, true));
const cas = closed((api, tag) => casWorkload(api, tag));
const mix = closed((api) => mixWorkload(api));
const watch = (id: string) => (cluster: Cluster, api: Api, opts: LoadOptions) =>
  runWatchFanout(
    cluster.endpoints,
    api,
    `bench/w/${id}/`,
    {
      watchers: 100,
      seconds: opts.seconds,
      maxOps: opts.maxOps,
      putsPerSec: 100,
      requestTimeoutMs: opts.requestTimeoutMs,
    },
    cluster.client,
  );

const allCells: Cell[] = [
  ...[1, 16, 64, 256].map((c) => cell('put', c, false, put)),
  ...[1, 64, 256].map((c) => cell('lget', c, true, lget)),
  cell('sget', 64, true, sget),
  cell('cas', 64, false, cas),
  cell('mix', 64, true, mix),
  cell('watch', 100, false, watch),
];

interface Row {
  cell: string;
  workload: string;
  concurrency: number;
  system: System;
  /** 'plain', 'tls', 'auth' or 'tls+auth': how both systems were secured. */
  mode: string;
  opsPerSec: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  maxMs: number | null;
  ops: number;
  seconds: number;
  errors: Record<string, number>;
  peakRssMb: number | null;
  /** CPU used during the cell (warm-up included), in % of one core: all 3 members, the harness. */
  serverCpuPct: number | null;
  benchCpuPct: number | null;
  /**
   * raftkv only: its latency accounting on the leader during the measured window (warm-up
   * excluded), from /metrics scraped at the window's start and after the cell.
   */
  accounting?: Accounting & { leader: number; leaderChanged: boolean };
  /** raftkv with --alloc-prof: what each member allocated in the measured window. */
  allocation?: AllocationSummary[];
  note?: string;
}

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    seconds: { type: 'string' },
    'max-ops': { type: 'string' },
    'no-etcd': { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
    auth: { type: 'boolean', default: false },
    'etcd-auth-token': { type: 'string', default: 'simple' },
    'node-arg': { type: 'string', multiple: true },
    'cluster-warmup': { type: 'string' },
    'alloc-prof': { type: 'boolean', default: false },
  },
});
const security: SecurityMode = { tls: args.tls, auth: args.auth };
const mode = modeName(security);
const etcdToken = args['etcd-auth-token'] as EtcdToken;
if (etcdToken !== 'simple' && etcdToken !== 'jwt')
  throw new Error('--etcd-auth-token must be simple or jwt');
const seconds = Number(args.seconds ?? (args.quick ? 3 : 15));
const clusterWarmupSeconds = Number(args['cluster-warmup'] ?? (args.quick ? 1 : 5));
if (!(clusterWarmupSeconds >= 0)) throw new Error('--cluster-warmup must be 0 or more seconds');
const maxOps = Number(args['max-ops'] ?? 1_000_000);
if (!(seconds > 0) || !(maxOps > 0)) throw new Error('--seconds and --max-ops must be positive');
const only = args.only?.split(',').map((s) => s.trim());
const cells = only
  ? allCells.filter((c) => only.includes(c.id) || only.includes(c.workload))
  : allCells;
if (cells.length === 0)
  throw new Error(`--only matches no cell; cells: ${allCells.map((c) => c.id).join(', ')}`);
const loadOptions = (concurrency: number): LoadOptions => ({
  concurrency,
  seconds,
  warmupSeconds: args.quick ? 0.5 : 1,
  maxOps,
  requestTimeoutMs: 10_000,
});

const root = resolve(import.meta.dirname, '..');
const baseDir = mkdtempSync(join(tmpdir(), 'raftkv-bench-'));
const clusters: Cluster[] = [];
const dead = new Set<System>();
let keepBaseDir = args['cpu-prof'] || args['alloc-prof'];
const allocDir = join(baseDir, 'alloc-profiles');
/** Connected after raftkv starts, with --alloc-prof. */
let allocSampler: AllocationSampler | undefined;

/** Peak VmRSS (KiB) per system, per member, since the last reset; sampled every 200 ms. */
const peakKb = new Map<System, number[]>();
function sampleRss(): void {
  for (const c of clusters) {
    const peaks = peakKb.get(c.system) ?? c.pids.map(() => 0);
    c.pids.forEach((pid, i) => {
      peaks[i] = Math.max(peaks[i]!, procKb(pid, 'VmRSS'));
    });
    peakKb.set(c.system, peaks);
  }
}
const sampler = setInterval(sampleRss, 200);

let cleaningUp: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    clearInterval(sampler);
    await stopAll();
    if (keepBaseDir) console.error(`member logs and data kept in ${baseDir}`);
    else rmSync(baseDir, { recursive: true, force: true });
  })();
  return cleaningUp;
}
// A terminal's Ctrl-C reaches us twice (directly, and relayed by the tsx wrapper): a repeat
// within 2 s is the same one. A later one means "now": SIGKILL everything and go.
let interruptedAt = 0;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    const now = Date.now();
    if (interruptedAt && now - interruptedAt < 2_000) return;
    if (interruptedAt) {
      killAllNow();
      if (!keepBaseDir) rmSync(baseDir, { recursive: true, force: true });
      process.exit(130);
    }
    interruptedAt = now;
    console.error(`\n${signal}: stopping the clusters`);
    void cleanup().then(() => process.exit(130));
  });
}
process.on('exit', killAllNow);

function checkAlive(c: Cluster): boolean {
  const reason = c.deadReason();
  if (!reason || dead.has(c.system)) return !reason;
  dead.add(c.system);
  keepBaseDir = true;
  console.error(`${c.system}: ${reason}; skipping its remaining cells. Logs:`);
  for (const log of c.logs) console.error(`--- ${log}\n${logTail(log)}`);
  return false;
}

const fmt = (n: number | null, digits = 2) => (n === null ? 'n/a' : n.toFixed(digits));
const totalErrors = (r: Row) => Object.values(r.errors).reduce((a, b) => a + b, 0);

async function runCell(c: Cell, cluster: Cluster): Promise<Row> {
  const base = {
    cell: c.id,
    workload: c.workload,
    concurrency: c.concurrency,
    system: cluster.system,
    mode,
  };
  const empty = {
    serverCpuPct: null,
    benchCpuPct: null,
    opsPerSec: null,
    p50Ms: null,
    p99Ms: null,
    p999Ms: null,
    maxMs: null,
    ops: 0,
    seconds: 0,
  };
  if (!checkAlive(cluster))
    return { ...base, ...empty, errors: {}, peakRssMb: null, note: 'cluster died' };
  peakKb.delete(cluster.system);
  sampleRss();
  // raftkv's latency accounting: scraped at the window's start (closed-loop cells), else now.
  const scraper =
    cluster.system === 'raftkv'
      ? new MetricsScraper(cluster.endpoints, cluster.client.connect)
      : undefined;
  let scrapeBefore = scraper?.scrape();
  const sampler = cluster.system === 'raftkv' ? allocSampler : undefined;
  let samplingStarted: Promise<void> | undefined;
  const options: LoadOptions = { ...loadOptions(c.concurrency) };
  if (scraper)
    options.onWindowStart = () => {
      scrapeBefore = scraper.scrape();
      samplingStarted = sampler?.start();
    };
  const serverCpuMs = () => cluster.pids.reduce((sum, pid) => sum + procCpuMs(pid), 0);
  const cpu0 = { server: serverCpuMs(), bench: process.cpuUsage(), wall: performance.now() };
  let result: LoadResult;
  try {
    result = await c.run(cluster, apis[cluster.system], options);
  } catch (err) {
    await scraper?.close();
    // A failed cell still ends its sampling, or the next cell's start would be refused.
    await samplingStarted
      ?.then(() => sampler?.stop(join(allocDir, c.id), 0, 0))
      .catch(() => undefined);
    checkAlive(cluster);
    const note = err instanceof Error ? err.message : String(err);
    return { ...base, ...empty, errors: {}, peakRssMb: null, note };
  }
  sampleRss();
  const peakRssMb = Math.max(...(peakKb.get(cluster.system) ?? [0])) / 1024;
  const wallMs = performance.now() - cpu0.wall;
  const bench = process.cpuUsage(cpu0.bench);
  const row: Row = {
    ...base,
    ...result,
    peakRssMb,
    serverCpuPct: ((serverCpuMs() - cpu0.server) / wallMs) * 100,
    benchCpuPct: ((bench.user + bench.system) / 1000 / wallMs) * 100,
  };
  if (sampler && samplingStarted) {
    await samplingStarted;
    row.allocation = await sampler.stop(join(allocDir, c.id), result.ops, result.seconds);
  }
  if (scraper) {
    const [before, after] = [await scrapeBefore!, await scraper.scrape()];
    await scraper.close();
    const leader = after.leader >= 0 ? after.leader : before.leader;
    const [b, a] = [before.texts[leader], after.texts[leader]];
    if (leader >= 0 && b !== undefined && a !== undefined)
      row.accounting = {
        leader,
        leaderChanged: before.leader !== after.leader,
        ...accountingBetween(b, a),
      };
  }
  checkAlive(cluster);
  if (interruptedAt) return row;
  const errs = totalErrors(row);
  const line = [
    `  ${c.id.padEnd(10)} ${cluster.system.padEnd(6)} ${fmt(row.opsPerSec, 0).padStart(8)} ops/s`,
    `p50 ${fmt(row.p50Ms)} ms  p99 ${fmt(row.p99Ms)} ms`,
    `cpu ${fmt(row.serverCpuPct, 0)}%/${fmt(row.benchCpuPct, 0)}%`,
  ];
  if (errs) line.push(`errors ${JSON.stringify(row.errors)}`);
  console.error(line.join('  '));
  if (row.accounting) console.error(formatAccounting(row.accounting).join('\n'));
  if (row.allocation) console.error(formatAllocations(c.id, row.allocation).join('\n'));
  return row;
}

/** `clusterWarmupSeconds` of 90 % linearizable GET, 10 % PUT at 16 in flight; not measured. */
async function warmUp(cluster: Cluster): Promise<void> {
  const r = await runClosedLoop(
    cluster.endpoints,
    mixWorkload(apis[cluster.system]),
    {
      concurrency: 16,
      seconds: clusterWarmupSeconds,
      warmupSeconds: 0,
      maxOps: 1_000_000,
      requestTimeoutMs: 10_000,
    },
    cluster.client,
  );
  const errs = Object.keys(r.errors).length ? ` errors ${JSON.stringify(r.errors)}` : '';
  console.error(`  warm-up    ${cluster.system.padEnd(6)} ${r.ops} ops${errs}`);
}

async function preload(cluster: Cluster): Promise<void> {
  const t0 = Date.now();
  const r = await runClosedLoop(
    cluster.endpoints,
    preloadWorkload(apis[cluster.system]),
    {
      concurrency: 64,
      seconds: 300,
      warmupSeconds: 0,
      maxOps: keyCount,
      requestTimeoutMs: 10_000,
    },
    cluster.client,
  );
  const errs = Object.keys(r.errors).length ? ` errors ${JSON.stringify(r.errors)}` : '';
  console.error(
    `  preload    ${cluster.system.padEnd(6)} ${r.ops} keys in ${Date.now() - t0} ms${errs}`,
  );
}

function table(rows: Row[], withEtcd: boolean): string {
  const header = [
    'workload',
    'conc',
    'system',
    'ops/s',
    'p50 ms',
    'p99 ms',
    'p99.9 ms',
    'errors',
    'peak RSS MB',
    'CPU% srv/bench',
  ];
  if (withEtcd) header.push('ops/s ratio', 'p99 ratio');
  const lines = [header];
  const notes: string[] = [];
  for (const r of rows) {
    const errs = totalErrors(r);
    const line = [
      r.workload,
      String(r.concurrency),
      r.system,
      fmt(r.opsPerSec, 0),
      fmt(r.p50Ms),
      fmt(r.p99Ms),
      fmt(r.p999Ms),
      String(errs),
      fmt(r.peakRssMb, 0),
      `${fmt(r.serverCpuPct, 0)}/${fmt(r.benchCpuPct, 0)}`,
    ];
    if (errs) notes.push(`${r.cell} ${r.system} errors: ${JSON.stringify(r.errors)}`);
    if (r.note) notes.push(`${r.cell} ${r.system}: ${r.note}`);
    if (withEtcd) {
      const other = rows.find((o) => o.cell === r.cell && o.system === 'etcd');
      const ratio = (a: number | null | undefined, b: number | null | undefined) =>
        r.system === 'raftkv' && a && b ? `x${(a / b).toFixed(2)}` : '';
      line.push(ratio(r.opsPerSec, other?.opsPerSec), ratio(r.p99Ms, other?.p99Ms));
    }
    lines.push(line);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const text = lines.map((l) =>
    l
      .map((v, i) => (i < 3 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
  text.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return [...text, ...notes.map((n) => `  ${n}`)].join('\n');
}

/** What the secure mode means, in a line for the report. */
function describeMode(): string {
  const parts: string[] = [];
  if (security.tls) parts.push('client HTTPS (no client certificates), peer mutual TLS');
  if (security.auth)
    parts.push(
      `auth on, token on every request (raftkv: its signed token; etcd: ${etcdToken} token)`,
    );
  return parts.length ? parts.join('; ') : 'plain HTTP, auth off';
}

async function main(): Promise<void> {
  const etcdBin = args['no-etcd'] ? undefined : findEtcd();
  if (args['no-etcd']) console.error('etcd: skipped (--no-etcd)');
  else if (!etcdBin)
    console.error(
      'etcd: no `etcd` binary on PATH; running raftkv alone (Debian: apt-get install etcd-server)',
    );
  console.error(`cells: ${cells.map((c) => c.id).join(', ')}; ${seconds} s each`);

  const profileDir = join(baseDir, 'profiles');
  const nodeArgs = args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  nodeArgs.push(...(args['node-arg'] ?? []));
  // Loopback only, a port of the kernel's choosing, named in each member's log.
  if (args['alloc-prof']) nodeArgs.push('--inspect=127.0.0.1:0');
  const clusterSecurity: ClusterSecurity = { auth: security.auth };
  if (security.tls) clusterSecurity.tls = await makeCerts(join(baseDir, 'certs'));
  if (mode !== 'plain') console.error(`security: ${describeMode()}`);
  clusters.push(await startRaftkv(baseDir, nodeArgs, clusterSecurity));
  if (args['alloc-prof']) {
    mkdirSync(allocDir, { recursive: true });
    const urls = await Promise.all(clusters[0]!.logs.map((log) => inspectorUrl(log)));
    allocSampler = await AllocationSampler.connect(urls);
  }
  if (etcdBin) clusters.push(await startEtcd(etcdBin, baseDir, clusterSecurity, etcdToken));
  for (const c of clusters)
    console.error(`${c.system} ${c.version}: ${c.endpoints.join(' ')} (pids ${c.pids.join(' ')})`);

  // Other work on the machine skews every number: say how busy it was.
  const load1 = () => loadavg()[0]!.toFixed(1);
  const loadAtStart = load1();
  const rows: Row[] = [];
  const preloaded = new Set<System>();
  // A fresh process is slow until the JIT has compiled its hot paths (a fresh raftkv
  // cluster's put p50 fell from 3.7 to 1.9 ms over its first 5-8 s), and a first cell
  // measured cold would report the start-up, not the system. Every system gets the same:
  // the keys written, then mixed reads and writes.
  for (const cluster of clusters) {
    if (clusterWarmupSeconds === 0 || !checkAlive(cluster)) continue;
    preloaded.add(cluster.system);
    await preload(cluster);
    await warmUp(cluster);
  }
  for (const [i, c] of cells.entries()) {
    // Alternate who goes first, so slow drift of the machine hits both systems alike.
    const order = i % 2 === 0 ? clusters : [...clusters].reverse();
    for (const cluster of order) {
      // Interrupted: the signal handler stops the clusters and exits; start nothing new.
      if (interruptedAt) await new Promise(() => {});
      if (c.reads && !preloaded.has(cluster.system) && checkAlive(cluster)) {
        preloaded.add(cluster.system);
        await preload(cluster);
      }
      rows.push(await runCell(c, cluster));
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  sampleRss();
  allocSampler?.close();
  const hwm = clusters.map((c) => ({
    system: c.system,
    vmHwmMb: c.pids.map((pid) => Math.round(procKb(pid, 'VmHWM') / 1024)),
  }));
  await cleanup();

  const rank = (r: Row) =>
    cells.findIndex((c) => c.id === r.cell) * 2 + (r.system === 'raftkv' ? 0 : 1);
  rows.sort((a, b) => rank(a) - rank(b));
  const date = new Date().toISOString();
  const cpu = `${cpus().length} x ${cpus()[0]?.model ?? '?'}`;
  const os = `Linux ${release()} ${arch()}`;
  const machine = `${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${os}, Node ${process.version}`;
  console.log(`\nraftkv bench ${date} — ${machine}`);
  console.log(
    clusters.map((c) => `${c.system} ${c.version}`).join(', ') +
      (etcdBin ? '' : ' (no etcd binary: raftkv alone)'),
  );
  const loadAverage = { start: Number(loadAtStart), end: Number(load1()) };
  console.log(
    `${seconds} s per cell; 1-min load average ${loadAtStart} at start, ${load1()} at end`,
  );
  if (mode !== 'plain') console.log(`security: ${mode} — ${describeMode()}`);
  if (etcdBin)
    console.log('ratios are raftkv/etcd (ops/s: higher is better; p99: lower is better)');
  console.log(`\n${table(rows, etcdBin !== undefined)}`);
  const accounted = rows.filter((r) => r.accounting);
  if (accounted.length > 0) {
    console.log(
      "\nraftkv's latency accounting on the leader, per cell (measured window; per write, ms;" +
        ' stages from request received: http_in, proposal_queue, replication, commit, apply,' +
        ' http_out add up to the total; append_sync runs beside replication):',
    );
    for (const r of accounted) {
      const a = r.accounting!;
      const changed = a.leaderChanged ? ', the leader changed during the cell' : '';
      console.log(`  ${r.cell} (leader n${a.leader + 1}${changed})`);
      console.log(formatAccounting(a).join('\n'));
    }
  }
  console.log(
    `\npeak RSS per member over the whole run (VmHWM): ${hwm
      .map((h) => `${h.system} ${h.vmHwmMb.join('/')} MB`)
      .join('; ')}`,
  );

  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${date.replace(/[:.]/g, '-')}.json`);
  const systems = clusters.map((c) => ({ system: c.system, version: c.version }));
  const options = {
    quick: args.quick,
    seconds,
    maxOps,
    cells: cells.map((c) => c.id),
    mode,
    security: {
      ...security,
      ...(security.auth && etcdBin ? { etcdAuthToken: etcdToken } : {}),
      description: describeMode(),
    },
    tokenRenewals: Object.fromEntries(
      clusters.map((c) => [c.system, c.client.credentials?.renewals ?? 0]),
    ),
  };
  const report = { date, machine, loadAverage, systems, options, rows, vmHwmMb: hwm };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`results: ${relative(process.cwd(), file)}`);
  if (args['cpu-prof']) console.log(`raftkv CPU profiles: ${profileDir}`);
  if (args['alloc-prof']) console.log(`raftkv allocation profiles: ${allocDir}`);
}

main().then(
  () => process.exit(dead.size ? 1 : 0),
  async (err) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    keepBaseDir = true;
    await cleanup();
    process.exit(1);
  },
);
