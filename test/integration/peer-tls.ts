/**
 * Fault tests with peer mutual TLS: `RAFTKV_TEST_PEER_TLS=1 npx tap test/integration/…`
 * runs a test's in-process clusters (clusterConfigs) and process clusters
 * (ProcessCluster) with every peer link over mutual TLS, certificates made
 * by raftkv certs' module into the cluster's temp dir. Client ports stay
 * plain HTTP on 127.0.0.1, so the tests' clients work as they are.
 */
import { join } from 'node:path';
import type { NodeConfig } from '../../src/server/config.js';
import { createCa, createNode } from '../../src/tls/certs.js';

/** Whether this run puts the peer links of its clusters under mutual TLS. */
export const PEER_TLS = process.env.RAFTKV_TEST_PEER_TLS === '1';

export const peerScheme = (): 'http' | 'https' => (PEER_TLS ? 'https' : 'http');

/** Makes a CA and a node certificate (127.0.0.1, localhost) per name under `dir`/certs. */
export async function makePeerCerts(dir: string, names: string[]): Promise<string> {
  const certs = join(dir, 'certs');
  await createCa({ dir: certs, overwrite: true });
  for (const name of names) {
    await createNode({ dir: certs, name, hosts: ['127.0.0.1', 'localhost'], overwrite: true });
  }
  return certs;
}

export function peerTlsConfig(certs: string, name: string): Partial<NodeConfig> {
  return {
    peerCertFile: join(certs, `${name}.crt`),
    peerKeyFile: join(certs, `${name}.key`),
    peerCaFile: join(certs, 'ca.crt'),
  };
}

export function peerTlsArgs(certs: string, name: string): string[] {
  const c = peerTlsConfig(certs, name);
  return [
    '--peer-cert-file',
    c.peerCertFile!,
    '--peer-key-file',
    c.peerKeyFile!,
    '--peer-ca-file',
    c.peerCaFile!,
  ];
}
