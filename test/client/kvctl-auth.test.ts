/**
 * kvctl's security flags and its user, role and auth commands, as child
 * processes against the fake server of auth-fake.ts: the HTTP requests each
 * command makes, its output and exit code, --user with and without a
 * password (no terminal here), and --cacert/--cert/--key over HTTPS.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { kvctlBundle } from '../support/kvctl-bundle.js';
import { type FakeServer, makeCerts, type Recorded, startFake } from './auth-fake.js';

const root = join(import.meta.dirname, '..', '..');

/** Without tap's instrumentation (see kvctl.test.ts), and without the caller's KVCTL_* settings. */
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([name]) => !/^(NODE_OPTIONS|NODE_V8_COVERAGE|TAP|_TAPJS_|KVCTL_)/.test(name),
  ),
);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs kvctl to completion, feeding `stdin` (a pipe, never a terminal). */
function kvctl(args: string[], env: Record<string, string> = {}, stdin = ''): Promise<Run> {
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [kvctlBundle(), ...args], {
      cwd: root,
      env: { ...baseEnv, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

const fake = await startFake();
t.teardown(() => fake.close());
const asRoot = ['--endpoints', fake.url, '--user', 'root:rootpw'];

/** The requests a run made, without its token request, as "METHOD url". */
async function requestsOf(
  f: FakeServer,
  run: () => Promise<Run>,
): Promise<{ r: Run; seen: Recorded[] }> {
  const before = f.requests.length;
  const r = await run();
  return { r, seen: f.requests.slice(before) };
}
const lines = (seen: Recorded[]) =>
  seen.filter((x) => x.url !== '/v1/auth/token').map((x) => `${x.method} ${x.url}`);

t.test('--user NAME without a password and without a terminal: exit 2, saying how', async (t) => {
  const { r, seen } = await requestsOf(fake, () =>
    kvctl(['--endpoints', fake.url, '--user', 'bob', 'get', 'a']),
  );
  t.equal(r.code, 2);
  t.match(r.stderr, /--user bob: no password given, and stdin is not a terminal/);
  t.match(r.stderr, /--user bob:PASSWORD, or set KVCTL_PASSWORD/);
  t.same(seen, [], 'nothing was sent');
});

t.test('KVCTL_USER and KVCTL_PASSWORD: a token is fetched and sent', async (t) => {
  await kvctl([...asRoot, 'put', 'k', 'v']);
  const { r, seen } = await requestsOf(fake, () =>
    kvctl(['--endpoints', fake.url, 'get', 'k', '-o', 'json'], {
      KVCTL_USER: 'root',
      KVCTL_PASSWORD: 'rootpw',
    }),
  );
  t.equal(r.code, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).kv.value, 'v');
  t.same(
    seen.map((x) => `${x.method} ${x.url}`),
    ['POST /v1/auth/token', 'GET /v1/kv/k'],
  );
  t.same(seen[0]!.body, { name: 'root', password: 'rootpw' });
  t.equal(seen[1]!.authorization, `Bearer ${fake.issued.at(-1)}`);
});

t.test('without --user: unauthenticated, exit 1; a wrong password says so', async (t) => {
  const anon = await kvctl(['--endpoints', fake.url, 'get', 'k']);
  t.equal(anon.code, 1);
  t.match(anon.stderr, /error: unauthenticated: /);
  const wrong = await kvctl(['--endpoints', fake.url, '--user', 'root:nope', 'get', 'k']);
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /authenticating as "root" failed: wrong user name or password/);
});

t.test('user add, get, list, passwd, grant-role, revoke-role, delete', async (t) => {
  let { r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'user', 'add', 'bob', '--password', 'pw1', '--roles', 'r1']),
  );
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'user bob added\n');
  t.same(lines(seen), ['GET /v1/auth/users/bob', 'PUT /v1/auth/users/bob']);
  t.same(seen.at(-1)!.body, { password: 'pw1', roles: ['r1'] });
  t.match(seen.at(-1)!.authorization, /^Bearer /);

  ({ r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'user', 'add', 'bob', '--password', 'other']),
  ));
  t.equal(r.code, 1, 'an existing user is not overwritten');
  t.match(r.stderr, /user "bob" already exists/);
  t.same(lines(seen), ['GET /v1/auth/users/bob']);

  ({ r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'user', 'add', 'carol', '--no-password']),
  ));
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'user carol added (no password)\n');
  t.same(seen.at(-1)!.body, {}, 'no password field: a certificate-only user');

  r = await kvctl([...asRoot, 'user', 'add', 'dave']);
  t.equal(r.code, 2);
  t.match(r.stderr, /no password for user dave, and stdin is not a terminal/);
  t.match(r.stderr, /--password PASSWORD, or --no-password/);
  t.notOk(fake.users.has('dave'));

  r = await kvctl([...asRoot, 'user', 'get', 'bob', '-o', 'json']);
  t.same(JSON.parse(r.stdout), { name: 'bob', roles: ['r1'] });
  r = await kvctl([...asRoot, 'user', 'get', 'bob']);
  t.equal(r.stdout, 'name   bob\nroles  r1\n');

  r = await kvctl([...asRoot, 'user', 'list']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^NAME\s+ROLES\nroot\s+root\nbob\s+r1\ncarol\s+\(none\)\n$/);

  ({ r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'user', 'grant-role', 'bob', 'r2']),
  ));
  t.equal(r.stdout, 'role r2 granted to user bob\n');
  t.same(lines(seen), ['GET /v1/auth/users/bob', 'PUT /v1/auth/users/bob']);
  t.same(seen.at(-1)!.body, { roles: ['r1', 'r2'] }, 'the whole new list, no password');

  ({ r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'user', 'revoke-role', 'bob', 'r1', '-o', 'json']),
  ));
  t.same(JSON.parse(r.stdout), { changed: true, name: 'bob', roles: ['r2'] });
  t.same(seen.at(-1)!.body, { roles: ['r2'] });

  r = await kvctl([...asRoot, 'user', 'revoke-role', 'bob', 'r9']);
  t.equal(r.code, 1, 'revoking what is not held exits 1');
  t.equal(r.stdout, 'user bob did not have role r9: nothing changed\n');

  ({ r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'user', 'passwd', 'bob', '--password', 'pw2']),
  ));
  t.equal(r.stdout, 'password of user bob changed\n');
  t.same(seen.at(-1)!.body, { password: 'pw2' });
  t.equal(fake.users.get('bob')?.password, 'pw2');

  ({ r, seen } = await requestsOf(fake, () => kvctl([...asRoot, 'user', 'delete', 'carol'])));
  t.equal(r.stdout, 'user carol deleted\n');
  t.same(lines(seen), ['DELETE /v1/auth/users/carol']);
});

