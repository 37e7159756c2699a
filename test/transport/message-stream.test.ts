/**
 * The message stream on the wire: the upgrade handshake and its refusals,
 * frames that close the stream instead of delivering, a broken stream
 * replaced, a stream whose reader stopped reading cut after the timeout.
 */
import { Buffer } from 'node:buffer';
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { message } from '../../src/raft/messages.js';
import { encodeRaftFrame } from '../../src/transport/frames.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { CLUSTER, sender, sleep, startNodes, waitFor } from './helpers.js';

const heartbeat = (from: string, to: string, commit: number) =>
  message({ type: 'heartbeat', from, to, term: 1, commit });

/** A raw connection that sends an upgrade request with `headers`; resolves what came back first. */
async function upgrade(
  url: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ socket: net.Socket; head: string }> {
  const { port } = new URL(url);
  const socket = net.connect(Number(port), '127.0.0.1');
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n${lines.join('')}\r\n`);
  const head = await new Promise<string>((resolve) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
  });
  return { socket, head };
}

const streamHeaders = {
  connection: 'Upgrade',
  upgrade: 'raftkv-raft/1',
  'x-raftkv-cluster-id': CLUSTER,
};

const closed = (socket: net.Socket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });

t.test('the upgrade is refused with the status and code of the other peer routes', async (t) => {
  const nodes = await startNodes(t, ['n1']);
  const n1 = nodes.get('n1')!;
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['/raft/stream', { ...streamHeaders, 'x-raftkv-cluster-id': 'other' }, 403, 'wrong_cluster'],
    ['/raft/stream', { ...streamHeaders, upgrade: 'websocket' }, 400, 'bad_message'],
    ['/raft/other', streamHeaders, 404, 'not_found'],
  ];
  for (const [path, headers, status, code] of cases) {
    const { socket, head } = await upgrade(n1.url, path, headers);
    t.match(head, new RegExp(`^HTTP/1.1 ${status} `), `${path} ${status}`);
    const body = await new Promise<string>((resolve) => {
      let text = head.slice(head.indexOf('\r\n\r\n') + 4);
      socket.on('data', (c: Buffer) => {
        text += c.toString();
      });
      socket.on('close', () => resolve(text));
    });
    t.equal((JSON.parse(body) as { code: string }).code, code);
  }
  t.equal(n1.received.length, 0);
});

t.test('a frame cut into single bytes is delivered whole', async (t) => {
  const nodes = await startNodes(t, ['n1']);
  const n1 = nodes.get('n1')!;
  const { socket, head } = await upgrade(n1.url, '/raft/stream', streamHeaders);
  t.teardown(() => socket.destroy());
  t.match(head, /^HTTP\/1.1 101 /);
  const frame = encodeRaftFrame([heartbeat('n0', 'n1', 7), heartbeat('n0', 'n1', 8)]);
  for (const byte of frame) {
    socket.write(Buffer.from([byte]));
    await sleep(0);
  }
  await waitFor(() => n1.received.length === 2);
  t.same(
    n1.received.map((m) => m.commit),
    [7, 8],
  );
});

t.test('a bad frame closes its stream and delivers nothing of it', async (t) => {
  const nodes = await startNodes(t, ['n1']);
  const n1 = nodes.get('n1')!;
  const good = encodeRaftFrame([heartbeat('n0', 'n1', 1)]);
  const otherNode = encodeRaftFrame([heartbeat('n0', 'n1', 2), heartbeat('n0', 'n9', 3)]);
  const unknownKind = Buffer.from(good);
  unknownKind[4] = 9;
  const garbage = Buffer.concat([Buffer.from([0, 0, 0, 4, 1]), Buffer.from([1, 200, 200])]);
  const tooLong = Buffer.from([0x7f, 0xff, 0xff, 0xff]);
  const cases: Array<[string, Buffer]> = [
    ['a message for another node', otherNode],
    ['an unknown frame kind', unknownKind],
    ['a batch that does not decode', garbage],
    ['a length beyond the bound', tooLong],
  ];
  for (const [what, bad] of cases) {
    const { socket } = await upgrade(n1.url, '/raft/stream', streamHeaders);
    socket.write(Buffer.concat([good, bad, good]));
    await closed(socket);
    t.pass(`${what}: stream closed`);
  }
  // Only the good frame before each bad one got through.
  t.same(
    n1.received.map((m) => m.commit),
    [1, 1, 1, 1],
  );
});

t.test('a stream that breaks is reported and replaced at the next send', async (t) => {
  const nodes = await startNodes(t, ['n1', 'n2']);
  const n1 = nodes.get('n1')!;
  const n2 = nodes.get('n2')!;
  n1.transport.send([heartbeat('n1', 'n2', 1)]);
  await waitFor(() => n2.received.length === 1);
  t.equal(n1.transport.stats.streamsOpened, 1);

  // n2 restarts its peer server: every stream into it is cut.
  const port = Number(new URL(n2.url).port);
  await n2.server.close();
  await waitFor(() => n1.unreachable.includes('n2'), 3000, 'break reported');
  const { default: Fastify } = await import('fastify');
  const again = Fastify({ logger: false });
  await again.register(n2.transport.routes);
  await again.listen({ host: '127.0.0.1', port });
  t.teardown(() => again.close());

  // Sends until a stream is open again (dials that fail pause up to 1 s).
  for (let i = 0; i < 100 && n2.received.length < 2; i++) {
    n1.transport.send([heartbeat('n1', 'n2', 2)]);
    await sleep(50);
  }
  t.ok(n2.received.length >= 2, 'delivered on a new stream');
  t.equal(n2.received.at(-1)!.commit, 2);
  t.equal(n1.transport.stats.streamsOpened, 2);
});

t.test('a stream whose reader stopped reading is cut after requestTimeoutMs', async (t) => {
  // Accepts the upgrade, then never reads.
  const stuck = http.createServer((_req, res) => res.writeHead(404).end());
  stuck.on('upgrade', (_req, socket: net.Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: x\r\n\r\n');
    socket.pause();
    // The sender cuts the stream: a reset on this side is expected, not a test failure.
    socket.on('error', () => {});
  });
  // Every connection, upgraded or not (an upgraded one is the same socket): n1 may be
  // redialing when the test ends, and close() waits for connections the server still counts.
  const connections = new Set<net.Socket>();
  stuck.on('connection', (socket: net.Socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
  });
  await new Promise<void>((resolve) => stuck.listen(0, '127.0.0.1', resolve));
  const { port } = stuck.address() as net.AddressInfo;
  const { transport: n1, unreachable } = sender('n1', {
    requestTimeoutMs: 300,
    maxQueuedBytes: 1 << 30,
  });
  t.teardown(async () => {
    await n1.close();
    for (const s of connections) s.destroy();
    await new Promise((resolve) => stuck.close(resolve));
  });
  n1.addPeer('stuck', `http://127.0.0.1:${port}`);
  const data = new Uint8Array(256 * 1024);
  // Bounded: 64 MiB at most, far beyond what the kernel buffers on loopback.
  for (let i = 0; i < 256 && unreachable.length === 0; i++) {
    n1.send([
      message({
        type: 'app',
        from: 'n1',
        to: 'stuck',
        entries: [{ term: 1, index: i + 1, type: 'normal', data }],
      }),
    ]);
    await sleep(5);
  }
  await waitFor(() => unreachable.includes('stuck'), 5000, 'stall reported');
  t.ok(n1.stats.batchesFailed >= 1, 'the stalled stream counts as failed');
});

