/**
 * Memory of one raftkv node: starts a single-member node (a real process, fresh data dir in a
 * temp dir), writes N distinct keys of 256-byte values with a bounded number of requests in
 * flight, samples RSS (/proc/<pid>/status VmRSS, VmHWM) and V8 heap, then overwrites the same
 * keys for a bounded time, sampling every 5 s, and tells whether RSS grew at steady key count.
 *
 *   tsx bench/memory.ts [--keys 100000] [--seconds 60] [--inflight 64] [--gc] [--compact]
 *                       [--tsx] [--heap-snapshot] [--idempotency] [--node-arg=--x ...]
 *
 * The node runs the compiled build (tsc -p tsconfig.build.json → dist/), as `npm run bench` runs
 * its members and as production does: tsx's loader alone costs about 34 MB of RSS.
 * --tsx: run cmd/raftkv.ts from source instead (no build; figures include tsx's cost).
 * --heap-snapshot: write a V8 heap snapshot of the node right after the load (SIGUSR2 with
 * --heapsnapshot-signal) into a directory that is kept and printed; open it in Chrome DevTools.
 *
 * --idempotency: every write carries a fresh Idempotency-Key, as the client library's writes
 * do, so the node's dedup table (up to 100k results for 10 minutes) is part of the figures.
 *
 * --compact: POST /v1/compact to the current revision before each steady sample, as an operator
 * (or auto-compaction) would; without it the MVCC history of every overwrite stays in memory.
 *
 * Heap figures come from a tiny preload (a data: URL module passed with --import) that writes
 * process.memoryUsage() to a file every 500 ms: no server code involved, no heap snapshot.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Pool, request } from 'undici';

const root = resolve(import.meta.dirname, '..');

function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} needs a positive integer`);
  return n;
}

const keys = argValue('--keys', 100_000);
const seconds = argValue('--seconds', 60);
const inflight = argValue('--inflight', 64);
const sampleEveryMs = 5_000;
const valueBytes = 256;
/** Extra node flags, e.g. --node-arg=--max-semi-space-size=8 (to try V8 settings). */
const nodeArgs = process.argv.filter((a) => a.startsWith('--node-arg=')).map((a) => a.slice(11));

const dir = mkdtempSync(join(tmpdir(), 'raftkv-mem-'));
const heapSnapshotDir = process.argv.includes('--heap-snapshot')
  ? mkdtempSync(join(tmpdir(), 'raftkv-mem-heap-'))
  : undefined;
