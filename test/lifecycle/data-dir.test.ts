/**
 * `raftkv` (cmd/raftkv.ts as a child process) on data dirs it must refuse:
 * garbage, another program's LevelDB, a damaged raftkv dir, a dir of another
 * member, a dir another process holds. Each must exit non-zero with a message
 * on stderr that says what is wrong and what to do. And with no flags at all,
 * raftkv runs a one-node cluster on 127.0.0.1:7379 with ./raftkv-data, and
 * stops cleanly (exit 0) on SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import t, { type Test } from 'tap';
import { startNode } from '../../src/index.js';
import { freePort } from '../integration/helpers.js';
import { getKey, kvValue, putKey, status, waitUntil } from '../integration/http-ops.js';
import { cleanEnv, RaftkvProcess, singleNodeArgs } from '../integration/process-cluster.js';

const EXIT_TIMEOUT_MS = 20_000;

/** Starts raftkv on `dataDir` with fresh ports and waits (bounded) for it to exit. */
async function runOn(t: Test, dataDir: string, name = 'n1'): Promise<RaftkvProcess> {
  const [client, peer] = [await freePort(), await freePort()];
  const proc = new RaftkvProcess(singleNodeArgs(name, dataDir, client, peer));
  t.teardown(() => proc.kill('SIGKILL'));
  await proc.waitExit(EXIT_TIMEOUT_MS).catch(() => undefined);
  return proc;
}

/** The process refused to start: a non-zero exit (not a signal) and a `raftkv: ...` line on stderr. */
function refused(t: Test, proc: RaftkvProcess, what: RegExp[], label: string): void {
  const exit = proc.exit;
  t.ok(
    exit && exit.signal === null && exit.code !== 0,
    `${label}: exits non-zero (${JSON.stringify(exit ?? 'still running')})`,
  );
  t.match(proc.stderr, /^raftkv: /m, `${label}: says so on stderr`);
  for (const re of what) t.match(proc.stderr, re, `${label}: stderr matches ${re}`);
  if (!t.passing()) t.comment(`stderr:\n${proc.stderr}\nstdout:\n${proc.stdout}`);
}

/** Initializes a raftkv data dir for member `name` with an in-process node, then stops it. */
async function initializedDir(dir: string, name: string): Promise<void> {
  const peer = await freePort();
  const node = await startNode({
    name,
    dataDir: dir,
    listenClient: `127.0.0.1:${await freePort()}`,
    listenPeer: `127.0.0.1:${peer}`,
    tickMs: 20,
    logLevel: 'silent',
  });
  await waitUntil(
    'the node to lead',
    () => (node.node.statusSync().role === 'leader' ? true : undefined),
    10_000,
  );
  const w = await putKey(node.clientUrl, 'k', 'v');
  await node.stop();
  if (w.status !== 200) throw new Error(`could not write to the new data dir: ${w.status}`);
}

