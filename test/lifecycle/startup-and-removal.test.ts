/**
 * The raftkv command as an operator meets it: a bad flag, a bad environment
 * value or a busy port is one line on stderr and exit 1, with no data dir
 * left behind; a member removed from the cluster exits with code 4 (and its
 * data dir refuses to start again, also with 4).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { EXIT_REMOVED } from '../../src/server/exit-codes.js';
import { freePort, request } from '../integration/helpers.js';
import { waitUntil } from '../integration/http-ops.js';
import { cleanEnv, ProcessCluster, RaftkvProcess } from '../integration/process-cluster.js';

function oneLine(t: Test, stderr: string, pattern: RegExp, what: string): void {
  const lines = stderr.trim().split('\n');
  t.equal(lines.length, 1, `${what}: one line on stderr, got:\n${stderr}`);
  t.match(lines[0], pattern, what);
  t.notMatch(stderr, /^\s+at /m, `${what}: no stack trace`);
}

t.test('startup errors are one clear line, exit 1, and touch no data dir', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-startup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const peer = `127.0.0.1:${await freePort()}`;
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())));
  const busyPort = (busy.address() as { port: number }).port;

  const cases: { what: string; args: string[]; env?: Record<string, string>; pattern: RegExp }[] = [
    {
      what: 'a bad --listen-client',
      args: ['--listen-client', '127.0.0.1:abc', '--listen-peer', peer],
      pattern: /^raftkv: --listen-client: "127.0.0.1:abc" is not host:port$/,
    },
    {
      what: 'a bad environment value',
      args: ['--listen-peer', peer],
      env: { RAFTKV_LISTEN_CLIENT: 'nowhere' },
      pattern: /^raftkv: --listen-client: "nowhere" is not host:port$/,
    },
    {
      what: 'a busy port',
      args: ['--listen-client', `127.0.0.1:${busyPort}`, '--listen-peer', peer],
      pattern: new RegExp(`^raftkv: --listen-client 127.0.0.1:${busyPort}: the address is in use`),
    },
    {
      what: "a founder's own entry that is not where it listens",
      args: [
        '--name',
        'n1',
        '--listen-client',
        `127.0.0.1:${await freePort()}`,
        '--listen-peer',
        peer,
        '--initial-cluster',
        'n1=http://127.0.0.1:1,n2=http://127.0.0.1:2',
      ],
      pattern:
        /^raftkv: --initial-cluster names n1=http:\/\/127.0.0.1:1, but this member listens on/,
    },
  ];
  for (const c of cases) {
    const proc = new RaftkvProcess(['--data-dir', dataDir, ...c.args], {
      env: { ...cleanEnv({ coverage: false }), ...c.env },
    });
    const exit = await proc.waitExit(30_000);
    t.equal(exit.code, 1, `${c.what}: exit 1`);
    oneLine(t, proc.stderr, c.pattern, c.what);
    t.notOk(existsSync(dataDir), `${c.what}: no data dir`);
  }
});

t.test('a removed member exits with code 4, and its data dir will not start again', async (t) => {
  const c = await ProcessCluster.create(3);
  t.teardown(() => c.close());
  await c.startAll();
  const leader = await c.waitForLeader();
  const victim = (leader + 1) % 3;
  const status = await request(c.url(victim), 'GET', '/v1/status');
  const id = status.body.id as string;
  const removed = await waitUntil(
    'the removal to be accepted',
    async () => {
      const r = await request(c.url(leader), 'DELETE', `/v1/cluster/members/${id}`);
      return r.status === 503 ? undefined : r;
    },
    10_000,
    50,
  );
  t.equal(removed.status, 200, JSON.stringify(removed.body));
  const exit = await c.procs[victim]!.waitExit(20_000);
  t.equal(exit.code, EXIT_REMOVED, 'exit code 4');
  t.match(c.procs[victim]!.stdout, /was removed from the cluster/, 'the log says why');

  const again = new RaftkvProcess(c.args(victim), { env: cleanEnv({ coverage: false }) });
  const second = await again.waitExit(30_000);
  t.equal(second.code, EXIT_REMOVED, 'restarting it exits 4 as well');
  t.match(again.stderr, /was removed from the cluster.*--join/);
});
