/**
 * kvctl as a child process against a 3-node in-process cluster: commands,
 * both output formats, and exit codes 0 (ok), 1 (not found, compare failed,
 * txn not succeeded), 2 (usage) and 3 (unavailable).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Client } from '../../src/client/index.js';
import { decodeBackup } from '../../src/server/backup.js';
import { startCluster } from '../integration/helpers.js';
import { type KvctlRun, kvctlRunner } from '../support/kvctl-run.js';

type Run = KvctlRun;
const { start, run: kvctl, killAll } = kvctlRunner(() => endpoints, 30_000);
t.teardown(killAll);

const json = (r: Run) => JSON.parse(r.stdout);

const cluster = await startCluster(3);
t.teardown(() => cluster.close());
await cluster.waitForLeader();
const endpoints = [0, 1, 2].map((i) => cluster.url(i)).join(',');
/** For setting up and checking state without paying a process start each time. */
const client = new Client({ endpoints: endpoints.split(',') });
t.teardown(() => client.close());
const tmp = mkdtempSync(join(tmpdir(), 'kvctl-test-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

t.test('put, get, ls, del in table and json formats', async (t) => {
  const [putTable, putJson] = await Promise.all([
    kvctl(['put', 'cli/a', 'hello world']),
    kvctl(['-o', 'json', 'put', 'cli/b', 'two\nlines']),
  ]);
  t.equal(putTable.code, 0, putTable.stderr);
  t.match(putTable.stdout, /^revision\s+\d+\nkey\s+cli\/a\nversion\s+1\nprevious\s+-\n$/);
  t.equal(putJson.code, 0, putJson.stderr);
  t.match(json(putJson), {
    revision: Number,
    kv: { key: 'cli/b', value: 'two\nlines' },
    prevKv: null,
  });

  const [getTable, getJson, lsTable, lsJson] = await Promise.all([
    kvctl(['get', 'cli/b']),
    kvctl(['get', 'cli/a', '--output', 'json', '--consistency', 'serializable']),
    kvctl(['ls', 'cli/', '--keys-only']),
    kvctl(['-o', 'json', 'ls', 'cli/', '--limit', '1']),
  ]);
  t.equal(getTable.code, 0);
  const lines = getTable.stdout.trimEnd().split('\n');
  t.match(lines[0], /^KEY\s+VALUE\s+VERSION\s+CREATE-REV\s+MOD-REV\s+LEASE$/);
  t.match(lines[1], /^cli\/b\s+two\\nlines\s+1\s+\d+\s+\d+\s+-$/, 'one line per key, escaped');
  t.equal(getJson.code, 0);
  t.match(json(getJson), {
    kv: { key: 'cli/a', value: 'hello world', version: 1 },
    revision: Number,
  });
  t.equal(lsTable.code, 0);
  t.match(lsTable.stdout, /^KEY\s+VERSION\s+MOD-REV\ncli\/a\s+1\s+\d+\ncli\/b\s+1\s+\d+\n$/);
  t.equal(lsJson.code, 0);
  t.match(json(lsJson), { kvs: [{ key: 'cli/a', value: 'hello world' }], more: true });
  t.equal(json(lsJson).kvs.length, 1);

  const [del, delJson] = await Promise.all([
    kvctl(['del', 'cli/a']),
    kvctl(['-o', 'json', 'del', 'cli/b', '--prefix']),
  ]);
  t.equal(del.code, 0);
  t.match(del.stdout, /^deleted\s+1\nrevision\s+\d+\n$/);
  t.equal(delJson.code, 0);
  t.match(json(delJson), { deleted: 1, revision: Number, prevKvs: [{ key: 'cli/b' }] });
  t.equal((await client.list({ prefix: 'cli/' })).kvs.length, 0);
});

t.test('exit 1: key not found, compare failed, nothing deleted', async (t) => {
  const rev = (await client.put('cli/cas', 'v1')).revision;
  const [missing, casFail, delMissing] = await Promise.all([
    kvctl(['get', 'cli/missing']),
    kvctl(['-o', 'json', 'put', 'cli/cas', 'v2', '--prev-revision', String(rev + 1000)]),
    kvctl(['del', 'cli/never']),
  ]);
  t.equal(missing.code, 1);
  t.equal(missing.stdout, '');
  t.match(missing.stderr, /^error: key_not_found: /);
  t.equal(casFail.code, 1);
  t.match(casFail.stderr, /^error: compare_failed: /);
  t.match(
    json(casFail),
    { error: { code: 'compare_failed' }, kv: { key: 'cli/cas', value: 'v1' }, revision: Number },
    'json: the API error body, with the current kv',
  );
  t.equal(delMissing.code, 1, 'deleting a missing key');
  t.equal((await client.get('cli/cas')).kv.value, 'v1', 'nothing changed');
});

t.test('txn from stdin and from a file; a false compare exits 1', async (t) => {
  const body = {
    compare: [{ key: 'cli/txn', target: 'version', op: '==', value: 0 }],
    success: [
      { op: 'put', key: 'cli/txn', value: 'created' },
      { op: 'get', key: 'cli/txn' },
    ],
    failure: [{ op: 'get', key: 'cli/txn' }],
  };
  const first = await kvctl(['-o', 'json', 'txn'], { stdin: JSON.stringify(body) });
  t.equal(first.code, 0, first.stderr);
  t.match(json(first), {
    succeeded: true,
    revision: Number,
    results: [
      { op: 'put', kv: { key: 'cli/txn' } },
      { op: 'get', kvs: [{ value: 'created' }] },
    ],
  });
  const file = join(tmp, 'txn.json');
  writeFileSync(file, JSON.stringify(body));
  const second = await kvctl(['txn', file]);
  t.equal(second.code, 1, 'not succeeded: exit 1');
  t.match(
    second.stdout,
    /^succeeded\s+false\nrevision\s+\d+\n\n#\s+OP\s+KEY\s+RESULT\n0\s+get\s+cli\/txn\s+created\n$/,
  );
});

t.test('status and members, table and json', async (t) => {
  const [table, asJson, members] = await Promise.all([
    kvctl(['status']),
    kvctl(['-o', 'json', 'status']),
    kvctl(['members']),
  ]);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /^id\s+\w+\nname\s+n\d\nrole\s+(leader|follower)\n/);
  t.equal(asJson.code, 0);
  t.match(json(asJson), { id: String, name: String, term: Number, revision: Number, members: 3 });
  t.equal(members.code, 0);
  t.equal(members.stdout.trimEnd().split('\n').length, 4, 'header and three members');
  t.match(members.stdout, /^ID\s+NAME\s+ROLE\s+LEADER\s+PEER-URLS\s+CLIENT-URLS\n/);
});

t.test('status --cluster: a row for every member, found through the members list', async (t) => {
  const [table, asJson] = await Promise.all([
    kvctl(['status', '--cluster']),
    kvctl(['-o', 'json', 'status', '--cluster']),
  ]);
  t.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  t.equal(lines.length, 4, 'header and three members');
  t.match(lines[0], /^NAME\s+ID\s+ENDPOINT\s+ROLE\s+LEADER\s+TERM\s+COMMIT\s+APPLIED\s+REVISION/);
  t.equal(lines.filter((l) => /\sleader\s+\*\s/.test(l)).length, 1, 'one leader, marked');
  t.equal(asJson.code, 0, asJson.stderr);
  const rows = JSON.parse(asJson.stdout) as { name: string; status?: { name: string } }[];
  t.same(rows.map((r) => r.status?.name).sort(), ['n1', 'n2', 'n3']);
});

t.test('completion bash prints a script bash accepts', async (t) => {
  const r = await kvctl(['completion', 'bash']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /complete -o default -F _kvctl kvctl/);
  const bad = await kvctl(['completion', 'fish']);
  t.equal(bad.code, 2, 'an unknown shell is a usage error');
});

t.test('compact, and watch prints each change until interrupted', async (t) => {
  const old = (await client.put('cli/c', 'x')).revision;
  const kept = (await client.put('cli/c', 'y')).revision;
  const rev = (await client.put('cli/w/1', 'a')).revision;
  await client.put('cli/w/1', 'b');
  await client.delete('cli/w/1');

  const compact = await kvctl(['-o', 'json', 'compact', String(kept)]);
  t.equal(compact.code, 0, compact.stderr);
  t.equal(json(compact).compactRevision, kept);
  t.match(await client.get('cli/c', { revision: old }).catch((e: unknown) => e), {
    code: 'compacted',
  });

  const watch = start([
    '-o',
    'json',
    'watch',
    'cli/w/',
    '--prefix',
    '--prev-kv',
    '--from-revision',
    String(rev),
  ]);
  const { out, code } = await new Promise<{ out: string; code: number | null }>((resolve) => {
    let out = '';
    let interrupted = false;
    const timer = setTimeout(() => watch.kill('SIGKILL'), 30_000);
    watch.stdout!.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      if (!interrupted && out.split('\n').length > 3) {
        interrupted = true;
        watch.kill('SIGINT');
      }
    });
    watch.on('close', (code) => {
      clearTimeout(timer);
      resolve({ out, code });
    });
  });
  t.equal(code, 0, 'Ctrl-C: exit 0');
  const changes = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.strictSame(
    changes.map((c) => [c.revision, c.events[0].type, c.events[0].prevKv?.value ?? null]),
    [
      [rev, 'put', null],
      [rev + 1, 'put', 'a'],
      [rev + 2, 'delete', 'b'],
    ],
    'one JSON change per line',
  );
});

