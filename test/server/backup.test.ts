/**
 * Backups: the file format refuses any damage, and GET /v1/snapshot →
 * restoreNode() → startNode() gives a new cluster with the same keys,
 * revisions and leases, which then takes writes of its own.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { restoreNode, type StartedNode, startNode } from '../../src/index.js';
import { BackupError, decodeBackup, encodeBackup } from '../../src/server/backup.js';
import { clusterConfigs, get, put, request, startCluster } from '../integration/helpers.js';

const header = {
  v: 1 as const,
  clusterId: 'c',
  memberId: 'm',
  appliedIndex: 7,
  revision: 5,
  compactRevision: 0,
  takenAt: '2026-11-26T00:00:00.000Z',
};

t.test('a backup file round-trips, and any cut or changed byte is refused', (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (state, at, xor) => {
        const bytes = encodeBackup({ header, state });
        const back = decodeBackup(bytes);
        if (JSON.stringify(back.header) !== JSON.stringify(header)) return false;
        if (Buffer.compare(Buffer.from(back.state), Buffer.from(state)) !== 0) return false;
        const cut = at % bytes.length;
        const refused = (b: Uint8Array) => {
          try {
            decodeBackup(b);
            return false;
          } catch (err) {
            return err instanceof BackupError;
          }
        };
        const flipped = Uint8Array.from(bytes);
        flipped[cut] = flipped[cut]! ^ xor;
        return refused(bytes.subarray(0, cut)) && refused(flipped);
      },
    ),
    { numRuns: 300, seed: 11 },
  );
  t.throws(
    () => decodeBackup(new TextEncoder().encode('{"not":"a backup"}')),
    /not a raftkv backup/,
  );
  t.end();
});

t.test('a backup from one cluster founds another with the same data', async (t) => {
  const a = await startCluster(3);
  t.teardown(() => a.close());
  await a.waitForLeader();
  const url = a.url(0);
  await put(url, 'app/one', '1');
  await put(url, 'app/two', '2');
  await put(url, 'app/one', '1b');
  await request(url, 'DELETE', '/v1/kv/app/two');
  const lease = (await request(url, 'POST', '/v1/leases', { ttl: 600 })).body.id as string;
  await request(url, 'PUT', '/v1/kv/app/leased', { value: 'l', lease });
  const before = (await get(url, 'app/one')).body;

  // Taken through a follower: it is still everything acknowledged before.
  const follower = (a.leaderIndex() + 1) % 3;
  const res = await fetch(`${a.url(follower)}/v1/snapshot`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'application/octet-stream');
  const bytes = new Uint8Array(await res.arrayBuffer());
  const taken = decodeBackup(bytes).header;
  t.ok(taken.revision >= before.revision, 'the backup includes every acknowledged write');
  t.equal(res.headers.get('x-raftkv-revision'), String(taken.revision));

  const dir = mkdtempSync(join(tmpdir(), 'raftkv-restore-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const configs = await clusterConfigs(dir, ['r1', 'r2', 'r3']);
  mkdirSync(configs[1]!.dataDir); // an empty directory is fine too
  for (const c of configs) t.equal((await restoreNode(c, bytes)).revision, taken.revision);
  t.same(readdirSync(dir).sort(), ['r1', 'r2', 'r3'], 'nothing left beside the data dirs');

  const nodes: StartedNode[] = [];
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())));
  for (const c of configs) nodes.push(await startNode(c));
  const b = nodes[2]!.clientUrl;
  const one = (await get(b, 'app/one')).body;
  t.equal(one.kv.value, '1b');
  t.equal(one.kv.modRevision, before.kv.modRevision, 'revisions are kept');
  t.equal(one.kv.version, 2);
  t.equal((await get(b, 'app/two')).status, 404, 'the delete is kept');
  t.equal((await get(b, 'app/leased')).body.kv.lease, lease, 'keys keep their lease');
  t.equal((await request(b, 'GET', `/v1/leases/${lease}`)).status, 200, 'and the lease exists');
  t.equal(
    (await get(b, 'app/one', `?revision=${before.kv.createRevision}`)).body.kv.value,
    '1',
    'history too',
  );
  const w = await put(nodes[0]!.clientUrl, 'app/three', '3');
  t.equal(w.status, 200, 'the new cluster takes writes');
  t.ok(w.body.revision > taken.revision);
  t.not((await request(b, 'GET', '/v1/status')).body.id, '', 'a cluster of its own');
});

t.test('restore refuses a damaged file or a used directory, and creates nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-restore-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [c] = await clusterConfigs(dir, ['solo']);
  const good = encodeBackup({ header, state: new Uint8Array() });
  const damaged = Uint8Array.from(good);
  damaged[damaged.length - 1] ^= 1;
  await t.rejects(restoreNode(c!, damaged), { code: 'invalid_request', message: /checksum/ });
  t.same(readdirSync(dir), [], 'no data dir was made');
  // Intact as a file, but what it carries is not a state machine: found out mid-build.
  const garbage = encodeBackup({ header, state: new TextEncoder().encode('not a snapshot') });
  await t.rejects(restoreNode(c!, garbage), { code: 'invalid_request', message: /does not load/ });
  t.same(readdirSync(dir), [], 'and nothing half-built is left beside it');
  mkdirSync(c!.dataDir);
  writeFileSync(join(c!.dataDir, 'notes.txt'), 'mine');
  await t.rejects(restoreNode(c!, good), { code: 'invalid_request', message: /not empty/ });
  t.same(readdirSync(c!.dataDir), ['notes.txt'], 'the directory is left as it was');
});

t.test('raftkv restore on the command line', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-restore-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'backup.snap');
  writeFileSync(file, encodeBackup({ header, state: new Uint8Array() }));
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'cmd/raftkv.ts', 'restore', ...args], {
      cwd: join(import.meta.dirname, '..', '..'),
      encoding: 'utf8',
      timeout: 60_000,
    });
  const ok = cli([file, '--name', 'n1', '--data-dir', join(dir, 'n1'), '--log-level', 'silent']);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /restored .* \(revision 5, .*\) into .* as member n1/);
  const again = cli([file, '--name', 'n1', '--data-dir', join(dir, 'n1')]);
  t.equal(again.status, 1);
  t.match(again.stderr, /^raftkv restore: .*not empty/);
  const missing = cli([]);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /missing required argument 'backup'/);
  t.end();
});
