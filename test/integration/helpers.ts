import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, utimesSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type StartedNode, startNode } from '../../src/index.js';
import type { NodeConfig } from '../../src/server/config.js';
import type { NodeOptions } from '../../src/server/node.js';
import { FaultFilter } from '../../src/transport/index.js';
import {
  clientScheme,
  enableTestAuth,
  makePeerCerts,
  PEER_TLS,
  peerScheme,
  peerTlsConfig,
} from './peer-tls.js';

/**
 * A free TCP port on 127.0.0.1, released right away for a node to take. Drawn
 * at random below Linux's ephemeral range (32768–60999): a port the kernel
 * hands out for listen(0) can be taken meanwhile as the local port of another
 * test's outgoing connection, which made members fail to start with "address
 * in use" now and then.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    // Ports drawn at the same time are all free until a node takes one: never hand one out twice,
    // in this process or in another test file running beside it.
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (claimAcrossProcesses(port) && (await canListen(port))) return port;
  }
  return listenOn(0);
}

/** Ports this process handed out; a test process starts at most a few hundred nodes. */
const handedOut = new Set<number>();

/**
 * Claims `port` for this process among the test files that run at once (tap runs two): a
 * file named after it, created exclusively. Without it, two files drew the same port now and
 * then, and the second member to bind it failed with "address in use". A claim older than
 * CLAIM_STALE_MS is left over from an earlier run and is taken over; a test file runs for 5
 * minutes at most.
 */
export function claimAcrossProcesses(port: number): boolean {
  const file = join(PORT_CLAIMS_DIR, String(port));
  try {
    mkdirSync(PORT_CLAIMS_DIR, { recursive: true });
    closeSync(openSync(file, 'wx'));
    return true;
  } catch (err) {
    // Claims cannot be made here at all: the listen check alone decides, as before.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return true;
  }
  try {
    if (Date.now() - statSync(file).mtimeMs < CLAIM_STALE_MS) return false;
    const now = new Date();
    utimesSync(file, now, now);
    return true;
  } catch {
    return false;
  }
}

export const PORT_CLAIMS_DIR = join(tmpdir(), 'raftkv-test-port-claims');
const CLAIM_STALE_MS = 10 * 60_000;

function canListen(port: number): Promise<boolean> {
  return listenOn(port).then(
    () => true,
    () => false,
  );
}

function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const actual = (srv.address() as { port: number }).port;
      srv.close(() => resolve(actual));
    });
  });
}

export interface TestCluster {
  nodes: (StartedNode | undefined)[];
  names: string[];
  configs: Partial<NodeConfig>[];
  filters: FaultFilter[];
  dir: string;
  url(i: number): string;
  leaderIndex(): number;
  waitForLeader(timeoutMs?: number): Promise<number>;
  stopNode(i: number): Promise<void>;
  restartNode(i: number): Promise<void>;
  close(): Promise<void>;
}

/** n nodes in this process over real HTTP on 127.0.0.1, fast ticks, each with a fault filter on its transport. */
/**
 * Configs for founding members `names` on free loopback ports, data under
 * `dir`, with the fast timing of these tests; startCluster() starts them.
 */
export async function clusterConfigs(
  dir: string,
  names: string[],
  overrides: Partial<NodeConfig> = {},
): Promise<
  (Partial<NodeConfig> & Pick<NodeConfig, 'name' | 'dataDir' | 'listenClient' | 'listenPeer'>)[]
> {
  const peerPorts = await Promise.all(names.map(() => freePort()));
  const clientPorts = await Promise.all(names.map(() => freePort()));
  const initialCluster = new Map(
    names.map((name, i) => [name, `${peerScheme()}://127.0.0.1:${peerPorts[i]}`]),
  );
  const certs = PEER_TLS ? await makePeerCerts(dir, names) : undefined;
  return names.map((name, i) => ({
    ...(certs ? peerTlsConfig(certs, name) : {}),
    name,
    dataDir: join(dir, name),
    listenClient: `127.0.0.1:${clientPorts[i]}`,
    listenPeer: `127.0.0.1:${peerPorts[i]}`,
    initialCluster,
    tickMs: 20,
    electionTicks: 10,
    heartbeatTicks: 1,
    requestTimeoutMs: 3000,
    logLevel: 'silent',
    ...overrides,
  }));
}

export async function startCluster(
  n: number,
  overrides: Partial<NodeConfig> = {},
  /** Options of each node beyond its fault filter (e.g. a logger that captures its lines). */
  nodeOptions: (name: string) => NodeOptions = () => ({}),
): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-it-'));
  const names = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const configs = await clusterConfigs(dir, names, overrides);
  const clientPorts = configs.map((c) => Number(c.listenClient.split(':')[1]));
  const filters = names.map(() => new FaultFilter({ seed: 1 }));
  const started = await Promise.allSettled(
    configs.map((c, i) => startNode(c, { ...nodeOptions(c.name), faultFilter: filters[i]! })),
  );
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    // Stop the members that did start, or their servers keep the test process alive.
    await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    rmSync(dir, { recursive: true, force: true });
    throw failed.reason;
  }
  const nodes: (StartedNode | undefined)[] = started.map(
    (r) => (r as PromiseFulfilledResult<StartedNode>).value,
  );
  const cluster: TestCluster = {
    nodes,
    names,
    configs,
    filters,
    dir,
    url: (i) => `${clientScheme()}://127.0.0.1:${clientPorts[i]}`,
    leaderIndex: () => nodes.findIndex((s) => s?.node.statusSync().role === 'leader'),
    async waitForLeader(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const i = cluster.leaderIndex();
        if (i >= 0) {
          await enableTestAuth(cluster.url(i));
          return i;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error('no leader elected in time');
    },
    async stopNode(i) {
      await nodes[i]?.stop();
      nodes[i] = undefined;
    },
    async restartNode(i) {
      if (nodes[i]) return;
      nodes[i] = await startNode(configs[i]!, {
        ...nodeOptions(configs[i]!.name),
        faultFilter: filters[i]!,
      });
    },
    async close() {
      await Promise.all(nodes.map((s) => s?.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/**
 * A new member `name` of cluster `c`, started with --join on the given loopback
 * ports, as an operator would after adding it (POST /v1/cluster/members).
 */
export async function startJoiner(
  c: TestCluster,
  name: string,
  peerPort: number,
  clientPort: number,
): Promise<StartedNode> {
  const initialCluster = new Map(c.configs[0]!.initialCluster);
  initialCluster.set(name, `${peerScheme()}://127.0.0.1:${peerPort}`);
  return startNode({
    ...c.configs[0],
    name,
    dataDir: join(c.dir, name),
    listenPeer: `127.0.0.1:${peerPort}`,
    listenClient: `127.0.0.1:${clientPort}`,
    initialCluster,
    join: true,
  });
}

export async function json(res: Response): Promise<{ status: number; body: any }> {
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** One JSON request (`body` sent as JSON when given) and its parsed answer. */
export async function request(url: string, method: string, path: string, body?: unknown) {
  return json(
    await fetch(`${url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
  );
}

export async function put(
  url: string,
  key: string,
  value: string,
  headers: Record<string, string> = {},
) {
  return json(
    await fetch(`${url}/v1/kv/${encodeURIComponent(key)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ value }),
    }),
  );
}

export async function get(url: string, key: string, query = '') {
  return json(await fetch(`${url}/v1/kv/${encodeURIComponent(key)}${query}`));
}
