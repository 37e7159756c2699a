/** In-process nodes on 127.0.0.1 ephemeral ports, wired with HttpTransport. */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import type { Message, NodeId } from '../../src/raft/messages.js';
import { HttpTransport, type HttpTransportOptions } from '../../src/transport/http-transport.js';

export const CLUSTER = 'test-cluster';

export interface TestNode {
  id: NodeId;
  url: string;
  transport: HttpTransport;
  received: Message[];
  snapshotRequests: number;
  unreachable: NodeId[];
  snapshotStatus: Array<[NodeId, boolean]>;
  server: FastifyInstance;
}

/** Starts `ids` as nodes that all know each other; everything is closed at teardown. */
export async function startNodes(
  t: Test,
  ids: NodeId[],
  extra: (id: NodeId) => Partial<HttpTransportOptions> = () => ({}),
): Promise<Map<NodeId, TestNode>> {
  const nodes = new Map<NodeId, TestNode>();
  for (const id of ids) {
    const node = {
      id,
      received: [],
      snapshotRequests: 0,
      unreachable: [],
      snapshotStatus: [],
    } as unknown as TestNode;
    node.transport = new HttpTransport({
      nodeId: id,
      clusterId: CLUSTER,
      onMessage: (m) => node.received.push(m),
      onUnreachable: (to) => node.unreachable.push(to),
      onSnapshotStatus: (to, ok) => node.snapshotStatus.push([to, ok]),
      logger: { warn: () => {}, error: () => {} },
      ...extra(id),
    });
    // The node's own peer server, as src/server would build it: the transport's routes plus
    // a hook that counts snapshot requests.
    const server = Fastify({ logger: false });
    server.addHook('onRequest', (req, _reply, done) => {
      if (req.url === '/raft/snapshot') node.snapshotRequests++;
      done();
    });
    await server.register(node.transport.routes);
    await server.listen({ host: '127.0.0.1', port: 0 });
    const address = server.server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    node.server = server;
    node.url = `http://127.0.0.1:${address.port}`;
    nodes.set(id, node);
  }
  for (const a of nodes.values()) {
    for (const b of nodes.values()) if (a !== b) a.transport.addPeer(b.id, b.url);
  }
  t.teardown(() => closeNodes(nodes));
  return nodes;
}

/** A transport with no server of its own, for talking to a fake peer; records unreachable reports. */
export function sender(
  nodeId: NodeId,
  options: Partial<HttpTransportOptions> = {},
): { transport: HttpTransport; unreachable: NodeId[] } {
  const unreachable: NodeId[] = [];
  const transport = new HttpTransport({
    nodeId,
    clusterId: CLUSTER,
    onMessage: () => {},
    onUnreachable: (to) => unreachable.push(to),
    logger: { warn: () => {}, error: () => {} },
    ...options,
  });
  return { transport, unreachable };
}

export async function closeNodes(nodes: Map<NodeId, TestNode>): Promise<void> {
  await Promise.all([...nodes.values()].map((n) => n.transport.close()));
  await Promise.all([...nodes.values()].map((n) => n.server.close()));
}

/** Polls `condition` until it holds; fails after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free port: listen, note it, close. Nothing listens there afterwards (for "peer down"). */
export async function deadUrl(): Promise<string> {
  const app = Fastify({ logger: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  await app.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}`;
}