t.test('exit 2: usage errors; --help exits 0', async (t) => {
  const [bogus, badInt, badJson, help] = await Promise.all([
    kvctl(['bogus']),
    kvctl(['get', 'k', '--revision', 'abc']),
    kvctl(['txn'], { stdin: 'not json' }),
    kvctl(['--help']),
  ]);
  t.equal(bogus.code, 2);
  t.match(bogus.stderr, /unknown command 'bogus'/);
  t.equal(badInt.code, 2);
  t.match(badInt.stderr, /--revision/);
  t.equal(badJson.code, 2);
  t.match(badJson.stderr, /^error: txn: invalid JSON/);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: kvctl/);
  t.match(help.stdout, /Exit codes/);
});

t.test('exit 3: nothing reachable; endpoints from --endpoints or KVCTL_ENDPOINTS', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
  const dead = `http://127.0.0.1:${port}`;
  const [flag, deadFirst] = await Promise.all([
    kvctl(['--endpoints', dead, '--retries', '1', 'put', 'k', 'v']),
    kvctl(['get', 'cli/cas'], { env: { KVCTL_ENDPOINTS: `${dead},${cluster.url(1)}` } }),
  ]);
  t.equal(flag.code, 3);
  t.match(flag.stderr, /^error: unavailable: /);
  t.equal(deadFirst.code, 0, 'KVCTL_ENDPOINTS is used, and the dead first one skipped');
  t.match(deadFirst.stdout, /cli\/cas\s+v1/);
});