t.test('user add and passwd with --password-stdin', async (t) => {
  let { r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'user', 'add', 'erin', '--password-stdin'], {}, 'pw-e\nignored\n'),
  );
  t.equal(r.code, 0, r.stderr);
  t.same(seen.at(-1)!.body, { password: 'pw-e' });
  ({ r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'user', 'passwd', 'erin', '--password-stdin'], {}, 'pw-2\r\n'),
  ));
  t.equal(r.code, 0, r.stderr);
  t.same(seen.at(-1)!.body, { password: 'pw-2' });
  r = await kvctl([...asRoot, 'user', 'passwd', 'erin', '--password-stdin', '--password', 'x']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--password-stdin cannot go with --password/);
  r = await kvctl([...asRoot, 'user', 'passwd', 'erin', '--password-stdin']);
  t.equal(r.code, 2);
  t.match(r.stderr, /stdin held no password/);
});

t.test('role add, grant-permission, get, revoke-permission, list, delete', async (t) => {
  let { r, seen } = await requestsOf(fake, () => kvctl([...asRoot, 'role', 'add', 'app']));
  t.equal(r.stdout, 'role app added\n', r.stderr);
  t.same(lines(seen), ['GET /v1/auth/roles/app', 'PUT /v1/auth/roles/app']);
  t.same(seen.at(-1)!.body, { permissions: [] });

  ({ r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'role', 'grant-permission', 'app', 'readwrite', '--prefix', 'app/']),
  ));
  t.equal(r.code, 0, r.stderr);
  t.same(seen.at(-1)!.body, {
    permissions: [{ resource: 'kv', prefix: 'app/', access: 'readwrite' }],
  });
  t.match(r.stdout, /role app: granted readwrite on kv app\//);

  ({ r, seen } = await requestsOf(fake, () =>
    kvctl([
      ...asRoot,
      'role',
      'grant-permission',
      'app',
      'write',
      '--prefix',
      '',
      '--resource',
      'locks',
    ]),
  ));
  t.same(seen.at(-1)!.body, {
    permissions: [
      { resource: 'kv', prefix: 'app/', access: 'readwrite' },
      { resource: 'locks', prefix: '', access: 'write' },
    ],
  });

  r = await kvctl([...asRoot, 'role', 'get', 'app']);
  t.equal(
    r.stdout,
    'role app\nRESOURCE  PREFIX  ACCESS\nkv        app/    readwrite\nlocks     (all)   write\n',
  );

  ({ r, seen } = await requestsOf(fake, () =>
    kvctl([...asRoot, 'role', 'revoke-permission', 'app', 'write', '--prefix', 'app/']),
  ));
  t.equal(r.code, 0);
  t.same(seen.at(-1)!.body, {
    permissions: [
      { resource: 'kv', prefix: 'app/', access: 'read' },
      { resource: 'locks', prefix: '', access: 'write' },
    ],
  });

  r = await kvctl([...asRoot, 'role', 'revoke-permission', 'app', 'read', '--prefix', 'nope/']);
  t.equal(r.code, 1);
  t.match(r.stdout, /role app has no read on kv nope\/: nothing changed/);

  r = await kvctl([...asRoot, 'role', 'list', '-o', 'json']);
  t.same(JSON.parse(r.stdout), { roles: [{ name: 'app', permissions: fake.roles.get('app') }] });
  r = await kvctl([...asRoot, 'role', 'list']);
  t.match(r.stdout, /^NAME\s+PERMISSIONS\napp\s+kv:app\/:read locks:\(all\):write\n$/);

  r = await kvctl([...asRoot, 'role', 'grant-permission', 'app', 'everything', '--prefix', 'x']);
  t.equal(r.code, 2, 'a bad access is a usage error');
  r = await kvctl([...asRoot, 'role', 'grant-permission', 'app', 'read']);
  t.equal(r.code, 2, '--prefix is required');
  t.match(r.stderr, /--prefix/);

  ({ r, seen } = await requestsOf(fake, () => kvctl([...asRoot, 'role', 'delete', 'app'])));
  t.equal(r.stdout, 'role app deleted\n');
  t.same(lines(seen), ['DELETE /v1/auth/roles/app']);
});

