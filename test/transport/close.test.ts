/**
 * close() in the middle of everything — a request hanging on a slow peer, a
 * snapshot in flight, a delayed message, queued messages — leaves no socket,
 * server or timer behind, and no unhandled rejection.
 */
import Fastify from 'fastify';
import t from 'tap';
import { message } from '../../src/raft/messages.js';
import { FaultFilter } from '../../src/transport/fault-filter.js';
import { closeNodes, sleep, startNodes, waitFor } from './helpers.js';

const WATCHED = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout', 'Immediate'];

function watchedResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of WATCHED) counts[name] = 0;
  for (const name of process.getActiveResourcesInfo()) {
    if (name in counts) counts[name]!++;
  }
  return counts;
}

t.test('close() aborts in-flight work and releases every handle', async (t) => {
  const before = watchedResources();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => {
    process.off('unhandledRejection', onUnhandled);
  });

  // A peer that never answers.
  const hang = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024, forceCloseConnections: true });
  t.teardown(() => hang.close());
  let requestsSeen = 0;
  hang.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_r, b, done) =>
    done(null, b),
  );
  hang.post('/raft/*', () => {
    requestsSeen++;
    return new Promise(() => {});
  });
  await hang.listen({ host: '127.0.0.1', port: 0 });
  const address = hang.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');

  const filter = new FaultFilter();
  const nodes = await startNodes(t, ['n1', 'n2', 'n3'], () => ({ filter }));
  const n1 = nodes.get('n1')!;
  n1.transport.addPeer('hang', `http://127.0.0.1:${address.port}`);

  // Traffic everywhere, and work left in every state.
  for (const to of ['n2', 'n3', 'hang']) {
    n1.transport.send([message({ type: 'heartbeat', from: 'n1', to })]);
  }
  n1.transport.send([
    message({
      type: 'snap',
      from: 'n1',
      to: 'hang',
      snapshot: {
        metadata: { index: 1, term: 1, confState: { voters: [], learners: [] } },
        data: new Uint8Array(3 * 1024 * 1024),
      },
    }),
  ]);
  await waitFor(() => requestsSeen === 2, 3000, 'both requests hanging');
  await waitFor(
    () => nodes.get('n2')!.received.length === 1 && nodes.get('n3')!.received.length === 1,
  );
  n1.transport.send([message({ type: 'heartbeat', from: 'n1', to: 'hang' })]); // queued
  filter.delay(10_000, 'n2', 'n1');
  nodes.get('n2')!.transport.send([message({ type: 'heartbeat', from: 'n2', to: 'n1' })]);

  await closeNodes(nodes);
  await hang.close();
  await sleep(50);

  t.same(watchedResources(), before, 'no sockets, servers or timers left');
  t.same(unhandled, [], 'no unhandled rejections');
  t.same(n1.snapshotStatus, [], 'no callbacks after close');
  t.same(nodes.get('n1')!.received, [], 'the delayed message was never delivered');
});
