/**
 * The peer routes through app.inject(): no sockets. Cluster id check, batch
 * delivery, and the snapshot chunk protocol with its limits.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { type Message, message } from '../../src/raft/messages.js';
import { encodeBatch } from '../../src/transport/codec.js';
import {
  type PeerReceiveStats,
  type PeerRoutesOptions,
  peerRoutes,
} from '../../src/transport/peer-routes.js';

const CLUSTER = 'cluster-a';

async function build(
  t: Test,
  extra: Partial<PeerRoutesOptions> = {},
): Promise<{ app: FastifyInstance; received: Message[]; stats: PeerReceiveStats }> {
  const received: Message[] = [];
  const stats: PeerReceiveStats = {
    batchesReceived: 0,
    messagesReceived: 0,
    snapshotChunksReceived: 0,
    snapshotsReceived: 0,
  };
  const app = Fastify({ logger: false });
  await app.register(peerRoutes, {
    clusterId: CLUSTER,
    nodeId: 'n2',
    onMessage: (m) => received.push(m),
    stats,
    ...extra,
  });
  t.teardown(() => app.close());
  return { app, received, stats };
}

const binary = (extra: Record<string, string> = {}) => ({
  'content-type': 'application/octet-stream',
  'x-raftkv-cluster-id': CLUSTER,
  ...extra,
});

function snapMessage(dataBytes: number, from = 'n1'): Message {
  return message({
    type: 'snap',
    from,
    to: 'n2',
    term: 4,
    snapshot: {
      metadata: { index: 100, term: 3, confState: { voters: ['n1', 'n2', 'n3'], learners: [] } },
      data: new Uint8Array(dataBytes),
    },
  });
}

/** The body and headers of the first chunk of a transfer (see peer-routes.ts). */
function firstChunk(id: string, m: Message, chunk: Uint8Array, total: number) {
  const meta = encodeBatch([{ ...m, snapshot: { ...m.snapshot!, data: new Uint8Array(0) } }]);
  return {
    headers: binary({
      'x-raftkv-snapshot-id': id,
      'x-raftkv-snapshot-offset': '0',
      'x-raftkv-snapshot-total': String(total),
      'x-raftkv-snapshot-meta-bytes': String(meta.byteLength),
    }),
    payload: Buffer.concat([meta, chunk]),
  };
}

function laterChunk(id: string, offset: number, chunk: Uint8Array, total: number) {
  return {
    headers: binary({
      'x-raftkv-snapshot-id': id,
      'x-raftkv-snapshot-offset': String(offset),
      'x-raftkv-snapshot-total': String(total),
    }),
    payload: Buffer.from(chunk),
  };
}

t.test('health answers 200 to our cluster and 403 to any other', async (t) => {
  const { app } = await build(t);
  const ok = await app.inject({
    method: 'GET',
    url: '/raft/health',
    headers: { 'x-raftkv-cluster-id': CLUSTER },
  });
  t.equal(ok.statusCode, 200);
  t.same(ok.json(), { status: 'ok', nodeId: 'n2' });
  const foreign = await app.inject({
    method: 'GET',
    url: '/raft/health',
    headers: { 'x-raftkv-cluster-id': 'cluster-b' },
  });
  t.equal(foreign.statusCode, 403);
  t.equal(foreign.json().code, 'wrong_cluster');
  const missing = await app.inject({ method: 'GET', url: '/raft/health' });
  t.equal(missing.statusCode, 403, 'no cluster id is no cluster of ours');
});

t.test('a batch is delivered in order, once; another cluster delivers nothing', async (t) => {
  const { app, received, stats } = await build(t);
  const batch = [1, 2, 3].map((i) =>
    message({ type: 'heartbeat', from: 'n1', to: 'n2', commit: i }),
  );
  const res = await app.inject({
    method: 'POST',
    url: '/raft/messages',
    headers: binary(),
    payload: encodeBatch(batch),
  });
  t.equal(res.statusCode, 204);
  t.same(received, batch);
  t.same(stats, {
    batchesReceived: 1,
    messagesReceived: 3,
    snapshotChunksReceived: 0,
    snapshotsReceived: 0,
  });

  const foreign = await app.inject({
    method: 'POST',
    url: '/raft/messages',
    headers: binary({ 'x-raftkv-cluster-id': 'cluster-b' }),
    payload: encodeBatch(batch),
  });
  t.equal(foreign.statusCode, 403);
  t.equal(received.length, 3);
});

t.test('bad bodies get 4xx with a code, and deliver nothing', async (t) => {
  const { app, received } = await build(t, { maxBatchBytes: 1024 });
  const post = (payload: Buffer, headers = binary()) =>
    app.inject({ method: 'POST', url: '/raft/messages', headers, payload });

  const garbage = await post(Buffer.from([1, 200, 200, 200]));
  t.equal(garbage.statusCode, 400);
  t.equal(garbage.json().code, 'bad_message');

  const future = await post(Buffer.from([9, 0]));
  t.equal(future.statusCode, 400);
  t.equal(future.json().code, 'unsupported_version');

  const misdirected = await post(
    encodeBatch([
      message({ type: 'heartbeat', from: 'n1', to: 'n2' }),
      message({ type: 'heartbeat', from: 'n1', to: 'n3' }),
    ]),
  );
  t.equal(misdirected.statusCode, 421);
  t.equal(misdirected.json().code, 'wrong_node');

  const big = await post(Buffer.alloc(2048, 1));
  t.equal(big.statusCode, 413);
  t.equal(big.json().code, 'too_large');

  const json = await post(Buffer.from('{}'), {
    'content-type': 'application/json',
    'x-raftkv-cluster-id': CLUSTER,
  });
  t.equal(json.statusCode, 400, 'JSON is not a batch');

  t.equal(received.length, 0, 'none of them delivered anything');
});

