/**
 * Three HttpTransports on 127.0.0.1 exchanging real messages: batching per
 * tick into stream frames, snapshots in chunks, a peer down, slow or without
 * streams, the cluster id.
 */
import Fastify from 'fastify';
import t from 'tap';
import { request } from 'undici';
import { type Message, message } from '../../src/raft/messages.js';
import { decodeBatch } from '../../src/transport/codec.js';
import { FaultFilter } from '../../src/transport/fault-filter.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { CLUSTER, deadUrl, sender, sleep, startNodes, waitFor } from './helpers.js';

const MIB = 1024 * 1024;

const heartbeat = (from: string, to: string, commit: number): Message =>
  message({ type: 'heartbeat', from, to, term: 1, commit });

t.test('everything sent in one tick goes in one frame per peer, in order', async (t) => {
  const nodes = await startNodes(t, ['n1', 'n2', 'n3']);
  const [n1, n2, n3] = ['n1', 'n2', 'n3'].map((id) => nodes.get(id)!);

  const toN2 = Array.from({ length: 200 }, (_, i) => heartbeat('n1', 'n2', i));
  const toN3 = Array.from({ length: 150 }, (_, i) => heartbeat('n1', 'n3', i));
  // Several send() calls in the same tick, interleaved, as a Ready loop might do.
  n1!.transport.send(toN2.slice(0, 100));
  n1!.transport.send(toN3);
  n1!.transport.send(toN2.slice(100));
  await waitFor(() => n2!.received.length === 200 && n3!.received.length === 150);

  t.equal(n2!.transport.stats.batchesReceived, 1, '200 messages to n2 in one frame');
  t.equal(n3!.transport.stats.batchesReceived, 1, '150 messages to n3 in one frame');
  t.equal(n1!.transport.stats.streamsOpened, 2, 'one stream per peer');
  t.same(n2!.received, toN2, 'in order, intact');
  t.same(n3!.received, toN3);
  t.equal(n1!.transport.stats.batchesSent, 2);
  t.equal(n1!.transport.stats.messagesSent, 350);
  t.equal(n2!.transport.stats.messagesReceived, 200);

  // And back, with appends carrying entries.
  const append = message({
    type: 'app',
    from: 'n2',
    to: 'n1',
    term: 2,
    logTerm: 2,
    index: 10,
    commit: 9,
    entries: [
      { term: 2, index: 11, type: 'normal', data: new TextEncoder().encode('put a=1') },
      { term: 2, index: 12, type: 'confChange', data: new Uint8Array([1, 2, 3]) },
    ],
  });
  const resp = message({ type: 'appResp', from: 'n3', to: 'n1', term: 2, index: 12 });
  n2!.transport.send([append]);
  n3!.transport.send([resp]);
  await waitFor(() => n1!.received.length === 2);
  t.same(
    n1!.received.find((m) => m.type === 'app'),
    append,
  );
  t.same(
    n1!.received.find((m) => m.type === 'appResp'),
    resp,
  );
  t.same([n1!.unreachable, n2!.unreachable, n3!.unreachable], [[], [], []], 'nobody unreachable');
});

t.test('a large flush is split by maxBatchBytes but still not one frame per message', async (t) => {
  const nodes = await startNodes(t, ['n1', 'n2'], () => ({ maxBatchBytes: 64 * 1024 }));
  const n1 = nodes.get('n1')!;
  const n2 = nodes.get('n2')!;
  const data = new Uint8Array(1000);
  const appends = Array.from({ length: 300 }, (_, i) =>
    message({
      type: 'app',
      from: 'n1',
      to: 'n2',
      index: i,
      entries: [{ term: 1, index: i + 1, type: 'normal', data }],
    }),
  );
  n1.transport.send(appends);
  await waitFor(() => n2.received.length === 300);
  const frames = n2.transport.stats.batchesReceived;
  t.ok(frames >= 5 && frames <= 6, `${frames} frames of <= 64 KiB`);
  t.same(
    n2.received.map((m) => m.index),
    appends.map((m) => m.index),
    'still in order across frames',
  );
});

