/**
 * A member whose kv sublevel holds a damaged record does not start: the
 * state machine is rebuilt from kvRecords() before the member serves or
 * talks to peers, so the record is never applied, served, or sent to a peer
 * in a snapshot (snapshots and backups are made from the state machine in
 * memory). The error names the key and says what to do.
 */
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { Level } from 'level';
import t from 'tap';
import { startNode } from '../../src/index.js';
import { StorageError } from '../../src/storage/index.js';
import { SUBLEVEL } from '../../src/storage/keys.js';
import { freePort } from '../integration/helpers.js';
import { putKey, waitUntil } from '../integration/http-ops.js';
import { tempDir } from './helpers.js';

/** Whether something accepts connections on 127.0.0.1:port (bounded: 2 s). */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port, timeout: 2_000 });
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

t.test('a flipped bit in a kv record: the member refuses to start, naming the key', async (t) => {
  const dataDir = join(await tempDir(t, 'raftkv-kvcrc-'), 'n1');
  const clientPort = await freePort();
  const peerPort = await freePort();
  const config = {
    name: 'n1',
    dataDir,
    listenClient: `127.0.0.1:${clientPort}`,
    listenPeer: `127.0.0.1:${peerPort}`,
    tickMs: 20,
    logLevel: 'silent' as const,
  };
  const node = await startNode(config);
  await waitUntil(
    'the node to lead',
    () => (node.node.statusSync().role === 'leader' ? true : undefined),
    30_000,
  );
  for (let i = 0; i < 5; i++) t.equal((await putKey(node.clientUrl, `k${i}`, `v${i}`)).status, 200);
  await node.stop();

  // Flip one bit in the value of the MVCC record of the third write.
  const db = new Level<Uint8Array, Uint8Array>(dataDir, {
    keyEncoding: 'view',
    valueEncoding: 'view',
  });
  await db.open();
  const kv = db.sublevel<string, Uint8Array>(SUBLEVEL.kv, {
    keyEncoding: 'utf8',
    valueEncoding: 'view',
  });
  const key = 'k/0000000000000003/00000000';
  const stored = await kv.get(key);
  t.ok(stored, `the record ${key} is there`);
  const damaged = Uint8Array.from(stored!);
  damaged[damaged.length - 3]! ^= 0x04;
  await kv.put(key, damaged);
  await db.close();

  const err = await startNode(config).catch((e: unknown) => e);
  t.type(err, StorageError);
  t.match(err, {
    code: 'corrupt',
    message: new RegExp(
      `^data dir ${dataDir} is damaged \\(sublevel kv, key "k/0000000000000003/00000000": ` +
        'checksum mismatch .*\\): .*remove this member and add it back with an empty data dir',
    ),
  });
  t.equal(await listening(peerPort), false, 'the peer port never opened: nothing sent to peers');
  t.equal(await listening(clientPort), false, 'the client port never opened: nothing served');
});