t.test('a handler that throws does not stop the rest of the batch', async (t) => {
  const received: Message[] = [];
  const { app } = await build(t, {
    onMessage: (m) => {
      if (m.commit === 2) throw new Error('boom');
      received.push(m);
    },
  });
  const batch = [1, 2, 3].map((i) =>
    message({ type: 'heartbeat', from: 'n1', to: 'n2', commit: i }),
  );
  const res = await app.inject({
    method: 'POST',
    url: '/raft/messages',
    headers: binary(),
    payload: encodeBatch(batch),
  });
  t.equal(res.statusCode, 204);
  t.same(
    received.map((m) => m.commit),
    [1, 3],
  );
});

t.test('chunks are reassembled into one snap message', async (t) => {
  const { app, received, stats } = await build(t);
  const total = 10_000;
  const data = Uint8Array.from({ length: total }, (_, i) => (i * 31) % 251);
  const m = snapMessage(0);
  const first = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...firstChunk('t1', m, data.subarray(0, 4000), total),
  });
  t.equal(first.statusCode, 204);
  t.equal(received.length, 0, 'nothing before the last chunk');
  for (const offset of [4000, 8000]) {
    const res = await app.inject({
      method: 'POST',
      url: '/raft/snapshot',
      ...laterChunk('t1', offset, data.subarray(offset, offset + 4000), total),
    });
    t.equal(res.statusCode, 204);
  }
  t.equal(received.length, 1);
  t.same(received[0]!.snapshot!.metadata, m.snapshot!.metadata);
  t.ok(Buffer.from(received[0]!.snapshot!.data).equals(Buffer.from(data)), 'data whole');
  t.equal(stats.snapshotChunksReceived, 3);
  t.equal(stats.snapshotsReceived, 1);

  // An empty snapshot is one chunk.
  const empty = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...firstChunk('t2', m, new Uint8Array(0), 0),
  });
  t.equal(empty.statusCode, 204);
  t.equal(received.length, 2);
  t.equal(received[1]!.snapshot!.data.byteLength, 0);
});

t.test('a chunk out of order or of an unknown transfer is refused', async (t) => {
  const { app, received } = await build(t);
  const m = snapMessage(0);
  const unknown = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...laterChunk('nope', 100, new Uint8Array(10), 200),
  });
  t.equal(unknown.statusCode, 409);
  t.equal(unknown.json().code, 'snapshot_out_of_order');

  await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...firstChunk('t1', m, new Uint8Array(100), 300),
  });
  const skipped = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...laterChunk('t1', 200, new Uint8Array(100), 300),
  });
  t.equal(skipped.statusCode, 409, 'a gap');
  const after = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...laterChunk('t1', 100, new Uint8Array(100), 300),
  });
  t.equal(after.statusCode, 409, 'the transfer was abandoned');

  const noHeaders = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    headers: binary(),
    payload: Buffer.alloc(1),
  });
  t.equal(noHeaders.statusCode, 400);
  const notSnap = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...firstChunk('t3', m, new Uint8Array(1), 1),
    payload: Buffer.concat([encodeBatch([message({ type: 'app', from: 'n1', to: 'n2' })])]),
  });
  t.equal(notSnap.statusCode, 400, 'metadata that is not a snap message');
  t.equal(received.length, 0);
});

t.test('incomplete transfers are bounded in size, memory and time', async (t) => {
  const { app, received } = await build(t, {
    maxSnapshotBytes: 1000,
    maxPendingSnapshotBytes: 1500,
    snapshotIdleTimeoutMs: 50,
  });
  const tooBig = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...firstChunk('big', snapMessage(0), new Uint8Array(10), 1001),
  });
  t.equal(tooBig.statusCode, 413);

  const a = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...firstChunk('a', snapMessage(0, 'n1'), new Uint8Array(10), 1000),
  });
  t.equal(a.statusCode, 204);
  const b = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...firstChunk('b', snapMessage(0, 'n3'), new Uint8Array(10), 1000),
  });
  t.equal(b.statusCode, 503, 'a second sender would exceed the pending budget');
  t.equal(b.json().code, 'snapshot_busy');

  // The same sender starting over replaces its own transfer instead.
  const a2 = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...firstChunk('a2', snapMessage(0, 'n1'), new Uint8Array(10), 1000),
  });
  t.equal(a2.statusCode, 204);
  const oldA = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...laterChunk('a', 10, new Uint8Array(10), 1000),
  });
  t.equal(oldA.statusCode, 409, 'the replaced transfer is gone');

  // After the idle timeout the budget is free again.
  await new Promise((resolve) => setTimeout(resolve, 120));
  const late = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...laterChunk('a2', 10, new Uint8Array(10), 1000),
  });
  t.equal(late.statusCode, 409, 'timed out');
  const b2 = await app.inject({
    method: 'POST',
    url: '/raft/snapshot',
    ...firstChunk('b2', snapMessage(0, 'n3'), new Uint8Array(10), 1000),
  });
  t.equal(b2.statusCode, 204, 'budget released');
  t.equal(received.length, 0);
});

t.test('an octet-stream parser of the parent app does not get in the way', async (t) => {
  const app = Fastify({ logger: false });
  app.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null, 'x'));
  const received: Message[] = [];
  await app.register(peerRoutes, { clusterId: CLUSTER, onMessage: (m) => received.push(m) });
  t.teardown(() => app.close());
  const res = await app.inject({
    method: 'POST',
    url: '/raft/messages',
    headers: binary(),
    payload: encodeBatch([message({ type: 'vote', from: 'n1', to: 'n9' })]),
  });
  t.equal(res.statusCode, 204, 'no nodeId: any addressee is accepted');
  t.equal(received.length, 1);
});