t.test('a 5 MB snapshot arrives whole, in chunks, as one message', async (t) => {
  const nodes = await startNodes(t, ['n1', 'n2']);
  const n1 = nodes.get('n1')!;
  const n2 = nodes.get('n2')!;
  const total = 5 * MIB + 123;
  const data = new Uint8Array(total);
  for (let i = 0; i < total; i++) data[i] = (i * 7 + (i >>> 13)) & 0xff;
  const snap = message({
    type: 'snap',
    from: 'n1',
    to: 'n2',
    term: 5,
    snapshot: {
      metadata: { index: 1000, term: 4, confState: { voters: ['n1', 'n2'], learners: ['n3'] } },
      data,
    },
  });
  // Heartbeats keep flowing on the other connection meanwhile.
  n1.transport.send([snap, heartbeat('n1', 'n2', 1)]);
  await waitFor(() => n1.snapshotStatus.length === 1, 10_000, 'snapshot status');

  t.same(n1.snapshotStatus, [['n2', true]]);
  const snaps = n2.received.filter((m) => m.type === 'snap');
  t.equal(snaps.length, 1, 'one snap message');
  t.same(snaps[0]!.snapshot!.metadata, snap.snapshot!.metadata);
  t.equal(snaps[0]!.term, 5);
  t.ok(Buffer.from(snaps[0]!.snapshot!.data).equals(Buffer.from(data)), 'every byte');
  t.equal(n2.snapshotRequests, 6, '5 MiB + 123 bytes in 1 MiB chunks');
  t.equal(n2.transport.stats.snapshotChunksReceived, 6);
  t.ok(
    n2.received.some((m) => m.type === 'heartbeat'),
    'the heartbeat was not stuck behind the snapshot',
  );
});

t.test('at most one snapshot in flight per peer', async (t) => {
  const nodes = await startNodes(t, ['n1', 'n2'], () => ({ snapshotChunkBytes: 64 * 1024 }));
  const n1 = nodes.get('n1')!;
  const n2 = nodes.get('n2')!;
  const snap = (term: number) =>
    message({
      type: 'snap',
      from: 'n1',
      to: 'n2',
      term,
      snapshot: {
        metadata: { index: 10, term: 1, confState: { voters: ['n1', 'n2'], learners: [] } },
        data: new Uint8Array(256 * 1024).fill(term),
      },
    });
  n1.transport.send([snap(1), snap(2)]);
  await waitFor(() => n1.snapshotStatus.length === 2, 5000, 'two statuses');
  t.same(n1.snapshotStatus, [
    ['n2', false],
    ['n2', true],
  ]);
  t.same(
    n2.received.map((m) => m.term),
    [1],
    'the first one arrived, the second was refused',
  );
  // Once it is done, the next one goes.
  n1.transport.send([snap(3)]);
  await waitFor(() => n2.received.length === 2);
  t.equal(n2.received[1]!.snapshot!.data[0], 3);
});

t.test('a peer that is down blocks nobody else and is reported unreachable', async (t) => {
  const nodes = await startNodes(t, ['n1', 'n2'], () => ({ requestTimeoutMs: 1000 }));
  const n1 = nodes.get('n1')!;
  const n2 = nodes.get('n2')!;
  n1.transport.addPeer('n4', await deadUrl());

  const started = performance.now();
  n1.transport.send([heartbeat('n1', 'n4', 1), heartbeat('n1', 'n2', 1)]);
  await waitFor(() => n2.received.length === 1);
  t.ok(performance.now() - started < 1000, 'n2 served without waiting for n4');
  await waitFor(() => n1.unreachable.includes('n4'), 3000, 'n4 unreachable');
  t.notOk(n1.unreachable.includes('n2'));
  t.equal(n1.transport.stats.batchesFailed, 1);

  // A snapshot to a dead peer fails and says so.
  n1.transport.send([
    message({
      type: 'snap',
      from: 'n1',
      to: 'n4',
      snapshot: {
        metadata: { index: 1, term: 1, confState: { voters: [], learners: [] } },
        data: new Uint8Array(10),
      },
    }),
  ]);
  await waitFor(() => n1.snapshotStatus.length === 1, 3000, 'snapshot status');
  t.same(n1.snapshotStatus, [['n4', false]]);

  // Unknown and removed peers: unreachable, never an exception.
  n1.unreachable.length = 0;
  n1.transport.send([heartbeat('n1', 'n9', 1)]);
  n1.transport.removePeer('n4');
  n1.transport.send([heartbeat('n1', 'n4', 2)]);
  t.same(n1.unreachable, [], 'callbacks never run inside send()');
  await waitFor(() => n1.unreachable.length === 2);
  t.same(n1.unreachable.sort(), ['n4', 'n9']);
});

t.test('a slow peer gets a bounded queue: the oldest messages are dropped', async (t) => {
  // A peer from before message streams (404 to the upgrade, so batches go by POST)
  // that holds every request until released.
  const slow = Fastify({ logger: false });
  const bodies: Buffer[] = [];
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  slow.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_r, b, done) =>
    done(null, b),
  );
  slow.post('/raft/messages', async (req, reply) => {
    bodies.push(req.body as Buffer);
    await released;
    reply.code(204).send();
  });
  await slow.listen({ host: '127.0.0.1', port: 0 });
  const address = slow.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');

  const { transport: n1, unreachable } = sender('n1', { maxQueuedMessages: 10 });
  n1.addPeer('slow', `http://127.0.0.1:${address.port}`);
  t.teardown(async () => {
    release();
    await n1.close();
    await slow.close();
  });

  n1.send([heartbeat('n1', 'slow', 0)]);
  await waitFor(() => bodies.length === 1, 3000, 'first request');
  // The first batch hangs; these queue up behind it, over the bound.
  for (let i = 1; i <= 50; i++) n1.send([heartbeat('n1', 'slow', i)]);
  await waitFor(() => unreachable.length > 0, 3000, 'overflow reported');
  t.same(unreachable, ['slow'], 'one report for the overflow of one tick');
  t.equal(n1.stats.messagesDropped, 40);

  release();
  await waitFor(() => bodies.length === 2, 3000, 'second request');
  t.same(
    decodeBatch(bodies[1]!).map((m) => m.commit),
    [41, 42, 43, 44, 45, 46, 47, 48, 49, 50],
    'the newest 10 survive',
  );
  t.equal(n1.stats.streamsOpened, 0, 'no stream to a peer that has none');
});

