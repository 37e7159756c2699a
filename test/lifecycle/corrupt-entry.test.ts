/**
 * `raftkv` (cmd/raftkv.ts as a child process) on a data dir with one flipped
 * bit — in its last log entry, or in a record of its key-value state: it
 * refuses to start with one line on stderr that names the data dir, the
 * sublevel and the index or key and says what to do, and exits 1 — it never
 * applies the damaged entry nor loads the damaged record.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import t, { type Test } from 'tap';
import { startNode } from '../../src/index.js';
import { SUBLEVEL } from '../../src/storage/keys.js';
import { freePort } from '../integration/helpers.js';
import { putKey, waitUntil } from '../integration/http-ops.js';
import { RaftkvProcess, singleNodeArgs } from '../integration/process-cluster.js';

type RawDb = Level<Uint8Array, Uint8Array>;

/** A one-member data dir with 5 writes, then `damage` on its closed database; returns the dir. */
async function damagedDir(t: Test, damage: (db: RawDb) => Promise<void>): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), 'raftkv-corrupt-')), 'data');
  t.teardown(() => rmSync(join(dir, '..'), { recursive: true, force: true }));
  const node = await startNode({
    name: 'n1',
    dataDir: dir,
    listenClient: `127.0.0.1:${await freePort()}`,
    listenPeer: `127.0.0.1:${await freePort()}`,
    tickMs: 20,
    logLevel: 'silent',
  });
  await waitUntil(
    'the node to lead',
    () => (node.node.statusSync().role === 'leader' ? true : undefined),
    30_000,
  );
  for (let i = 0; i < 5; i++) {
    const w = await putKey(node.clientUrl, `k${i}`, `v${i}`);
    t.equal(w.status, 200, `write ${i}`);
  }
  await node.stop();
  const db: RawDb = new Level(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    await damage(db);
  } finally {
    await db.close();
  }
  return dir;
}

/** Starts raftkv on `dir` and checks it exits 1 with one stderr line matching `message`. */
async function refusesToStart(t: Test, dir: string, message: RegExp): Promise<void> {
  const proc = new RaftkvProcess(singleNodeArgs('n1', dir, await freePort(), await freePort()));
  t.teardown(() => proc.kill('SIGKILL'));
  const exit = await proc.waitExit(60_000);
  t.same(exit, { code: 1, signal: null }, 'exit 1');
  const lines = proc.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line on stderr:\n${proc.stderr}`);
  t.match(lines[0], message, 'names the data dir, the sublevel, the record, and what to do');
}

t.test(
  'a flipped bit in a log entry: raftkv says which entry and what to do, exit 1',
  async (t) => {
    let index = 0;
    const dir = await damagedDir(t, async (db) => {
      // Flip one bit in the body of the last stored entry.
      const log = db.sublevel<Uint8Array, Uint8Array>(SUBLEVEL.log, {
        keyEncoding: 'view',
        valueEncoding: 'view',
      });
      let last: [Uint8Array, Uint8Array] | undefined;
      for await (const [key, value] of log.iterator({ reverse: true, limit: 1 }))
        last = [key, value];
      if (last === undefined) throw new Error('no log entry stored');
      index = Buffer.from(last[0]).readUInt32BE(4);
      const damaged = Uint8Array.from(last[1]);
      damaged[damaged.length - 1]! ^= 0x10;
      await log.put(last[0], damaged);
    });
    await refusesToStart(
      t,
      dir,
      new RegExp(
        `^raftkv: data dir ${dir} is damaged \\(sublevel log, entry ${index}: checksum mismatch .*\\): ` +
          '.*remove this member and add it back with an empty data dir',
      ),
    );
  },
);

t.test(
  'a flipped bit in a key-value record: raftkv says which key and what to do, exit 1',
  async (t) => {
    const key = 'k/0000000000000004/00000000';
    const dir = await damagedDir(t, async (db) => {
      const kv = db.sublevel<string, Uint8Array>(SUBLEVEL.kv, {
        keyEncoding: 'utf8',
        valueEncoding: 'view',
      });
      const stored = await kv.get(key);
      if (stored === undefined) throw new Error(`no kv record ${key}`);
      const damaged = Uint8Array.from(stored);
      damaged[damaged.length - 2]! ^= 0x01;
      await kv.put(key, damaged);
    });
    await refusesToStart(
      t,
      dir,
      new RegExp(
        `^raftkv: data dir ${dir} is damaged \\(sublevel kv, key "${key}": checksum mismatch .*\\): ` +
          '.*remove this member and add it back with an empty data dir',
      ),
    );
  },
);
