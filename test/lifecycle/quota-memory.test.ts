/**
 * A real raftkv process with a small --memory-limit: it sizes its own heap
 * (re-executing itself once with --max-old-space-size), derives its space
 * quota from that heap, and when filled the nospace alarm comes before memory
 * runs out: writes get 507 quota_exceeded while the process stays alive and
 * answers, with its heap under its limit. SIGTERM reaches the re-executed
 * child through the parent, which exits with its code; SIGKILL of the parent
 * takes the child down too (the data dir's lock is free for the next start).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../integration/helpers.js';
import { waitUntil } from '../integration/http-ops.js';
import { cleanEnv, RaftkvProcess, singleNodeArgs } from '../integration/process-cluster.js';

const MEMORY_LIMIT = '160MiB';
const VALUE = 'q'.repeat(32 * 1024);

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function start(dir: string): Promise<{ proc: RaftkvProcess; url: string }> {
  const clientPort = await freePort();
  const args = singleNodeArgs('q1', join(dir, 'q1'), clientPort, await freePort());
  const proc = new RaftkvProcess(
    [...args, '--log-level', 'info', '--memory-limit', MEMORY_LIMIT, '--snapshot-count', '200'],
    { env: cleanEnv() },
  );
  const url = `http://127.0.0.1:${clientPort}`;
  await waitUntil(
    'the node leads',
    async () =>
      (await json(`${url}/v1/status`).catch(() => undefined))?.body?.role === 'leader' || undefined,
    60_000,
    100,
  );
  return { proc, url };
}

t.test('the alarm comes before the heap runs out, and the process keeps answering', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-quota-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { proc, url } = await start(dir);
  t.teardown(() => proc.kill('SIGKILL'));
  t.match(proc.stdout, /"event":"heap_sized"/, 'the node sized its heap from --memory-limit');

  const status = (await json(`${url}/v1/status`)).body;
  // 75 % of 160 MiB as heap; the quota 30 % of that.
  t.ok(
    status.heapLimitBytes > 100 * 2 ** 20 && status.heapLimitBytes < 130 * 2 ** 20,
    `heap limit ${status.heapLimitBytes}`,
  );
  t.equal(status.quotaBytes, Math.floor(status.heapLimitBytes * 0.3), 'quota: 30 % of the heap');

  // Fill with distinct keys (nothing to compact) until the 507s, 8 requests in flight.
  let acked = 0;
  let refused = 0;
  let next = 0;
  const worker = async () => {
    while (refused < 20 && next < 5000) {
      const i = next++;
      const r = await json(`${url}/v1/kv/fill-${i}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value: VALUE }),
      });
      if (r.status === 200) acked++;
      else if (r.status === 507 && r.body.error.code === 'quota_exceeded') refused++;
      else throw new Error(`put ${i}: ${r.status} ${JSON.stringify(r.body)}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  t.ok(refused >= 20, `${refused} writes refused with 507 quota_exceeded`);
  t.ok(acked > 300, `${acked} writes of 32 KiB acknowledged before the alarm`);
  t.ok(proc.running, 'the process is alive');

  const after = (await json(`${url}/v1/status`)).body;
  t.same(after.alarms, [{ memberId: after.id, alarm: 'nospace' }], 'the nospace alarm is active');
  t.ok(after.stateSizeBytes > after.quotaBytes, 'the state is over the quota');
  t.ok(
    after.heapUsedBytes < after.heapLimitBytes,
    `heap ${after.heapUsedBytes} under its limit ${after.heapLimitBytes}`,
  );
  const read = await json(`${url}/v1/kv/fill-0`);
  t.equal(read.status, 200, 'reads are served');
  t.equal(read.body.kv.value.length, VALUE.length);
  t.match(proc.stdout, /"event":"alarm_raised"/, 'alarm_raised in the log');

  // SIGTERM goes to the parent, which passes it on and exits with the child's code.
  const exit = await proc.kill('SIGTERM', 30_000);
  t.equal(exit.code, 0, `stopped on SIGTERM: ${proc.stderr.slice(-500)}`);
});

t.test(
  'SIGKILL of the parent ends the re-executed child: the data dir can be reopened',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-quota-kill-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const first = await start(dir);
    t.teardown(() => first.proc.kill('SIGKILL'));
    await json(`${first.url}/v1/kv/k`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'kept' }),
    });
    await first.proc.kill('SIGKILL');
    // The same data dir at once: the child must be gone, or LevelDB's lock refuses the open.
    const second = await waitUntil(
      'a restart on the same data dir',
      async () => start(dir).catch(() => undefined),
      30_000,
      200,
    );
    t.teardown(() => second.proc.kill('SIGKILL'));
    t.equal((await json(`${second.url}/v1/kv/k`)).body.kv.value, 'kept');
  },
);
