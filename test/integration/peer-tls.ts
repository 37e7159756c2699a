/**
 * Fault tests under TLS (and auth): the shared cluster helpers read two switches.
 *
 * - `RAFTKV_TEST_PEER_TLS=1`: every peer link of a test's in-process clusters
 *   (clusterConfigs) and process clusters (ProcessCluster) is mutual TLS, with
 *   certificates made by raftkv certs' module; client ports stay plain HTTP.
 * - `RAFTKV_TEST_SECURE=1`: as above, and the client ports serve HTTPS, and
 *   authentication is enabled once the cluster has a leader (a user `tester`
 *   with readwrite on every resource, and root). This process's `fetch` then
 *   trusts the test CA and sends tester's Basic credentials (root's for the
 *   root-only routes), so the tests' own requests work unchanged.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import type { NodeConfig } from '../../src/server/config.js';
import { createCa, createNode } from '../../src/tls/certs.js';

/** Client HTTPS and authentication on top of peer mutual TLS. */
export const SECURE = process.env.RAFTKV_TEST_SECURE === '1';

/** Whether this run puts the peer links of its clusters under mutual TLS. */
export const PEER_TLS = SECURE || process.env.RAFTKV_TEST_PEER_TLS === '1';

export const peerScheme = (): 'http' | 'https' => (PEER_TLS ? 'https' : 'http');
export const clientScheme = (): 'http' | 'https' => (SECURE ? 'https' : 'http');

/** Up to this many members per cluster get certificates. */
const NAMES = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'];
let sharedCerts: Promise<string> | undefined;

/**
 * A CA and a node certificate (127.0.0.1, localhost) per name. Under
 * RAFTKV_TEST_SECURE one set serves every cluster of the process, so `fetch`
 * trusts one CA; otherwise each cluster makes its own under `dir`/certs.
 */
export async function makePeerCerts(dir: string, names: string[]): Promise<string> {
  if (SECURE) {
    sharedCerts ??= makeCerts(mkdtempSync(join(tmpdir(), 'raftkv-test-certs-')), NAMES);
    return sharedCerts;
  }
  return makeCerts(dir, names);
}

async function makeCerts(dir: string, names: string[]): Promise<string> {
  const certs = join(dir, 'certs');
  await createCa({ dir: certs, overwrite: true });
  for (const name of names) {
    await createNode({ dir: certs, name, hosts: ['127.0.0.1', 'localhost'], overwrite: true });
  }
  return certs;
}

export function peerTlsConfig(certs: string, name: string): Partial<NodeConfig> {
  const files = {
    peerCertFile: join(certs, `${name}.crt`),
    peerKeyFile: join(certs, `${name}.key`),
    peerCaFile: join(certs, 'ca.crt'),
  };
  if (!SECURE) return files;
  return { ...files, clientCertFile: files.peerCertFile, clientKeyFile: files.peerKeyFile };
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
    ...(SECURE
      ? ['--client-cert-file', c.clientCertFile!, '--client-key-file', c.clientKeyFile!]
      : []),
  ];
}

// ---------------------------------------------------------------- auth (RAFTKV_TEST_SECURE)

const ROOT = { name: 'root', password: 'root-test-pw' };
const TESTER = { name: 'tester', password: 'tester-test-pw' };
const basic = (u: { name: string; password: string }) =>
  `Basic ${Buffer.from(`${u.name}:${u.password}`).toString('base64')}`;
/** API.md's root-only routes: the tests' requests to them go as root. */
const ROOT_ONLY = /^\/v1\/(auth\/|compact|cluster\/members|cluster\/leader|snapshot)/;

const bootstrapped = new Set<string>();

/**
 * Enables auth on the cluster reachable at `url` once (idempotent per cluster
 * id): root, a role with readwrite on every resource, the user tester, enable.
 */
export async function enableTestAuth(url: string): Promise<void> {
  if (!SECURE) return;
  const status = (await (await fetch(`${url}/v1/status`)).json()) as { id: string };
  const members = (await (await fetch(`${url}/v1/cluster/members`)).json()) as {
    members: { id: string }[];
  };
  const clusterKey = members.members
    .map((m) => m.id)
    .sort()
    .join(',');
  if (bootstrapped.has(clusterKey) || status.id === undefined) return;
  const auth = (await (await fetch(`${url}/v1/auth/status`)).json()) as { enabled: boolean };
  if (!auth.enabled) {
    const put = async (path: string, body: unknown) => {
      const res = await fetch(`${url}${path}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: basic(ROOT) },
        body: JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    };
    await put('/v1/auth/users/root', { password: ROOT.password, roles: ['root'] });
    await put('/v1/auth/roles/tester', {
      permissions: ['kv', 'registry', 'locks', 'elections'].map((resource) => ({
        resource,
        prefix: '',
        access: 'readwrite',
      })),
    });
    await put('/v1/auth/users/tester', { password: TESTER.password, roles: ['tester'] });
    const enabled = await fetch(`${url}/v1/auth/enable`, {
      method: 'POST',
      headers: { authorization: basic(ROOT) },
    });
    if (enabled.status !== 200) throw new Error(`auth enable: ${enabled.status}`);
  }
  // The switch did real work: plain HTTP is refused, and a request without credentials is 401.
  const plain = await undiciFetch(url.replace('https://', 'http://')).then(
    (r) => r.status,
    () => 'refused',
  );
  if (plain !== 'refused' && plain !== 400) throw new Error(`plain HTTP answered ${plain}`);
  const anonymous = await undiciFetch(`${url}/v1/kv/probe`, { dispatcher: await testAgent() });
  if (anonymous.status !== 401) throw new Error(`no credentials answered ${anonymous.status}`);
  bootstrapped.add(clusterKey);
}

let agent: Agent | undefined;

async function testAgent(): Promise<Agent> {
  const certs = await makePeerCerts('', []);
  agent ??= new Agent({ connect: { ca: readFileSync(join(certs, 'ca.crt')) } });
  return agent;
}

if (SECURE) {
  // Every request of this test process: trust the test CA, and carry credentials.
  globalThis.fetch = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const dispatcher = await testAgent();
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const headers = new Headers(init.headers);
    if (!headers.has('authorization'))
      headers.set('authorization', basic(ROOT_ONLY.test(url.pathname) ? ROOT : TESTER));
    // biome-ignore lint/suspicious/noExplicitAny: undici's fetch types differ slightly from the global one
    return undiciFetch(input as any, { ...(init as any), headers, dispatcher });
  }) as typeof fetch;
}
