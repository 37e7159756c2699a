/**
 * raftkv as a library: run a node inside your own process, and talk to any
 * cluster with the client.
 *
 *   import { startNode } from 'raftkv';
 *   const node = await startNode({ name: 'n1', dataDir: './data' });
 *   console.log(node.clientUrl);
 */
import type tls from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp, clientConnections } from './api/app.js';
import type { BackupHeader } from './server/backup.js';
import { defaultConfig, type NodeConfig, parseHostPort } from './server/config.js';
import { checkConfig } from './server/config-check.js';
import { restoreDataDir } from './server/data-dir-setup.js';
import { ServerError } from './server/errors.js';
import { KvService } from './server/kv-service.js';
import { createLogger } from './server/logger.js';
import { type NodeOptions, RaftKvNode } from './server/node.js';
import { checkListenAddresses, listenErrorMessage } from './server/port-check.js';
import {
  checkTlsConfig,
  clientTlsEnabled,
  loadNodeTls,
  peerTlsEnabled,
} from './server/tls-config.js';
import { httpsServerOptions, logRefusedHandshakes, serveReloads } from './tls/index.js';

export * from './client/index.js';
export type { BackupHeader } from './server/backup.js';
export { defaultConfig, type NodeConfig, parseInitialCluster } from './server/config.js';
export { MemberRemovedError, ServerError } from './server/errors.js';
export { createLogger, type LogFormat } from './server/logger.js';
export { RaftKvNode } from './server/node.js';
export { isLoopbackHost } from './server/tls-config.js';
export { peerCertificateCommonName } from './tls/index.js';

export interface StartedNode {
  node: RaftKvNode;
  /** Where the client API listens, e.g. http://127.0.0.1:7379 (https:// with client TLS). */
  clientUrl: string;
  peerUrl: string;
  app: FastifyInstance;
  /**
   * Re-reads the TLS certificate, key and CA files (what the raftkv command
   * does on SIGHUP; changed files are also noticed within about a second).
   * New connections use the new material, open ones keep theirs. False, with
   * an error logged and the old material kept, when a file was refused.
   */
  reloadTls(): Promise<boolean>;
  /**
   * Graceful stop (what SIGTERM does): the client port takes no new requests (503,
   * `Connection: close`) and closes idle connections at once; a leader hands leadership
   * to the most caught-up voter (bounded by an election timeout); every request taken
   * and every write proposed is answered (bounded by the request timeout); then the
   * peer port and the data dir close. `node.shuttingDown` is true from the start.
   */
  stop(): Promise<void>;
}

type NodeConfigOptions = Partial<NodeConfig> & { initialCluster?: Map<string, string> };

/**
 * The options completed with defaults and checked as a whole (ServerError
 * `invalid_request` naming the flag), before anything touches the data dir.
 */
function completeConfig(options: NodeConfigOptions): NodeConfig {
  const config: NodeConfig = { ...defaultConfig, initialCluster: new Map(), ...options };
  // Advertise what we listen on unless told otherwise.
  if (options.advertiseClientUrl === undefined)
    config.advertiseClientUrl = `${clientTlsEnabled(config) ? 'https' : 'http'}://${config.listenClient}`;
  if (options.advertisePeerUrl === undefined)
    config.advertisePeerUrl = `${peerTlsEnabled(config) ? 'https' : 'http'}://${config.listenPeer}`;
  return checkConfig(config, options.advertisePeerUrl !== undefined);
}

/** raftkv's logger for this member (logger.ts): stdout, with the configured level and format. */
function nodeLogger(config: NodeConfig): Logger {
  return createLogger({ member: config.name, level: config.logLevel, format: config.logFormat });
}

/**
 * Creates `options.dataDir` (missing or empty) from a backup taken with
 * `GET /v1/snapshot`: a founding member of a new cluster — named by the same
 * options a first start takes (`name`, `initialCluster`, `clusterName`, ...) —
 * holding the backup's keys, revisions, history and leases. Restore every
 * founder from the same file, then start each with startNode(). `onStep`
 * is told each step in a line (for a person watching `raftkv restore`). Throws
 * ServerError `invalid_request` for a damaged file or a non-empty dir.
 */
