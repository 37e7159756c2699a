/**
 * A node's TLS settings, checked before anything starts: the flags go in
 * pairs, peer URLs say https:// exactly when peer TLS is on, and (secure by
 * default) a port that listens beyond loopback has TLS unless `insecure`.
 * Then the material is loaded once for the node: the client API's and the
 * peer port's (the peer material serves both TLS sides of every peer link).
 */
import { BlockList, isIP } from 'node:net';
import { type TlsLogger, TlsMaterial } from '../tls/index.js';
import { type NodeConfig, parseHostPort } from './config.js';
import { ServerError } from './errors.js';

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 (in any spelling, and IPv4-mapped loopback), and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && loopback.check(h, family === 6 ? 'ipv6' : 'ipv4');
}

export const clientTlsEnabled = (c: Partial<NodeConfig>): boolean =>
  c.clientCertFile !== undefined && c.clientKeyFile !== undefined;
export const peerTlsEnabled = (c: Partial<NodeConfig>): boolean =>
  c.peerCertFile !== undefined && c.peerKeyFile !== undefined;

const invalid = (message: string) => new ServerError('invalid_request', message);

function checkPair(cert: string | undefined, key: string | undefined, kind: string): void {
  if ((cert === undefined) !== (key === undefined)) {
    const [given, missing] = cert === undefined ? ['key', 'cert'] : ['cert', 'key'];
    throw invalid(
      `--${kind}-${given}-file is set but --${kind}-${missing}-file is not: ${kind} TLS needs both`,
    );
  }
}

function howToSetUp(kind: 'client' | 'peer', address: string): string {
  const host = parseHostPort(address, `--listen-${kind}`).host;
  const example = host === '0.0.0.0' || host === '::' ? '<this host name or IP>' : host;
  const flags =
    kind === 'client'
      ? '--client-cert-file certs/n1.crt --client-key-file certs/n1.key ' +
        '(and --client-ca-file certs/ca.crt to require client certificates)'
      : '--peer-cert-file certs/n1.crt --peer-key-file certs/n1.key --peer-ca-file certs/ca.crt ' +
        '(and https:// peer URLs)';
  return (
    `--listen-${kind} ${address} is not a loopback address, and the ${kind} port has no TLS: ` +
    (kind === 'client'
      ? 'anyone who reaches it could read and change every key.'
      : 'anyone who reaches it could send Raft messages and writes to the cluster.') +
    '\nSet TLS up:\n' +
    '  raftkv certs create-ca --dir certs\n' +
    `  raftkv certs create-node --dir certs --name n1 --host ${example} --host localhost --host 127.0.0.1\n` +
    `then start with ${flags}.\n` +
    `Or pass --insecure (RAFTKV_INSECURE=true) to serve plain HTTP on ${address} anyway.`
  );
}

/**
 * Throws ServerError `invalid_request` with a message for the operator when
 * the TLS settings cannot work or are not safe. Touches nothing.
 */
export function checkTlsConfig(config: NodeConfig): void {
  checkPair(config.clientCertFile, config.clientKeyFile, 'client');
  checkPair(config.peerCertFile, config.peerKeyFile, 'peer');
  if (config.clientCaFile !== undefined && !clientTlsEnabled(config)) {
    throw invalid(
      '--client-ca-file needs --client-cert-file and --client-key-file: client certificates are checked over TLS',
    );
  }
  const peerTls = peerTlsEnabled(config);
  if (peerTls && config.peerCaFile === undefined) {
    throw invalid(
      '--peer-cert-file and --peer-key-file need --peer-ca-file: peers verify each other against that CA (mutual TLS)',
    );
  }
  if (!peerTls && config.peerCaFile !== undefined) {
    throw invalid('--peer-ca-file needs --peer-cert-file and --peer-key-file');
  }
  const scheme = peerTls ? 'https:' : 'http:';
  const peerUrls: [string, string][] = [
    ...[...config.initialCluster].map(([name, url]): [string, string] => [
      `--initial-cluster ${name}=${url}`,
      url,
    ]),
    [`--advertise-peer-url ${config.advertisePeerUrl}`, config.advertisePeerUrl],
  ];
  for (const [where, url] of peerUrls) {
    if (new URL(url).protocol !== scheme) {
      throw invalid(
        peerTls
          ? `${where}: peer TLS is on, so peer URLs must be https://`
          : `${where}: an https:// peer URL needs --peer-cert-file, --peer-key-file and --peer-ca-file`,
      );
    }
  }
  if (config.insecure) return;
  const client = parseHostPort(config.listenClient, '--listen-client');
  if (!clientTlsEnabled(config) && !isLoopbackHost(client.host)) {
    throw invalid(howToSetUp('client', config.listenClient));
  }
  const peer = parseHostPort(config.listenPeer, '--listen-peer');
  if (!peerTls && !isLoopbackHost(peer.host)) {
    throw invalid(howToSetUp('peer', config.listenPeer));
  }
}

/** The node's loaded TLS material; absent parts are plain HTTP. */
export interface NodeTls {
  readonly client: TlsMaterial | undefined;
  readonly peer: TlsMaterial | undefined;
  /** Re-reads every file (SIGHUP); true when all of them were taken. Never rejects. */
  reload(): Promise<boolean>;
  /** Stops watching the files. */
  close(): void;
}

/** Loads the material `config` names; a file that cannot serve is a ServerError naming it. */
export async function loadNodeTls(config: NodeConfig, logger?: TlsLogger): Promise<NodeTls> {
  const load = async (
    label: string,
    certFile: string | undefined,
    keyFile: string | undefined,
    caFile: string | undefined,
  ): Promise<TlsMaterial | undefined> => {
    if (certFile === undefined || keyFile === undefined) return undefined;
    try {
      return await TlsMaterial.load(
        { certFile, keyFile, ...(caFile !== undefined ? { caFile } : {}) },
        { label, ...(logger ? { logger } : {}) },
      );
    } catch (err) {
      throw invalid((err as Error).message);
    }
  };
  const client = await load(
    'client',
    config.clientCertFile,
    config.clientKeyFile,
    config.clientCaFile,
  );
  let peer: TlsMaterial | undefined;
  try {
    peer = await load('peer', config.peerCertFile, config.peerKeyFile, config.peerCaFile);
  } catch (err) {
    client?.close();
    throw err;
  }
  return {
    client,
    peer,
    async reload() {
      const results = await Promise.all([client?.reload() ?? true, peer?.reload() ?? true]);
      return results.every(Boolean);
    },
    close() {
      client?.close();
      peer?.close();
    },
  };
}
