/**
 * A member never applies an entry it does not understand: one written by a
 * newer raftkv (an unknown command type, a newer envelope, an unknown server
 * command) stops it with "upgrade this member" before the entry or anything
 * after it applies, and nothing of it is acknowledged. Also: the cluster
 * version and the members' versions on the API, and the gate on POST /v1/sync.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import t, { type Test } from 'tap';
import { Client } from '../../src/client/index.js';
import { type StartedNode, startNode } from '../../src/index.js';
import { UpgradeNeededError } from '../../src/server/cluster-version.js';
import type { RaftKvNode } from '../../src/server/node.js';
import { SERVER_COMMAND_TAG } from '../../src/server/server-commands.js';
import { clusterConfigs, request } from '../integration/helpers.js';

const utf8 = (text: string) => new TextEncoder().encode(text);

/** A one-member cluster whose log lines are kept, and whose fatal stop is recorded. */
async function startOne(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-upgrade-'));
  const [config] = await clusterConfigs(dir, ['n1']);
  const lines: { level: number; msg: string; index?: number }[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  let started: StartedNode | undefined;
  const fatal: unknown[] = [];
  const start = async () => {
    started = await startNode(config!, { logger: pino({ level: 'info' }, sink) });
    started.node.onFatal((err) => fatal.push(err));
    return started;
  };
  t.teardown(async () => {
    await started?.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  return {
    lines,
    fatal,
    get node(): RaftKvNode {
      return started!.node;
    },
    get url(): string {
      return started!.clientUrl;
    },
    async restart() {
      await started!.stop();
      fatal.length = 0;
      return start();
    },
  };
}

/** Polls `check` every 20 ms until it returns true; at most `timeoutMs`. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Proposes raw entry bytes, as a newer leader's log would carry them (a private path). */
function proposeRaw(node: RaftKvNode, data: Uint8Array): Promise<unknown> {
  return (node as unknown as { core: { propose(d: Uint8Array): Promise<unknown> } }).core.propose(
    data,
  );
}

t.test('status and members show the versions; sync is refused below 0.2.0', async (t) => {
  const one = await startOne(t);
  await until('the member to publish its version', async () => {
    const members = await request(one.url, 'GET', '/v1/cluster/members');
    return members.body.members[0]?.version === '0.1.0';
  });
  const status = await request(one.url, 'GET', '/v1/status');
  t.match(status.body, { version: '0.1.0', clusterVersion: '0.1.0' });
  const sync = await request(one.url, 'POST', '/v1/sync');
  t.equal(sync.status, 409);
  t.equal(sync.body.error.code, 'cluster_version_too_old');
  t.match(sync.body.error.message, /"sync" is not known to raftkv 0\.1\.0/);
  const put = await request(one.url, 'PUT', '/v1/kv/a', { value: '1' });
  t.equal(put.status, 200, 'older commands go on');
  const client = new Client({ endpoints: [one.url] });
  t.teardown(() => client.close());
  await t.rejects(client.sync(), { code: 'cluster_version_too_old' }, 'through the library too');
});

t.test('an unknown command type stops the member before it applies', async (t) => {
  const one = await startOne(t);
  await until('a leader', () => one.node.statusSync().role === 'leader');
  t.equal((await request(one.url, 'PUT', '/v1/kv/a', { value: '1' })).status, 200);
  const before = one.node.statusSync();
  const raw = utf8(JSON.stringify({ v: 1, atMs: Date.now(), cmd: { type: 'futureThing' } }));
  const outcome = proposeRaw(one.node, raw).then(
    (r) => ({ resolved: r }),
    (e) => ({ rejected: e as Error }),
  );
  await until('the member to stop', () => one.fatal.length > 0);
  const err = one.fatal[0] as UpgradeNeededError;
  t.type(err, UpgradeNeededError);
  const index = err.index;
  t.ok(index > before.appliedIndex, `the entry is new (index ${index})`);
  t.match(
    err.message,
    new RegExp(
      `^upgrade this member: entry ${index} needs a newer raftkv \\(command type "futureThing"\\); it runs raftkv 0\\.1\\.0$`,
    ),
  );
  t.ok(
    one.lines.some((l) => l.level === 60 && l.msg === err.message && l.index === index),
    'one fatal log line says it',
  );
  t.ok(one.node.statusSync().appliedIndex < index, 'the entry was not applied');
  const put = await request(one.url, 'PUT', '/v1/kv/b', { value: '2' });
  t.not(put.status, 200, 'nothing after it is taken');
  await one.node.stop();
  t.notOk('resolved' in (await outcome), 'the entry was never acknowledged');

  // Restarted with the same (old) raftkv, it meets the same entry and stops again.
  await one.restart();
  await until('the member to stop again', () => one.fatal.length > 0);
  t.equal((one.fatal[0] as UpgradeNeededError).index, index);
  t.ok(one.node.statusSync().appliedIndex < index, 'still not applied');
  t.equal(one.node.store.revision, 1, 'the state holds the put before it, nothing else');
});

t.test('a newer envelope version and an unknown server command stop it too', async (t) => {
  const one = await startOne(t);
  await until('a leader', () => one.node.statusSync().role === 'leader');
  void proposeRaw(
    one.node,
    utf8(JSON.stringify({ v: 2, atMs: Date.now(), cmd: { type: 'put', key: 'k', value: 'v' } })),
  ).catch(() => {});
  await until('the member to stop', () => one.fatal.length > 0);
  t.match((one.fatal[0] as Error).message, /needs a newer raftkv \(command envelope version 2/);

  const two = await startOne(t);
  await until('a leader', () => two.node.statusSync().role === 'leader');
  const body = utf8(JSON.stringify({ type: 'memberRetire', id: two.node.id }));
  const data = new Uint8Array(body.byteLength + 1);
  data[0] = SERVER_COMMAND_TAG;
  data.set(body, 1);
  void proposeRaw(two.node, data).catch(() => {});
  await until('the member to stop', () => two.fatal.length > 0);
  t.match(
    (two.fatal[0] as Error).message,
    /needs a newer raftkv \(server command type "memberRetire"\)/,
  );
});