t.test(
  'a peer that had no streams is offered one again once it may have been upgraded',
  async (t) => {
    const { default: Fastify } = await import('fastify');
    // First an older peer: POST batches only (the upgrade gets 404).
    const old = Fastify({ logger: false });
    let posts = 0;
    old.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_r, b, done) =>
      done(null, b),
    );
    old.post('/raft/messages', async (_req, reply) => {
      posts++;
      reply.code(204).send();
    });
    await old.listen({ host: '127.0.0.1', port: 0 });
    const port = (old.server.address() as net.AddressInfo).port;
    const { transport: n1 } = sender('n1', { streamRetryMs: 100 });
    t.teardown(() => n1.close());
    n1.addPeer('n2', `http://127.0.0.1:${port}`);
    n1.send([heartbeat('n1', 'n2', 1)]);
    await waitFor(() => posts === 1, 3000, 'first batch by POST');
    t.equal(n1.stats.streamsOpened, 0);

    // The peer restarts as a node with streams, on the same address.
    await old.close();
    const received: number[] = [];
    const upgraded = new HttpTransport({
      nodeId: 'n2',
      clusterId: CLUSTER,
      onMessage: (m) => received.push(m.commit),
    });
    const app = Fastify({ logger: false });
    await app.register(upgraded.routes);
    await app.listen({ host: '127.0.0.1', port });
    t.teardown(async () => {
      await upgraded.close();
      await app.close();
    });
    for (let i = 0; i < 100 && n1.stats.streamsOpened === 0; i++) {
      n1.send([heartbeat('n1', 'n2', 2)]);
      await sleep(20);
    }
    t.equal(n1.stats.streamsOpened, 1, 'a stream once the retry time passed');
    await waitFor(() => received.includes(2), 3000, 'delivered');
  },
);
