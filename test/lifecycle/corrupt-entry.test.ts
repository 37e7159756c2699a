/**
 * `raftkv` (cmd/raftkv.ts as a child process) on a data dir whose last log
 * entry has one flipped bit: it refuses to start with one line on stderr that
 * names the data dir, the sublevel and the index and says what to do, and
 * exits 1 — it never applies the damaged entry.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import t from 'tap';
import { startNode } from '../../src/index.js';
import { SUBLEVEL } from '../../src/storage/keys.js';
import { freePort } from '../integration/helpers.js';
import { putKey, waitUntil } from '../integration/http-ops.js';
import { RaftkvProcess, singleNodeArgs } from '../integration/process-cluster.js';

t.test(
  'a flipped bit in a log entry: raftkv says which entry and what to do, exit 1',
  async (t) => {
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

    // Flip one bit in the body of the last stored entry.
    const db = new Level<Uint8Array, Uint8Array>(dir, {
      keyEncoding: 'view',
      valueEncoding: 'view',
    });
    await db.open();
    const log = db.sublevel<Uint8Array, Uint8Array>(SUBLEVEL.log, {
      keyEncoding: 'view',
      valueEncoding: 'view',
    });
    let last: [Uint8Array, Uint8Array] | undefined;
    for await (const [key, value] of log.iterator({ reverse: true, limit: 1 })) last = [key, value];
    if (last === undefined) throw new Error('no log entry stored');
    const index = Buffer.from(last[0]).readUInt32BE(4);
    const damaged = Uint8Array.from(last[1]);
    damaged[damaged.length - 1]! ^= 0x10;
    await log.put(last[0], damaged);
    await db.close();

    const proc = new RaftkvProcess(singleNodeArgs('n1', dir, await freePort(), await freePort()));
    t.teardown(() => proc.kill('SIGKILL'));
    const exit = await proc.waitExit(60_000);
    t.same(exit, { code: 1, signal: null }, 'exit 1');
    const lines = proc.stderr.trim().split('\n');
    t.equal(lines.length, 1, `one line on stderr:\n${proc.stderr}`);
    t.match(
      lines[0],
      new RegExp(
        `^raftkv: data dir ${dir} is damaged \\(sublevel log, entry ${index}: checksum mismatch .*\\): ` +
          '.*remove this member and add it back with an empty data dir',
      ),
      'names the data dir, the sublevel, the index, and what to do',
    );
  },
);
