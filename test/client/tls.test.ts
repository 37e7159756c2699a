/**
 * The client over HTTPS against a fake server with certificates made by the
 * openssl command: a CA and a client certificate work (the certificate's CN
 * names the user), and each kind of certificate mistake fails at once with a
 * `tls_failed` error that says what to fix.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Client, RaftkvError, tlsFromFiles } from '../../src/client/index.js';
import { makeCerts, startFake } from './auth-fake.js';

const certs = makeCerts('alice');
t.teardown(() => certs.remove());

const fake = await startFake({
  https: { key: certs.serverKey, cert: certs.serverCert, ca: certs.ca, requestCert: true },
});
t.teardown(() => fake.close());
fake.users.set('alice', { password: undefined, roles: ['root'] });
const port = new URL(fake.url).port;

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as RaftkvError,
  );

function client(tls: ConstructorParameters<typeof Client>[0]['tls'], endpoint = fake.url) {
  const c = new Client({ endpoints: [endpoint], tls, retries: 3, backoffMs: 5 });
  t.teardown(() => c.close());
  return c;
}

t.test('a CA and a client certificate: requests work, the certificate is the user', async (t) => {
  const c = client({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey });
  await c.put('a', '1');
  t.equal((await c.get('a')).kv.value, '1');
  t.same(await c.auth.getUser('alice'), { name: 'alice', roles: ['root'] }, 'root via its CN');
  t.equal(fake.requests.at(-1)!.authorization, undefined, 'no Authorization header needed');
});

t.test(
  'the same with PEM files read by tlsFromFiles, and host:port defaulting to https',
  async (t) => {
    const tls = tlsFromFiles({
      caFile: certs.files.ca,
      certFile: certs.files.clientCert,
      keyFile: certs.files.clientKey,
    });
    const c = client(tls, `127.0.0.1:${port}`);
    t.same(c.endpoints, [fake.url]);
    t.equal((await c.get('a')).kv.value, '1');
  },
);

t.test('a watch over TLS', async (t) => {
  const c = client({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey });
  const watch = c.watch('w', { fromRevision: 3 });
  const next = watch.next();
  const before = fake.requests.length;
  const deadline = Date.now() + 5_000;
  while (!fake.requests.slice(before).some((r) => r.url.startsWith('/v1/watch/'))) {
    if (Date.now() > deadline) throw new Error('the watch request never arrived');
    await new Promise((r) => setTimeout(r, 10));
  }
  fake.emit('change', { revision: 3, events: [] }, 3);
  t.equal((await next).value?.revision, 3);
  watch.close();
});

t.test(
  'a server certificate from another CA: tls_failed naming the CA, without retrying',
  async (t) => {
    const before = fake.requests.length;
    const started = Date.now();
    const err = await errorOf(
      client({ ca: certs.otherCa, cert: certs.clientCert, key: certs.clientKey }).get('a'),
    );
    t.ok(err instanceof RaftkvError);
    t.equal(err?.code, 'tls_failed');
    t.match(err?.message, /server certificate of https:\/\/127\.0\.0\.1:\d+ was refused/);
    t.match(err?.message, /not signed by the CA given \(tls\.ca, kvctl --cacert\)/);
    t.equal(fake.requests.length, before, 'no request reached the server');
    t.ok(Date.now() - started < 2_000, 'failed at once (no backoff rounds)');
  },
);

t.test('the public CAs (no ca given) do not trust a private CA either', async (t) => {
  const err = await errorOf(client({ cert: certs.clientCert, key: certs.clientKey }).get('a'));
  t.equal(err?.code, 'tls_failed');
});

t.test(
  'connecting by a name the server certificate does not list: tls_failed saying so',
  async (t) => {
    const err = await errorOf(
      client(
        { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey, servername: 'db.example' },
        fake.url,
      ).get('a'),
    );
    t.equal(err?.code, 'tls_failed');
    t.match(err?.message, /not for this host name/);
  },
);

t.test('no client certificate for a server that requires one: tls_failed saying so', async (t) => {
  const err = await errorOf(client({ ca: certs.ca }).get('a'));
  t.equal(err?.code, 'tls_failed');
  t.match(err?.message, /probably requires a client certificate: give tls\.cert and tls\.key/);
});

t.test(
  'a client certificate from another CA: tls_failed saying the server refused it',
  async (t) => {
    const err = await errorOf(
      client({ ca: certs.ca, cert: certs.otherClientCert, key: certs.otherClientKey }).get('a'),
    );
    t.equal(err?.code, 'tls_failed');
    t.match(err?.message, /refused the client certificate|probably refused the client certificate/);
  },
);

t.test('mistakes in the options are invalid_request before anything is sent', async (t) => {
  t.throws(() => new Client({ endpoints: [fake.url.replace('https', 'http')], tls: {} }), {
    code: 'invalid_request',
    message: /plain HTTP, but TLS options were given: use https/,
  });
  t.throws(() => new Client({ endpoints: [fake.url], tls: { cert: certs.clientCert } }), {
    code: 'invalid_request',
    message: /certificate was given without its key/,
  });
  t.throws(() => tlsFromFiles({ caFile: join(certs.dir, 'missing.crt') }), {
    code: 'invalid_request',
    message: /cannot read the CA certificate file .*missing\.crt/,
  });
  const notPem = join(certs.dir, 'not.pem');
  writeFileSync(notPem, 'hello');
  t.throws(() => tlsFromFiles({ caFile: notPem }), { message: /not\.pem is not a PEM file/ });
  t.throws(() => tlsFromFiles({ keyFile: certs.files.clientKey }), {
    message: /key was given without its certificate/,
  });
});
