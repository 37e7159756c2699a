/**
 * deploy/k8s/make-tls-secret.ts end to end (slow: it runs `raftkv certs` once
 * per file): the Secret it writes holds the CA certificate and each pod's
 * certificate and key, not the CA key; each certificate is signed by the CA
 * and names the pod as peers and clients reach it; a second run keeps the
 * files it finds and adds the missing ones.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';

const root = join(import.meta.dirname, '..', '..');
const script = join(root, 'deploy', 'k8s', 'make-tls-secret.ts');

function run(dir: string, out: string, replicas: number): void {
  execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      script,
      '--dir',
      dir,
      '--out',
      out,
      '--namespace',
      'store',
      '--replicas',
      String(replicas),
    ],
    { cwd: root, stdio: 'pipe', timeout: 240_000 },
  );
}

t.test('make-tls-secret.ts writes the Secret the StatefulSet mounts', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-k8s-certs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'secret.yaml');
  run(join(dir, 'certs'), out, 1);
  const firstCa = readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8');
  run(join(dir, 'certs'), out, 2);
  t.equal(readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8'), firstCa, 'the CA is kept');
  t.equal(statSync(out).mode & 0o777, 0o600, 'the manifest holds keys: 0600');

  const secret = parseYaml(readFileSync(out, 'utf8'));
  t.equal(secret.kind, 'Secret');
  t.equal(secret.metadata.name, 'raftkv-tls');
  t.equal(secret.metadata.namespace, 'store');
  t.same(Object.keys(secret.data).sort(), [
    'ca.crt',
    'raftkv-0.crt',
    'raftkv-0.key',
    'raftkv-1.crt',
    'raftkv-1.key',
  ]);
  const file = (key: string) => Buffer.from(secret.data[key], 'base64');
  const ca = new X509Certificate(file('ca.crt'));
  for (const pod of ['raftkv-0', 'raftkv-1']) {
    const cert = new X509Certificate(file(`${pod}.crt`));
    t.ok(cert.verify(ca.publicKey), `${pod}: signed by the CA`);
    t.ok(cert.checkPrivateKey(createPrivateKey(file(`${pod}.key`))), `${pod}: its key`);
    for (const host of [
      `${pod}.raftkv-peer.store.svc.cluster.local`,
      'raftkv.store.svc',
      'raftkv',
      'localhost',
    ]) {
      t.equal(cert.checkHost(host), host, `${pod}: valid for ${host}`);
    }
    t.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    t.equal(cert.checkHost('raftkv-9.raftkv-peer.store.svc.cluster.local'), undefined);
  }
  t.end();
});
