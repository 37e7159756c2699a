/**
 * TlsMaterial (src/tls/material.ts): the files are read at load, again on
 * reload() and when they change; a reload that finds bad files keeps the
 * material it had and says so; a failed first load names the file.
 */
import { X509Certificate } from 'node:crypto';
import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createCa, createNode } from '../../src/tls/certs.js';
import { TlsError, TlsMaterial, type TlsSnapshot } from '../../src/tls/material.js';

const dir = mkdtempSync(join(tmpdir(), 'raftkv-tls-material-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const certs = join(dir, 'certs');
await createCa({ dir: certs });
await createNode({ dir: certs, name: 'a', hosts: ['127.0.0.1'] });
await createNode({ dir: certs, name: 'b', hosts: ['127.0.0.1'] });
const fingerprintOf = (name: string): string =>
  new X509Certificate(readFileSync(join(certs, `${name}.crt`))).fingerprint256;

/** Puts `name`'s cert and key at the live paths, each by rename (as deploy tools do). */
function install(live: string, name: string): void {
  copyFileSync(join(certs, `${name}.key`), join(live, 'key.pem.tmp'));
  renameSync(join(live, 'key.pem.tmp'), join(live, 'key.pem'));
  copyFileSync(join(certs, `${name}.crt`), join(live, 'cert.pem.tmp'));
  renameSync(join(live, 'cert.pem.tmp'), join(live, 'cert.pem'));
}

function liveDir(label: string): string {
  const live = mkdtempSync(join(dir, `${label}-`));
  install(live, 'a');
  copyFileSync(join(certs, 'ca.crt'), join(live, 'ca.pem'));
  return live;
}

const files = (live: string) => ({
  certFile: join(live, 'cert.pem'),
  keyFile: join(live, 'key.pem'),
  caFile: join(live, 'ca.pem'),
});

function recordingLogger() {
  const errors: string[] = [];
  const infos: string[] = [];
  return {
    errors,
    infos,
    logger: {
      info: (_obj: object, msg: string) => infos.push(msg),
      error: (_obj: object, msg: string) => errors.push(msg),
    },
  };
}

/** Polls `check` every 25 ms, at most `timeoutMs`. */
async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

t.test('an explicit reload takes new files and tells the listeners', async (t) => {
  const live = liveDir('explicit');
  const { logger, infos } = recordingLogger();
  const material = await TlsMaterial.load(files(live), { label: 'peer', logger, watch: false });
  t.teardown(() => material.close());
  t.equal(material.snapshot.fingerprint, fingerprintOf('a'), 'loads the certificate on disk');
  t.equal(material.snapshot.generation, 1);
  const seen: TlsSnapshot[] = [];
  material.onReload((s) => seen.push(s));

  install(live, 'b');
  t.equal(await material.reload(), true, 'reload() reports success');
  t.equal(material.snapshot.fingerprint, fingerprintOf('b'), 'the new certificate is current');
  t.equal(material.snapshot.generation, 2);
  t.equal(seen.length, 1, 'the listener ran once');
  t.equal(seen[0]?.fingerprint, fingerprintOf('b'), 'with the new material');
  t.not(material.secureContext, undefined);
  t.match(infos.join('\n'), /peer TLS certificate reloaded/, 'logs the rotation');
});

t.test('a reload that finds bad files keeps the old material and logs an error', async (t) => {
  const live = liveDir('bad');
  const { logger, errors } = recordingLogger();
  const material = await TlsMaterial.load(files(live), { label: 'client', logger, watch: false });
  t.teardown(() => material.close());
  const before = material.snapshot;
  let listenerRuns = 0;
  material.onReload(() => listenerRuns++);

  writeFileSync(join(live, 'cert.pem'), 'not a certificate\n');
  t.equal(await material.reload(), false, 'garbage in the certificate file: refused');
  t.equal(material.snapshot, before, 'the old material is still current');

  install(live, 'a');
  copyFileSync(join(certs, 'b.key'), join(live, 'key.pem'));
  t.equal(await material.reload(), false, 'a key of another certificate: refused');
  t.equal(material.snapshot, before);

  rmSync(join(live, 'key.pem'));
  t.equal(await material.reload(), false, 'a missing key file: refused');
  t.equal(material.snapshot, before);

  writeFileSync(
    join(live, 'ca.pem'),
    '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
  );
  install(live, 'b');
  t.equal(await material.reload(), false, 'a damaged CA file: refused');
  t.equal(material.snapshot, before);

  t.equal(listenerRuns, 0, 'no listener ran for a refused reload');
  t.equal(errors.length, 4, 'one error logged per refused reload');
  t.match(errors[0], /client TLS files not reloaded/);
  t.match(errors[0], /cert\.pem/, 'the error names the file');
  t.match(errors[1], /does not go with certificate/);
  t.match(errors[2], /cannot be read/);

  copyFileSync(join(certs, 'ca.crt'), join(live, 'ca.pem'));
  t.equal(await material.reload(), true, 'fixed files are taken at the next reload');
  t.equal(material.snapshot.fingerprint, fingerprintOf('b'));
});

t.test('files that change on disk are reloaded without being asked', async (t) => {
  const live = liveDir('watch');
  const material = await TlsMaterial.load(files(live), {
    label: 'peer',
    watchIntervalMs: 50,
    debounceMs: 50,
  });
  t.teardown(() => material.close());
  t.equal(material.snapshot.fingerprint, fingerprintOf('a'));
  // Make sure the new files get an mtime the poller can tell apart.
  await new Promise((r) => setTimeout(r, 20));
  install(live, 'b');
  t.ok(
    await eventually(() => material.snapshot.fingerprint === fingerprintOf('b'), 5_000),
    'the new certificate becomes current within 5 s',
  );
  // A bad write is noticed too, and refused.
  const good = material.snapshot;
  writeFileSync(join(live, 'cert.pem'), 'garbage');
  await new Promise((r) => setTimeout(r, 400));
  t.equal(material.snapshot, good, 'a bad file on disk leaves the material as it was');
});

t.test('after close(), changed files are not read any more', async (t) => {
  const live = liveDir('closed');
  const material = await TlsMaterial.load(files(live), {
    label: 'peer',
    watchIntervalMs: 50,
    debounceMs: 50,
  });
  material.close();
  install(live, 'b');
  await new Promise((r) => setTimeout(r, 400));
  t.equal(material.snapshot.fingerprint, fingerprintOf('a'));
  t.equal(await material.reload(), false);
});

t.test(
  'concurrent reloads do not overlap: the extra requests fold into one more run',
  async (t) => {
    const live = liveDir('concurrent');
    const material = await TlsMaterial.load(files(live), { label: 'peer', watch: false });
    t.teardown(() => material.close());
    install(live, 'b');
    const results = await Promise.all([material.reload(), material.reload(), material.reload()]);
    t.same(results, [true, true, true]);
    t.equal(material.snapshot.generation, 3, 'one run plus one folded run, not three');
  },
);

t.test('a first load of files that cannot serve is a TlsError naming the file', async (t) => {
  const live = liveDir('first');
  await t.rejects(
    TlsMaterial.load({ ...files(live), keyFile: join(live, 'missing.pem') }, { label: 'peer' }),
    { name: 'TlsError', message: /peer TLS key file .*missing\.pem cannot be read/ },
  );
  writeFileSync(join(live, 'cert.pem'), 'garbage');
  await t.rejects(TlsMaterial.load(files(live), { label: 'client', watch: false }), TlsError);
});

t.test(
  'when several files cannot be read, the error always names the first of cert, key, CA',
  async (t) => {
    const live = liveDir('order');
    const missing = {
      certFile: join(live, 'no-cert.pem'),
      keyFile: join(live, 'no-key.pem'),
      caFile: join(live, 'no-ca.pem'),
    };
    // The reads race; fifty loads give a wrong order many chances to show.
    for (let round = 0; round < 50; round++) {
      await t.rejects(TlsMaterial.load(missing, { label: 'client', watch: false }), {
        name: 'TlsError',
        message: /client TLS certificate file .*no-cert\.pem cannot be read/,
      });
    }
    await t.rejects(
      TlsMaterial.load(
        { ...files(live), keyFile: missing.keyFile, caFile: missing.caFile },
        {
          label: 'client',
          watch: false,
        },
      ),
      { message: /client TLS key file .*no-key\.pem cannot be read/ },
    );
  },
);