function tempDir(t: Test, label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `raftkv-dd-${label}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('a data dir full of garbage files is refused', async (t) => {
  const dir = join(tempDir(t, 'garbage'), 'data');
  mkdirSync(dir);
  writeFileSync(join(dir, 'notes.txt'), 'not a database\n');
  writeFileSync(join(dir, 'blob.bin'), randomBytes(4096));
  const proc = await runOn(t, dir);
  refused(
    t,
    proc,
    [/not a raftkv data dir/, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), /--data-dir/],
    'garbage',
  );
});

t.test("another program's LevelDB is refused", async (t) => {
  const dir = join(tempDir(t, 'foreign'), 'data');
  const db = new Level<string, string>(dir);
  await db.open();
  await db.batch([
    { type: 'put', key: 'user:1', value: '{"name":"ada"}' },
    { type: 'put', key: 'user:2', value: '{"name":"alan"}' },
  ]);
  await db.close();
  const proc = await runOn(t, dir);
  refused(t, proc, [/not a raftkv data dir/, /LevelDB/, /--data-dir/], 'foreign LevelDB');
});

t.test('a raftkv data dir with a damaged LevelDB is refused', async (t) => {
  const dir = join(tempDir(t, 'damaged'), 'data');
  await initializedDir(dir, 'n1');
  // CURRENT names the manifest; garbage there leaves LevelDB unable to find its files.
  writeFileSync(join(dir, 'CURRENT'), randomBytes(64));
  const proc = await runOn(t, dir);
  refused(t, proc, [/damaged/, /restore|backup/], 'damaged');
});

t.test('a data dir initialized for another --name is refused', async (t) => {
  const dir = join(tempDir(t, 'name'), 'data');
  await initializedDir(dir, 'n1');
  const proc = await runOn(t, dir, 'n2');
  refused(t, proc, [/belongs to member "n1"/, /--name n1/, /--data-dir/], 'other name');
});

/** The first process of the lock test: a real raftkv child on `dir`. */
class RaftkvProcessHolder {
  private constructor(
    readonly proc: RaftkvProcess,
    readonly url: string,
  ) {}

  get running(): boolean {
    return this.proc.running;
  }

  static async start(t: Test, dir: string): Promise<RaftkvProcessHolder> {
    const [client, peer] = [await freePort(), await freePort()];
    const proc = new RaftkvProcess(singleNodeArgs('n1', dir, client, peer));
    t.teardown(() => proc.kill('SIGKILL'));
    const url = `http://127.0.0.1:${client}`;
    await waitUntil(
      'the first process to serve',
      async () => {
        if (!proc.running) throw new Error(`exited: ${proc.stderr}`);
        return status(url, 500);
      },
      15_000,
    );
    return new RaftkvProcessHolder(proc, url);
  }
}

t.test('a second process on the same data dir exits with "locked"', async (t) => {
  const dir = join(tempDir(t, 'locked'), 'data');
  const holder = await RaftkvProcessHolder.start(t, dir);
  const proc = await runOn(t, dir);
  refused(t, proc, [/locked/, /another raftkv/], 'locked');
  t.ok(holder.running, 'the first process keeps running');
  t.equal((await status(holder.url))?.name, 'n1', 'and keeps serving');
});

/** Whether host:port can be bound right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

const defaultPortsFree = (await portFree(7379)) && (await portFree(7380));

t.test(
  'with no flags, raftkv serves a one-node cluster on 127.0.0.1:7379 from ./raftkv-data',
  { skip: defaultPortsFree ? false : 'port 7379 or 7380 is busy on this machine' },
  async (t) => {
    const cwd = tempDir(t, 'defaults');
    const proc = new RaftkvProcess([], { cwd, env: cleanEnv() });
    t.teardown(() => proc.kill('SIGKILL'));
    const url = 'http://127.0.0.1:7379';
    const st = await waitUntil(
      'raftkv on 127.0.0.1:7379 to lead',
      async () => {
        if (!proc.running) throw new Error(`exited ${JSON.stringify(proc.exit)}: ${proc.stderr}`);
        const s = await status(url, 500);
        return s?.role === 'leader' ? s : undefined;
      },
      20_000,
    ).catch((err) => {
      t.comment(`stderr:\n${proc.stderr}\nstdout:\n${proc.stdout}`);
      throw err;
    });
    t.equal(st.name, 'default', 'the member is called "default"');
    t.equal(st.members, 1, 'a one-node cluster');
    const w = await putKey(url, 'hello', 'world');
    t.equal(w.status, 200, 'it takes writes');
    t.equal(kvValue(await getKey(url, 'hello')), 'world', 'and reads them back');
    t.ok(existsSync(join(cwd, 'raftkv-data', 'CURRENT')), 'its data is in ./raftkv-data');

    const exit = await proc.kill('SIGTERM', 15_000);
    t.same(exit, { code: 0, signal: null }, 'SIGTERM stops it with exit code 0');
    if (exit.code !== 0) t.comment(`stderr:\n${proc.stderr}`);
  },
);
