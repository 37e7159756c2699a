/**
 * Bootstrap safety: the whole configuration is checked before the data dir is
 * touched, a founder's own --initial-cluster entry must be where it listens,
 * and a data dir refuses a restart whose --initial-cluster names another
 * cluster — it never runs as a different cluster than its flags name.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ServerError, startNode } from '../../src/index.js';
import type { NodeConfig } from '../../src/server/config.js';
import { freePort } from '../integration/helpers.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-boot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function singleNode(dir: string, overrides: Partial<NodeConfig> = {}) {
  const peer = await freePort();
  return {
    name: 'n1',
    dataDir: join(dir, 'n1'),
    listenClient: `127.0.0.1:${await freePort()}`,
    listenPeer: `127.0.0.1:${peer}`,
    tickMs: 20,
    logLevel: 'silent' as const,
    ...overrides,
  };
}

t.test('a bad setting is refused before the data dir exists, naming the flag', async (t) => {
  const dir = tempDir(t);
  const cases: [Partial<NodeConfig>, RegExp][] = [
    [{ listenClient: '127.0.0.1:abc' }, /--listen-client: "127.0.0.1:abc" is not host:port/],
    [{ listenPeer: 'nowhere' }, /--listen-peer/],
    [{ electionTicks: 1, heartbeatTicks: 1 }, /--election-ticks/],
    [
      { electionTicks: 5, heartbeatTicks: 5 },
      /--election-ticks \(5\) must be more than --heartbeat-ticks/,
    ],
    [{ tickMs: 0 }, /--tick-ms/],
    [{ snapshotCount: 0 }, /--snapshot-count/],
    [{ maxValueBytes: 0 }, /--max-value-bytes/],
    [{ name: 'has space' }, /--name/],
    [{ name: 'a,b' }, /--name/],
    [{ advertiseClientUrl: 'ftp://x' }, /--advertise-client-url/],
    [
      { initialCluster: new Map([['n2', 'http://127.0.0.1:1']]) },
      /does not list this member's --name "n1"/,
    ],
  ];
  for (const [override, message] of cases) {
    const config = await singleNode(dir, override);
    await t.rejects(
      startNode(config),
      { name: 'ServerError', code: 'invalid_request', message },
      JSON.stringify(override, (_k, v) => (v instanceof Map ? [...v] : v)),
    );
    t.notOk(existsSync(config.dataDir), 'no data dir was created');
  }
});

t.test(
  "a founder's own --initial-cluster entry must be the peer address it listens on",
  async (t) => {
    const dir = tempDir(t);
    const base = await singleNode(dir);
    const other = await freePort();
    const wrongPort = {
      ...base,
      initialCluster: new Map([
        ['n1', `http://127.0.0.1:${other}`],
        ['n2', 'http://127.0.0.1:1'],
      ]),
    };
    await t.rejects(startNode(wrongPort), {
      code: 'invalid_request',
      message:
        /--initial-cluster names n1=http:\/\/127.0.0.1:\d+, but this member listens on --listen-peer/,
    });
    t.notOk(existsSync(base.dataDir));

    const advertised = {
      ...wrongPort,
      advertisePeerUrl: 'http://10.1.2.3:7380',
    };
    await t.rejects(startNode(advertised), {
      message: /--advertise-peer-url http:\/\/10.1.2.3:7380/,
    });
    t.notOk(existsSync(base.dataDir));
  },
);

t.test('a port in use is refused in one line before the data dir is touched', async (t) => {
  const dir = tempDir(t);
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())));
  const port = (busy.address() as { port: number }).port;
  for (const flag of ['listenClient', 'listenPeer'] as const) {
    const config = await singleNode(dir, { [flag]: `127.0.0.1:${port}` });
    await t.rejects(startNode(config), {
      code: 'invalid_request',
      message: new RegExp(
        `${flag === 'listenClient' ? '--listen-client' : '--listen-peer'} 127.0.0.1:${port}: the address is in use`,
      ),
    });
    t.notOk(existsSync(config.dataDir));
  }
});

t.test('a restart whose --initial-cluster names other founders is refused', async (t) => {
  const dir = tempDir(t);
  // The operator's mistake: a first start without --initial-cluster founds a cluster of one.
  const alone = await singleNode(dir);
  const first = await startNode(alone);
  await first.stop();

  const n2 = `http://127.0.0.1:${await freePort()}`;
  const own = `http://${alone.listenPeer}`;
  const intended = {
    ...alone,
    initialCluster: new Map([
      ['n1', own],
      ['n2', n2],
    ]),
  };
  const refused = await startNode(intended).then(
    (s) => s.stop().then(() => undefined),
    (err: unknown) => err,
  );
  t.type(refused, ServerError, 'refused');
  const message = (refused as Error).message;
  t.match(message, /was created as a founder of the cluster --initial-cluster n1=http/);
  t.match(message, /n2 was not a member then/);
  t.match(message, /cluster of one/, 'says how this happens and what to do');

  const moved = {
    ...alone,
    initialCluster: new Map([['n1', `http://127.0.0.1:${await freePort()}`]]),
  };
  await t.rejects(startNode({ ...moved, listenPeer: moved.initialCluster.get('n1')!.slice(7) }), {
    message: /n1 was at http:\/\/127.0.0.1:\d+, not http/,
  });

  const otherName = { ...alone, clusterName: 'another', initialCluster: new Map([['n1', own]]) };
  await t.rejects(startNode(otherName), { message: /another --cluster-name/ });

  // Leaving the flag out, or naming the same founders, starts as before.
  const again = await startNode(alone);
  await again.stop();
  const same = await startNode({ ...alone, initialCluster: new Map([['n1', `${own}/`]]) });
  await same.stop();
});