t.test('move-leader: to a named member, then to whoever is furthest along', async (t) => {
  const before = cluster.leaderIndex();
  const target = (before + 1) % 3;
  const targetId = cluster.nodes[target]!.node.statusSync().id;
  const named = await kvctl(['move-leader', targetId]);
  t.equal(named.code, 0, named.stderr);
  t.match(named.stdout, new RegExp(`leader\\s+${targetId}`));
  t.equal(cluster.leaderIndex(), target, 'the named member leads');
  const any = await kvctl(['-o', 'json', 'move-leader']);
  t.equal(any.code, 0, any.stderr);
  t.not(json(any).leader, targetId, 'leadership moved on');
  const unknown = await kvctl(['move-leader', 'feedfacefeedface']);
  t.equal(unknown.code, 1, 'an unknown member is a not-found');
  t.match(unknown.stderr, /member_not_found/);
});

t.test('snapshot: saves a backup file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kvctl-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'b.snap');
  const r = await kvctl(['-o', 'json', 'snapshot', file]);
  t.equal(r.code, 0, r.stderr);
  t.equal(json(r).file, file);
  const { header } = decodeBackup(readFileSync(file));
  t.ok(header.revision > 0);
  t.equal(json(r).bytes, readFileSync(file).length);
});

t.test('member add / remove: a learner in and out', async (t) => {
  const add = await kvctl([
    '-o',
    'json',
    'member',
    'add',
    'cli-learner',
    'http://127.0.0.1:9',
    'http://127.0.0.1:10',
    '--learner',
  ]);
  t.equal(add.code, 0, add.stderr);
  const { id, role } = json(add);
  t.equal(role, 'learner');
  const promoteBad = await kvctl(['member', 'promote', 'feedfacefeedface']);
  t.equal(promoteBad.code, 1);
  t.match(promoteBad.stderr, /member_not_found/);
  const remove = await kvctl(['member', 'remove', id]);
  t.equal(remove.code, 0, remove.stderr);
  t.match(remove.stdout, new RegExp(`removed\\s+${id}`));
});