if (heapSnapshotDir !== undefined)
  nodeArgs.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapSnapshotDir}`);
const heapFile = join(dir, 'heap.json');
let child: ChildProcess | undefined;

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? ok(address.port) : fail(new Error('no port')),
      );
    });
  });
}

/** Stops the node we started (by pid): SIGTERM, SIGKILL after 10 s. Idempotent. */
async function stop(): Promise<void> {
  const c = child;
  child = undefined;
  if (c?.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((ok) => c.once('exit', () => ok()));
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function cleanup(): void {
  rmSync(dir, { recursive: true, force: true });
}

process.on('SIGINT', () => {
  void stop().finally(() => {
    cleanup();
    process.exit(130);
  });
});

/**
 * CPU seconds (user + system) the process used so far, from /proc/<pid>/stat: a cost per write
 * that other load on a shared machine disturbs far less than writes per second. 0 once gone.
 */
function procCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/** A field of /proc/<pid>/status in MB, or 0 once the process is gone. */
function procMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

interface HeapSample {
  /** V8's young generation (two semi-spaces), reserved: part of heapTotal. */
  newSpace: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

function heapMb(): HeapSample {
  try {
    const h = JSON.parse(readFileSync(heapFile, 'utf8')) as HeapSample;
    const mb = (n: number) => n / 1024 / 1024;
    return {
      newSpace: mb(h.newSpace),
      heapUsed: mb(h.heapUsed),
      heapTotal: mb(h.heapTotal),
      external: mb(h.external),
      arrayBuffers: mb(h.arrayBuffers),
    };
  } catch {
    return {
      newSpace: 0,
      heapUsed: Number.NaN,
      heapTotal: Number.NaN,
      external: 0,
      arrayBuffers: 0,
    };
  }
}

interface Row {
  phase: string;
  keys: number;
  writes: number;
  rss: number;
  hwm: number;
  heap: HeapSample;
}

const rows: Row[] = [];
function sample(pid: number, phase: string, writes: number): Row {
  const row = {
    phase,
    keys: Math.min(keys, writes),
    writes,
    rss: procMb(pid, 'VmRSS'),
    hwm: procMb(pid, 'VmHWM'),
    heap: heapMb(),
  };
  rows.push(row);
  const f = (n: number) => n.toFixed(1).padStart(7);
  console.log(
    `${phase.padEnd(12)} keys ${String(row.keys).padStart(7)} writes ${String(writes).padStart(8)}` +
      `  rss ${f(row.rss)} MB  hwm ${f(row.hwm)} MB  heapUsed ${f(row.heap.heapUsed)} MB` +
      `  heapTotal ${f(row.heap.heapTotal)} MB  new ${f(row.heap.newSpace)} MB` +
      `  external ${f(row.heap.external)} MB  arrayBuffers ${f(row.heap.arrayBuffers)} MB`,
  );
  return row;
}

/** The node's entry and the node flags it needs: the compiled build unless --tsx. */
function serverEntry(): string[] {
  if (process.argv.includes('--tsx')) return ['--import', 'tsx', join(root, 'cmd', 'raftkv.ts')];
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  // --preserveSymlinks: in a git worktree whose node_modules is a symlink, declaration emit
  // would otherwise name types by their path through the link and fail (TS2742); no effect else.
  const args = [tsc, '-p', join(root, 'tsconfig.build.json'), '--preserveSymlinks'];
  execFileSync(process.execPath, args, {
    cwd: root,
    stdio: 'inherit',
    timeout: 180_000,
  });
  return [join(root, 'dist', 'cmd', 'raftkv.js')];
}

/** --gc: full GC before each heap sample (with --expose-gc), so heapUsed is live data, not garbage. */
const forceGc = process.argv.includes('--gc');
const compactEachSample = process.argv.includes('--compact');
const idempotency = process.argv.includes('--idempotency');
const preload = `data:text/javascript,${encodeURIComponent(
  `import { writeFileSync } from 'node:fs';
   import { getHeapSpaceStatistics } from 'node:v8';
   const f = process.env.RAFTKV_BENCH_HEAP_FILE;
   const gc = globalThis.gc;
   const t = setInterval(() => {
     if (gc) gc();
     const spaces = Object.fromEntries(
       getHeapSpaceStatistics().map((x) => [x.space_name, x.space_size]));
     try { writeFileSync(f, JSON.stringify({ ...process.memoryUsage(), newSpace: spaces.new_space ?? 0 })); } catch {}
   }, gc ? 2500 : 500);
   t.unref();`,
)}`;

/** Asks the node for a heap snapshot and waits (bounded) until its file stops growing. */
async function heapSnapshot(pid: number, into: string): Promise<void> {
  process.kill(pid, 'SIGUSR2');
  let lastSize = -1;
  for (let i = 0; i < 120; i++) {
    await new Promise((r) => setTimeout(r, 1_000));
    const file = readdirSync(into).find((f) => f.endsWith('.heapsnapshot'));
    if (file === undefined) continue;
    const size = statSync(join(into, file)).size;
    if (size > 0 && size === lastSize) {
      console.log(`heap snapshot: ${join(into, file)} (${(size / 1024 / 1024).toFixed(0)} MB)`);
      return;
    }
    lastSize = size;
  }
  console.log(`heap snapshot: not finished after 120 s (see ${into})`);
}

async function main(): Promise<void> {
  const entry = serverEntry();
  const clientPort = await freePort();
  const peerPort = await freePort();
  const logPath = join(dir, 'node.log');
  const fd = openSync(logPath, 'a');
  child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      ...(forceGc ? ['--expose-gc'] : []),
      '--import',
      preload,
      ...entry,
      '--name',
      'm1',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client',
      `127.0.0.1:${clientPort}`,
      '--listen-peer',
      `127.0.0.1:${peerPort}`,
      '--log-level',
      'warn',
    ],
    {
      cwd: root,
      stdio: ['ignore', fd, fd],
      detached: true,
      env: { ...process.env, RAFTKV_BENCH_HEAP_FILE: heapFile },
    },
  );
  const pid = child.pid!;
  const base = `http://127.0.0.1:${clientPort}`;

  // Wait (bounded) for the node to lead itself.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`node exited; log:\n${readFileSync(logPath, 'utf8')}`);
    if (Date.now() > deadline) throw new Error('node did not become leader within 30 s');
    const ok = await request(`${base}/v1/status`, { headersTimeout: 1_000 })
      .then(async (r) =>
        r.statusCode === 200 ? ((await r.body.json()) as { role: string }) : null,
      )
      .catch(() => null);
    if (ok?.role === 'leader') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 1_000));
  sample(pid, 'idle', 0);

  const pool = new Pool(base, { connections: inflight, pipelining: 1 });
  let failures = 0;
  const put = async (i: number, round: number): Promise<void> => {
    const key = `bench/mem/${String(i).padStart(8, '0')}`;
    // 256 bytes, differing per round so every overwrite is a real change.
    const value = `${round}:${i}:`.padEnd(valueBytes, 'x');
    for (let attempt = 0; attempt < 5; attempt++) {
      const res = await pool
        .request({
          method: 'PUT',
          path: `/v1/kv/${encodeURIComponent(key)}`,
          headers: {
            'content-type': 'application/json',
            // One key per write (retries of it reuse it), unique across rounds.
            ...(idempotency ? { 'idempotency-key': `bench-${round}-${i}` } : {}),
          },
          body: JSON.stringify({ value }),
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        })
        .catch(() => null);
      if (res === null) continue;
      await res.body.dump();
      if (res.statusCode === 200) return;
      if (res.statusCode !== 429 && res.statusCode < 500) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    failures++;
  };

  /** Runs writes with `inflight` workers until `more()` says stop. */
  let writes = 0;
  const run = async (next: () => [number, number] | null) => {
    const worker = async () => {
      for (let job = next(); job !== null; job = next()) {
        await put(job[0], job[1]);
        writes++;
      }
    };
    await Promise.all(Array.from({ length: inflight }, worker));
  };

  // Phase 1: create the keys.
  let created = 0;
  const t0 = Date.now();
  const cpuIdle = procCpuSeconds(pid);
  const loadSampler = setInterval(() => sample(pid, 'load', writes), sampleEveryMs);
  await run(() => (created < keys ? [created++, 0] : null));
  clearInterval(loadSampler);
  const loadSecs = (Date.now() - t0) / 1000;
  console.log(`loaded ${keys} keys in ${loadSecs.toFixed(1)} s (${failures} failures)`);
  await new Promise((r) => setTimeout(r, 2_000));
  const loaded = sample(pid, 'loaded', writes);
  const cpuLoaded = procCpuSeconds(pid);
  if (heapSnapshotDir !== undefined) await heapSnapshot(pid, heapSnapshotDir);

  // Phase 2: overwrite the same keys for a bounded time.
  const end = Date.now() + seconds * 1000;
  let cursor = 0;
  const steady: Row[] = [];
  const compact = async () => {
    const status = await request(`${base}/v1/status`, { headersTimeout: 5_000 });
    const { revision } = (await status.body.json()) as { revision: number };
    const res = await request(`${base}/v1/compact`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ revision }),
      headersTimeout: 10_000,
    });
    await res.body.dump();
  };
  const steadySampler = setInterval(() => {
    const compacted = compactEachSample ? compact().catch(() => undefined) : Promise.resolve();
    // Sample once the compaction applied, so the figure shows what compaction bounds.
    void compacted.then(() => steady.push(sample(pid, 'steady', writes)));
  }, sampleEveryMs);
  await run(() => {
    if (Date.now() >= end) return null;
    const i = cursor++;
    return [i % keys, 1 + Math.floor(i / keys)];
  });
  clearInterval(steadySampler);
  const steadyWrites = writes - keys;
  const cpuSteady = procCpuSeconds(pid);
  await new Promise((r) => setTimeout(r, 2_000));
  const last = sample(pid, 'end', writes);
  await pool.close();

  // Growth: compare the last third of steady samples with the first third (ignores one spike).
  const third = Math.max(1, Math.floor(steady.length / 3));
  const avg = (rs: Row[], f: (r: Row) => number) => rs.reduce((s, r) => s + f(r), 0) / rs.length;
  const firstRss = steady.length > 0 ? avg(steady.slice(0, third), (r) => r.rss) : loaded.rss;
  const lastRss = steady.length > 0 ? avg(steady.slice(-third), (r) => r.rss) : last.rss;
  const firstHeap = steady.length > 0 ? avg(steady.slice(0, third), (r) => r.heap.heapUsed) : 0;
  const lastHeap = steady.length > 0 ? avg(steady.slice(-third), (r) => r.heap.heapUsed) : 0;

  console.log('\nphase         keys   RSS MB  peak MB  heapUsed MB');
  for (const r of [rows[0]!, loaded, last]) {
    console.log(
      `${r.phase.padEnd(10)} ${String(r.keys).padStart(7)} ${r.rss.toFixed(0).padStart(8)} ${r.hwm
        .toFixed(0)
        .padStart(8)} ${r.heap.heapUsed.toFixed(0).padStart(12)}`,
    );
  }
  console.log(
    `steady: ${steadyWrites} overwrites in ${seconds} s (${(steadyWrites / seconds).toFixed(0)}/s), ` +
      `RSS ${firstRss.toFixed(0)} → ${lastRss.toFixed(0)} MB (${lastRss - firstRss >= 0 ? '+' : ''}${(
        lastRss - firstRss
      ).toFixed(0)}), heapUsed ${firstHeap.toFixed(0)} → ${lastHeap.toFixed(0)} MB; ` +
      `RSS grew: ${lastRss - firstRss > 10 ? 'YES' : 'no'} (threshold 10 MB); failures ${failures}`,
  );
  const perWrite = (cpuSeconds: number, n: number) => ((cpuSeconds * 1e6) / n).toFixed(0);
  console.log(
    `node CPU: load ${(cpuLoaded - cpuIdle).toFixed(1)} s (${perWrite(cpuLoaded - cpuIdle, keys)} µs/write), ` +
      `steady ${(cpuSteady - cpuLoaded).toFixed(1)} s (${perWrite(cpuSteady - cpuLoaded, steadyWrites)} µs/write)`,
  );
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await stop();
  cleanup();
}
