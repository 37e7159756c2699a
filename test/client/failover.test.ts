/**
 * Failover against a real cluster: a dead endpoint first, a stopped node, and
 * a watch that must see every revision exactly once while the connection it
 * uses is cut and then the node it moved to (the leader) is stopped, under a
 * steady stream of writes that fail over too.
 */
import { createServer } from 'node:net';
import t from 'tap';
import { Client, type WatchResponse } from '../../src/client/index.js';
import { startCluster } from '../integration/helpers.js';
import { until } from './helpers.js';

async function deadUrl(): Promise<string> {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
  return `http://127.0.0.1:${port}`;
}

const cluster = await startCluster(3);
t.teardown(() => cluster.close());
const leader = await cluster.waitForLeader();
const urls = [0, 1, 2].map((i) => cluster.url(i));
const indexOf = (url: string | undefined) => urls.indexOf(url ?? '');

/**
 * Stops node i. StartedNode.stop() closes the HTTP server first, and that
 * waits for open SSE streams, which end only when the node itself stops (see
 * the report): stop the node's core first so its watches get `event: closed`.
 */
async function stopNode(i: number): Promise<void> {
  await cluster.nodes[i]?.node.stop();
  await cluster.stopNode(i);
}

t.test('a dead endpoint listed first: calls go to the next one', async (t) => {
  const client = new Client({ endpoints: [await deadUrl(), ...urls] });
  t.teardown(() => client.close());
  const put = await client.put('fo/dead-first', 'v');
  t.equal((await client.get('fo/dead-first')).kv.modRevision, put.revision);
  t.equal(client.transport.current, urls[0], 'the live endpoint is now preferred');
  t.equal((await client.status()).members, 3);
});

t.test(
  'a watch sees every revision exactly once across a cut connection and a stopped node',
  async (t) => {
    // The watch starts on a follower; writes go through another node.
    const follower = [0, 1, 2].find((i) => i !== leader)!;
    const other = [0, 1, 2].find((i) => i !== leader && i !== follower)!;
    const watcher = new Client({
      endpoints: [urls[follower]!, urls[leader]!, urls[other]!],
      retryAfterMaxMs: 200,
    });
    const writer = new Client({
      endpoints: [urls[other]!, urls[leader]!, urls[follower]!],
      retryAfterMaxMs: 200,
    });
    t.teardown(() => Promise.all([watcher.close(), writer.close()]));

    const w = watcher.watch('fo/w/', { prefix: true });
    const seen: number[] = [];
    const disruptions: Promise<void>[] = [];
    const endpointsUsed = new Set<string>();
    const consumed = (async () => {
      for await (const change of w as AsyncIterable<WatchResponse>) {
        seen.push(change.revision);
        endpointsUsed.add(w.endpoint!);
        t.equal(change.events.length, 1);
        if (seen.length === 10) {
          // Cut every connection of the node serving the watch (no `event: closed`).
          t.equal(indexOf(w.endpoint), follower, 'the watch started on the follower');
          cluster.nodes[follower]!.app.server.closeAllConnections();
        }
        if (seen.length === 25) {
          // By now the watch moved to the next endpoint, the leader: stop it.
          const serving = indexOf(w.endpoint);
          t.equal(serving, leader, 'the watch moved on to the next endpoint');
          disruptions.push(stopNode(serving));
        }
      }
    })();
    // Let the watch pin its start revision before writing.
    await until(() => w.revision !== undefined, 5_000, 'the watch to start');

    const written: number[] = [];
    for (let i = 0; i < 45; i++) {
      const put = await writer.put(`fo/w/${i}`, `v${i}`);
      written.push(put.revision);
    }
    await until(() => (w.revision ?? 0) >= written.at(-1)!, 10_000, 'the watch to catch up');
    w.close();
    await consumed;
    await Promise.all(disruptions);

    t.strictSame(seen, written, 'every written revision, once, in order');
    t.ok(w.connections >= 3, `reconnected (${w.connections} streams)`);
    t.ok(endpointsUsed.size >= 3, 'served by three nodes in turn');
    // Each key was written once: a write retried after the leader stopped was not applied twice.
    const listed = await writer.list({ prefix: 'fo/w/' });
    t.equal(listed.kvs.length, 45);
    t.ok(
      listed.kvs.every((kv) => kv.version === 1),
      'no write applied twice',
    );
  },
);

t.test('after a node stopped, a client that preferred it fails over', async (t) => {
  const stopped = cluster.nodes.indexOf(undefined);
  t.ok(stopped >= 0, 'a node is down');
  const client = new Client({
    endpoints: [urls[stopped]!, ...urls.filter((_, i) => i !== stopped)],
  });
  t.teardown(() => client.close());
  const put = await client.put('fo/after', 'x');
  t.equal((await client.get('fo/after', { minRevision: put.revision })).kv.value, 'x');
  t.not(client.transport.current, urls[stopped]);
  const health = await client.health({ endpoint: urls[stopped] }).catch((e: unknown) => e);
  t.match(health, { code: 'unavailable', status: 0 }, 'the stopped node itself is unreachable');
});
