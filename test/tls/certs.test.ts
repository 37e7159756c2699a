/**
 * `raftkv certs` (cmd/raftkv.ts → src/tls/certs.ts) makes a CA, node and
 * client certificates that Node's own TLS accepts for mutual TLS, with the
 * hostname check on; keys are private to their owner; a CA key is never
 * overwritten by accident.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createCa, createClient, createNode } from '../../src/tls/certs.js';
import { peerCertificateCommonName } from '../../src/tls/connect.js';
import { cleanEnv, RaftkvProcess } from '../integration/process-cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'raftkv-certs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `raftkv certs ARGS` as the command line does, bounded. */
async function certs(args: string[]) {
  const proc = new RaftkvProcess(['certs', ...args], { env: cleanEnv({ coverage: false }) });
  const exit = await proc.waitExit(30_000);
  return { exit, stdout: proc.stdout, stderr: proc.stderr };
}

const mode = (file: string) => statSync(file).mode & 0o777;
const read = (file: string) => readFileSync(file);

const certsDir = join(dir, 'certs');

t.test('raftkv certs writes a CA, a node and a client certificate with private keys', async (t) => {
  const ca = await certs(['create-ca', '--dir', certsDir]);
  t.equal(ca.exit.code, 0, `create-ca exits 0 (${ca.stderr})`);
  t.match(ca.stdout, /wrote .*ca\.key \(mode 0600\)/);
  const node = await certs([
    'create-node',
    '--dir',
    certsDir,
    '--name',
    'n1',
    '--host',
    '127.0.0.1',
    '--host',
    'localhost',
    '--host',
    'n1.example',
  ]);
  t.equal(node.exit.code, 0, `create-node exits 0 (${node.stderr})`);
  t.match(
    node.stdout,
    /--peer-cert-file .*n1\.crt --peer-key-file .*n1\.key --peer-ca-file .*ca\.crt/,
  );
  const client = await certs(['create-client', '--dir', certsDir, '--user', 'alice']);
  t.equal(client.exit.code, 0, `create-client exits 0 (${client.stderr})`);

  t.equal(mode(certsDir), 0o700, 'the directory is 0700');
  for (const key of ['ca.key', 'n1.key', 'client.alice.key'])
    t.equal(mode(join(certsDir, key)), 0o600, `${key} is 0600`);
  for (const cert of ['ca.crt', 'n1.crt', 'client.alice.crt'])
    t.equal(mode(join(certsDir, cert)), 0o644, `${cert} is 0644`);

  const caCert = new X509Certificate(read(join(certsDir, 'ca.crt')));
  const nodeCert = new X509Certificate(read(join(certsDir, 'n1.crt')));
  const clientCert = new X509Certificate(read(join(certsDir, 'client.alice.crt')));
  t.ok(caCert.ca, 'the CA is a CA');
  t.notOk(nodeCert.ca, 'the node certificate is not');
  t.ok(nodeCert.verify(caCert.publicKey), 'the node certificate is signed by the CA');
  t.ok(clientCert.verify(caCert.publicKey), 'the client certificate is signed by the CA');
  t.equal(nodeCert.subject, 'CN=n1');
  t.equal(clientCert.subject, 'CN=alice', 'the client certificate names the user');
  t.equal(
    nodeCert.subjectAltName,
    'IP Address:127.0.0.1, DNS:localhost, DNS:n1.example',
    'IPs become IP SANs, names DNS SANs',
  );
  t.same(
    nodeCert.keyUsage?.sort(),
    ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
    'node: server and client use',
  );
  t.same(clientCert.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'client: client use only');
});

t.test('Node accepts the set for mutual TLS, with the hostname check on', async (t) => {
  const server = https.createServer(
    {
      cert: read(join(certsDir, 'n1.crt')),
      key: read(join(certsDir, 'n1.key')),
      ca: read(join(certsDir, 'ca.crt')),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      res.end(peerCertificateCommonName(req.socket) ?? '(none)');
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;

  const get = (host: string, options: https.RequestOptions) =>
    new Promise<string>((resolve, reject) => {
      const req = https.request(
        { host, port, path: '/', agent: false, timeout: 5000, ...options },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (s: string) => {
            body += s;
          });
          res.on('end', () => resolve(body));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  const clientOptions = {
    ca: read(join(certsDir, 'ca.crt')),
    cert: read(join(certsDir, 'client.alice.crt')),
    key: read(join(certsDir, 'client.alice.key')),
  };
  t.equal(await get('127.0.0.1', clientOptions), 'alice', 'by IP: the server sees user alice');
  t.equal(await get('localhost', clientOptions), 'alice', 'by name (DNS SAN) too');
  const nodeAsClient = {
    ca: read(join(certsDir, 'ca.crt')),
    cert: read(join(certsDir, 'n1.crt')),
    key: read(join(certsDir, 'n1.key')),
  };
  t.equal(await get('127.0.0.1', nodeAsClient), 'n1', 'a node certificate works as a client one');
  await t.rejects(
    get('127.0.0.1', { ca: read(join(certsDir, 'ca.crt')) }),
    'no client certificate: refused in the handshake',
  );
});

t.test('an existing CA key is not overwritten without --overwrite', async (t) => {
  const before = read(join(certsDir, 'ca.key'));
  const again = await certs(['create-ca', '--dir', certsDir]);
  t.equal(again.exit.code, 1, 'exits 1');
  t.match(again.stderr, /raftkv certs: .*ca\.key already exists.*--overwrite/);
  t.notMatch(again.stderr, /\n\s+at /, 'no stack trace');
  t.same(read(join(certsDir, 'ca.key')), before, 'the CA key is unchanged');

  await t.rejects(createNode({ dir: certsDir, name: 'n1', hosts: ['127.0.0.1'] }), {
    name: 'CertsError',
    message: /n1\.crt already exists/,
  });
  const rotated = await createNode({
    dir: certsDir,
    name: 'n1',
    hosts: ['127.0.0.1'],
    overwrite: true,
  });
  const now = new X509Certificate(read(join(certsDir, 'n1.crt')));
  t.equal(
    now.serialNumber.toLowerCase(),
    rotated.serialNumber,
    '--overwrite rotates the node certificate',
  );
  t.equal(mode(join(certsDir, 'n1.key')), 0o600, 'and the new key is 0600 too');

  const other = join(dir, 'other');
  await createCa({ dir: other });
  const replaced = await createCa({ dir: other, overwrite: true });
  t.equal(replaced.written.length, 2, 'create-ca --overwrite replaces the CA');
});

t.test('bad requests are refused with a message that says what to do', async (t) => {
  await t.rejects(createNode({ dir: join(dir, 'no-ca'), hosts: ['127.0.0.1'] }), {
    message: /no CA in .*raftkv certs create-ca --dir/,
  });
  await t.rejects(createNode({ dir: certsDir, name: 'n9', hosts: [] }), {
    message: /needs --host/,
  });
  await t.rejects(createClient({ dir: certsDir, user: '../evil' }), { message: /--user/ });
  await t.rejects(createCa({ dir: join(dir, 'days'), days: 0 }), { message: /--days/ });
  const noHost = await certs(['create-node', '--dir', certsDir, '--name', 'n2']);
  t.not(noHost.exit.code, 0, 'create-node without --host exits non-zero');
  t.match(noHost.stderr, /--host/);
});
