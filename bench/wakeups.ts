/**
 * npm run bench:wakeups -- [--puts N] [--to leader|follower]
 *
 * What one put costs each member in system calls: starts a 3-node raftkv
 * cluster from the compiled build (as `npm run bench` does), warms it up with
 * sequential puts, then attaches `strace -c` to every member for N sequential
 * puts (1,000 by default) sent to the leader or to a follower, and prints the
 * calls per put: `epoll_pwait` (turns of the event loop: a blocking one is a
 * wake-up), `read`/`write`/`writev` (peer frames, client HTTP, the thread
 * pool's eventfd), `fdatasync` (LevelDB's synced log write), `futex` (hand-offs
 * to the thread pool). strace slows the members, so only the counts mean
 * anything, not the time. Needs strace (Debian: apt-get install strace) and
 * ptrace rights (root, or kernel.yama.ptrace_scope 0).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { startRaftkv, stopAll } from './cluster.js';

const { values: args } = parseArgs({
  options: { puts: { type: 'string', default: '1000' }, to: { type: 'string', default: 'leader' } },
});
const puts = Number(args.puts);
if (!Number.isSafeInteger(puts) || puts < 1 || puts > 100_000)
  throw new Error('--puts must be 1 to 100000');
if (args.to !== 'leader' && args.to !== 'follower')
  throw new Error('--to must be leader or follower');
try {
  execFileSync('strace', ['-V'], { stdio: 'ignore' });
} catch {
  console.error('bench:wakeups needs strace (Debian: apt-get install strace)');
  process.exit(2);
}

const SYSCALLS = ['epoll_pwait', 'epoll_wait', 'read', 'write', 'writev', 'fdatasync', 'futex'];
const baseDir = mkdtempSync(join(tmpdir(), 'raftkv-wakeups-'));
const tracers: ChildProcess[] = [];

try {
  const cluster = await startRaftkv(baseDir);
  let leader = -1;
  for (let i = 0; i < cluster.endpoints.length && leader < 0; i++) {
    const res = await request(`${cluster.endpoints[i]}/v1/status`);
    if (((await res.body.json()) as { role?: string }).role === 'leader') leader = i;
  }
  if (leader < 0) throw new Error('no member says it leads');
  const target = args.to === 'leader' ? leader : (leader + 1) % cluster.endpoints.length;
  const value = JSON.stringify({ value: 'x'.repeat(256) });
  const put = async (i: number) => {
    const res = await request(`${cluster.endpoints[target]}/v1/kv/bench/w${i % 1000}`, {
      method: 'PUT',
      body: value,
      headers: { 'content-type': 'application/json' },
    });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`put answered ${res.statusCode}`);
  };
  // A fresh process runs interpreted until the JIT has compiled its hot paths.
  for (let i = 0; i < 3000; i++) await put(i);

  const outputs = cluster.pids.map((pid) => {
    const tracer = spawn(
      'strace',
      ['-f', '-c', '-e', `trace=${SYSCALLS.join(',')}`, '-p', String(pid)],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    tracers.push(tracer);
    let text = '';
    tracer.stderr!.on('data', (d) => {
      text += d;
    });
    return { tracer, text: () => text };
  });
  await new Promise((r) => setTimeout(r, 1000)); // strace attaches to every thread
  const startMs = performance.now();
  for (let i = 0; i < puts; i++) await put(i);
  const ms = performance.now() - startMs;
  for (const o of outputs) o.tracer.kill('SIGINT');
  // strace prints its table as it exits; one that has not within 5 s is killed in `finally`.
  await Promise.all(
    outputs.map(
      (o) =>
        new Promise((r) => {
          if (o.tracer.exitCode !== null) return r(0);
          const timer = setTimeout(r, 5000);
          o.tracer.once('exit', () => {
            clearTimeout(timer);
            r(0);
          });
        }),
    ),
  );

  console.log(
    `${puts} sequential puts to ${args.to === 'leader' ? 'the leader' : 'a follower'} n${target + 1} ` +
      `(leader n${leader + 1}), ${(ms / puts).toFixed(2)} ms each under strace; system calls per put:`,
  );
  outputs.forEach((o, i) => {
    const counts = new Map<string, number>();
    for (const line of o.text().split('\n')) {
      const cols = line.trim().split(/\s+/);
      const name = cols[cols.length - 1]!;
      // strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
      if (SYSCALLS.includes(name) && /^[0-9.]+$/.test(cols[0]!)) counts.set(name, Number(cols[3]));
    }
    const row = SYSCALLS.filter((s) => counts.has(s))
      .map((s) => `${s} ${(counts.get(s)! / puts).toFixed(2)}`)
      .join(', ');
    console.log(`  n${i + 1}${i === leader ? ' (leader)' : ''}: ${row || 'nothing traced'}`);
  });
} finally {
  for (const t of tracers) if (t.exitCode === null) t.kill('SIGKILL');
  await stopAll();
  rmSync(baseDir, { recursive: true, force: true });
}