t.test('auth status needs no credentials; disable and enable as root', async (t) => {
  let { r, seen } = await requestsOf(fake, () =>
    kvctl(['--endpoints', fake.url, 'auth', 'status']),
  );
  t.equal(r.stdout, 'authentication enabled\n');
  t.same(lines(seen), ['GET /v1/auth/status']);
  t.equal(seen[0]!.authorization, undefined);

  ({ r, seen } = await requestsOf(fake, () => kvctl([...asRoot, 'auth', 'disable'])));
  t.equal(r.stdout, 'authentication disabled\n', r.stderr);
  t.same(lines(seen), ['POST /v1/auth/disable']);
  t.equal(fake.state.enabled, false);

  r = await kvctl(['--endpoints', fake.url, 'auth', 'status', '-o', 'json']);
  t.same(JSON.parse(r.stdout), { enabled: false });

  ({ r, seen } = await requestsOf(fake, () => kvctl([...asRoot, 'auth', 'enable'])));
  t.equal(r.stdout, 'authentication enabled\n');
  t.same(lines(seen), ['POST /v1/auth/enable']);
  t.equal(fake.state.enabled, true);
});

t.test('--cacert, --cert, --key over HTTPS with a client certificate', async (t) => {
  const certs = makeCerts('alice');
  t.teardown(() => certs.remove());
  const tlsFake = await startFake({
    https: { key: certs.serverKey, cert: certs.serverCert, ca: certs.ca, requestCert: true },
  });
  t.teardown(() => tlsFake.close());
  tlsFake.users.set('alice', { password: undefined, roles: ['root'] });
  const port = new URL(tlsFake.url).port;
  const files = ['--cert', certs.files.clientCert, '--key', certs.files.clientKey];

  let r = await kvctl([
    '--endpoints',
    `127.0.0.1:${port}`,
    '--cacert',
    certs.files.ca,
    ...files,
    'put',
    'x',
    '1',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /revision/);
  t.equal(tlsFake.requests.at(-1)!.authorization, undefined, 'the certificate is the user');

  r = await kvctl(['--endpoints', tlsFake.url, ...files, 'user', 'list'], {
    KVCTL_CACERT: certs.files.ca,
  });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /alice\s+root/);

  r = await kvctl([
    '--endpoints',
    tlsFake.url,
    '--cacert',
    certs.files.otherCa,
    ...files,
    'get',
    'x',
  ]);
  t.equal(r.code, 3, 'a connection failure');
  t.match(
    r.stderr,
    /error: tls_failed: TLS: the server certificate of https:\/\/127\.0\.0\.1:\d+ was refused/,
  );
  t.match(r.stderr, /kvctl --cacert/);

  r = await kvctl([
    '--endpoints',
    tlsFake.url,
    '--cacert',
    join(certs.dir, 'missing.pem'),
    'get',
    'x',
  ]);
  t.equal(r.code, 2);
  t.match(r.stderr, /cannot read the CA certificate file .*missing\.pem/);

  r = await kvctl([
    '--endpoints',
    tlsFake.url,
    '--cacert',
    certs.files.ca,
    '--cert',
    certs.files.clientCert,
    'get',
    'x',
  ]);
  t.equal(r.code, 2);
  t.match(r.stderr, /certificate was given without its key/);

  r = await kvctl([
    '--endpoints',
    `http://127.0.0.1:${port}`,
    '--cacert',
    certs.files.ca,
    'get',
    'x',
  ]);
  t.equal(r.code, 2);
  t.match(r.stderr, /plain HTTP, but TLS options were given: use https/);
});

t.test('--user NAME on a terminal: asks for the password without echoing it', async (t) => {
  // `script` gives kvctl a pseudo-terminal; we type once the prompt is there.
  const command = `${process.execPath} ${kvctlBundle()} --user root get k -o json`;
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    cwd: root,
    env: { ...baseEnv, KVCTL_ENDPOINTS: fake.url },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  let typed = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const before = fake.requests.length;
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString('utf8');
    if (!typed && output.includes('Password for root: ')) {
      typed = true;
      child.stdin.write('rootpw\r');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  t.equal(code, 0, output);
  const afterPrompt = output.slice(output.indexOf('Password for root: '));
  t.notMatch(afterPrompt, /rootpw/, 'the password is not echoed');
  t.match(afterPrompt, /"value": "v"/);
  const token = fake.requests.slice(before).find((r) => r.url === '/v1/auth/token');
  t.same(token?.body, { name: 'root', password: 'rootpw' }, 'what was typed was used');
});