t.test('another cluster gets 403 and delivers nothing', async (t) => {
  const nodes = await startNodes(t, ['n1']);
  const n1 = nodes.get('n1')!;
  const { transport: stranger, unreachable } = sender('n2', { clusterId: 'other-cluster' });
  t.teardown(() => stranger.close());
  stranger.addPeer('n1', n1.url);
  stranger.send([heartbeat('n2', 'n1', 1)]);
  await waitFor(() => unreachable.length === 1, 3000, 'refusal noticed');
  t.same(n1.received, []);

  const res = await request(`${n1.url}/raft/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'x-raftkv-cluster-id': 'nope' },
    body: Buffer.from([1, 0]),
  });
  t.equal(res.statusCode, 403);
  t.equal(((await res.body.json()) as { code: string }).code, 'wrong_cluster');

  const health = await request(`${n1.url}/raft/health`, {
    headers: { 'x-raftkv-cluster-id': CLUSTER },
  });
  t.equal(health.statusCode, 200);
  await health.body.dump();
});

t.test('listen() serves the routes itself; close() is idempotent and final', async (t) => {
  const received: Message[] = [];
  const a = new HttpTransport({ nodeId: 'a', clusterId: CLUSTER, onMessage: () => {} });
  const b = new HttpTransport({
    nodeId: 'b',
    clusterId: CLUSTER,
    onMessage: (m) => received.push(m),
  });
  const urlB = await b.listen('127.0.0.1', 0);
  t.match(urlB, /^http:\/\/127\.0\.0\.1:\d+$/);
  a.addPeer('b', urlB);
  a.addPeer('b', urlB); // same address: no-op
  a.send([heartbeat('a', 'b', 7)]);
  await waitFor(() => received.length === 1);
  t.equal(received[0]!.commit, 7);

  await Promise.all([a.close(), a.close(), b.close()]);
  a.send([heartbeat('a', 'b', 8)]); // ignored, no throw
  await sleep(20);
  t.equal(received.length, 1);
  await t.rejects(b.listen(), { code: 'closed' });
});

t.test('a message that cannot be encoded is dropped alone, not with its batch', async (t) => {
  const errors: string[] = [];
  const nodes = await startNodes(t, ['n1', 'n2'], () => ({
    logger: { warn: () => {}, error: (_obj, msg) => errors.push(msg) },
  }));
  const n1 = nodes.get('n1')!;
  const n2 = nodes.get('n2')!;
  n1.transport.send([
    heartbeat('n1', 'n2', 1),
    message({ type: 'hup', from: 'n1', to: 'n2' }),
    heartbeat('n1', 'n2', -1),
    heartbeat('n1', 'n2', 2),
  ]);
  await waitFor(() => n2.received.length === 2);
  t.same(
    n2.received.map((m) => m.commit),
    [1, 2],
  );
  t.equal(n1.transport.stats.messagesDropped, 2);
  t.equal(errors.length, 1, 'logged as the bug it is');
  t.throws(() => n1.transport.addPeer('x', 'ftp://127.0.0.1:1'), TypeError);
});

t.test(
  "probe times a round trip to a peer's health route, and never measures through a fault",
  async (t) => {
    const filter = new FaultFilter();
    const nodes = await startNodes(t, ['n1', 'n2'], () => ({ filter }));
    const n1 = nodes.get('n1')!;
    const ms = await n1.transport.probe('n2');
    t.type(ms, 'number', 'a live peer answers');
    t.ok(ms! >= 0 && ms! < 5000, `in ${ms} ms`);
    t.equal(await n1.transport.probe('n9'), undefined, 'an unknown peer: no figure');
    filter.oneWay('n2', 'n1');
    t.equal(
      await n1.transport.probe('n2'),
      undefined,
      'a fault on the link, either way: no figure',
    );
    filter.heal();
    n1.transport.addPeer('n3', await deadUrl());
    t.equal(await n1.transport.probe('n3', 500), undefined, 'a dead peer: no figure, no throw');
  },
);