export async function restoreNode(
  options: NodeConfigOptions,
  backup: Uint8Array,
  logger?: Logger,
  onStep?: (step: string) => void,
): Promise<BackupHeader> {
  const config = completeConfig(options);
  const log = logger ?? nodeLogger(config);
  return restoreDataDir(config, backup, log, onStep);
}

/**
 * Starts one node (client API + peer port) in this process. Unspecified
 * options take raftkv's defaults. The TLS settings are checked first
 * (ServerError `invalid_request`: a cert without its key, http:// peer URLs
 * with peer TLS, a non-loopback address without TLS and without `insecure`),
 * then the TLS files are read, before the data dir is touched.
 */
export async function startNode(
  options: NodeConfigOptions = {},
  nodeOptions: NodeOptions = {},
): Promise<StartedNode> {
  const config = completeConfig(options);
  checkTlsConfig(config);
  await checkListenAddresses([
    { flag: '--listen-client', value: config.listenClient },
    { flag: '--listen-peer', value: config.listenPeer },
  ]);
  const log = nodeOptions.logger ?? nodeLogger(config);
  const nodeTls = await loadNodeTls(config, log);
  let node: RaftKvNode;
  try {
    node = await RaftKvNode.start(config, {
      ...nodeOptions,
      logger: log,
      ...(nodeTls.peer ? { peerTls: nodeTls.peer } : {}),
    });
  } catch (err) {
    nodeTls.close();
    throw err;
  }
  const clientTls = nodeTls.client;
  // JSON escaping can make a value up to 6 times longer on the wire (\u0001): the state machine judges the real size.
  const app = buildApp(new KvService(node), {
    bodyLimitBytes: 6 * config.maxValueBytes + 64 * 1024,
    ...(clientTls
      ? {
          https: httpsServerOptions(clientTls, {
            requireClientCert: config.clientCaFile !== undefined,
          }),
        }
      : {}),
  });
  if (clientTls) {
    const server = app.server as unknown as tls.Server;
    serveReloads(server, clientTls);
    logRefusedHandshakes(server, (obj, msg) => log.info(obj, msg), 'client');
  }
  try {
    const { host, port } = parseHostPort(config.listenClient, '--listen-client');
    await app.listen({ host, port });
  } catch (err) {
    nodeTls.close();
    await node.stop();
    throw new ServerError(
      'invalid_request',
      listenErrorMessage('--listen-client', config.listenClient, err),
      { cause: err },
    );
  }
  let stopping: Promise<void> | undefined;
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const host = parseHostPort(config.listenClient, '--listen-client').host;
  return {
    node,
    clientUrl: `${clientTls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    peerUrl: node.peerUrl,
    app,
    reloadTls: () => nodeTls.reload(),
    stop() {
      if (!stopping) stopping = stopStarted(node, app, log).finally(() => nodeTls.close());
      return stopping;
    },
  };
}

/**
 * StartedNode.stop(): the client port closes (no new requests or connections, idle
 * connections cut) while the node hands over and drains; by the time the node has stopped every
 * request it held is answered, so the port's last connections end at once.
 */
async function stopStarted(node: RaftKvNode, app: FastifyInstance, log: Logger): Promise<void> {
  const connections = clientConnections(app);
  // No new requests or connections, idle connections cut (client-connections.ts). The
  // preClose hook that starts this runs right before the listener closes, so a client
  // told `Connection: close` reconnects to a closed port (refused: surely not sent), not
  // to one that accepted its connection and then reset it.
  const httpClosed = app.close().then(
    () => true,
    () => true,
  );
  // Open watch streams would keep the HTTP server from closing: end them.
  node.closeWatches('shutdown');
  await node.stop();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), CLIENT_PORT_CLOSE_GRACE_MS);
  });
  const closed = await Promise.race([httpClosed, late]);
  clearTimeout(timer);
  if (!closed) {
    log.warn(
      { connections: connections.openCount },
      'client connections still open after the node stopped; cutting them',
    );
    connections.destroyAll();
    await httpClosed;
  }
}

/** Responses already answered get this long to be written out before their connections are cut. */
const CLIENT_PORT_CLOSE_GRACE_MS = 2_000;
