/**
 * Secure by default (API.md, Security): `raftkv` refuses to listen beyond
 * loopback without TLS on that port unless --insecure is given, says how to
 * set TLS up, and exits before it touches the data dir or opens a socket.
 * TLS flags that cannot work (a cert without its key, http:// peer URLs with
 * peer TLS) are refused the same way. The data dir it does create is 0700
 * with 0600 files.
 *
 * No test here serves on anything but 127.0.0.1: the 0.0.0.0 runs must exit
 * before listening, and --insecure is shown to pass the check by reaching
 * the data dir check that comes after it (on a dir it refuses).
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { defaultConfig, type NodeConfig } from '../../src/server/config.js';
import { checkTlsConfig, isLoopbackHost } from '../../src/server/tls-config.js';
import { freePort } from './helpers.js';
import { putKey, status, waitUntil } from './http-ops.js';
import { cleanEnv, RaftkvProcess } from './process-cluster.js';

const EXIT_TIMEOUT_MS = 30_000;

function tempDir(t: Test, label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `raftkv-sbd-${label}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs raftkv with `args` and waits (bounded) for it to exit on its own. */
async function runToExit(t: Test, args: string[], env: NodeJS.ProcessEnv = {}) {
  const proc = new RaftkvProcess(args, { env: { ...cleanEnv({ coverage: false }), ...env } });
  t.teardown(() => proc.kill('SIGKILL'));
  const exit = await proc.waitExit(EXIT_TIMEOUT_MS);
  return { exit, stderr: proc.stderr, stdout: proc.stdout };
}

function refusedPlainly(
  t: Test,
  run: { exit: { code: number | null; signal: string | null }; stderr: string },
  label: string,
): void {
  t.equal(run.exit.signal, null, `${label}: exits on its own`);
  t.not(run.exit.code, 0, `${label}: with a non-zero code`);
  t.match(run.stderr, /^raftkv: /m, `${label}: says why on stderr`);
  t.notMatch(run.stderr, /\n\s+at .+:\d+:\d+/, `${label}: no stack trace`);
}

t.test(
  'a client port on 0.0.0.0 without TLS is refused, before the data dir is touched',
  async (t) => {
    const dataDir = join(tempDir(t, 'client'), 'data');
    const run = await runToExit(t, [
      '--data-dir',
      dataDir,
      '--listen-client',
      `0.0.0.0:${await freePort()}`,
      '--listen-peer',
      `127.0.0.1:${await freePort()}`,
    ]);
    refusedPlainly(t, run, '0.0.0.0 client');
    t.match(run.stderr, /--listen-client 0\.0\.0\.0:\d+ is not a loopback address/);
    t.match(run.stderr, /raftkv certs create-ca/, 'says how to make certificates');
    t.match(run.stderr, /--client-cert-file .* --client-key-file/, 'names the flags');
    t.match(run.stderr, /--insecure/, 'names the way out');
    t.notOk(existsSync(dataDir), 'the data dir was not created');
  },
);

t.test('a peer port on 0.0.0.0 without TLS is refused the same way', async (t) => {
  const dataDir = join(tempDir(t, 'peer'), 'data');
  const run = await runToExit(t, [
    '--data-dir',
    dataDir,
    '--listen-client',
    `127.0.0.1:${await freePort()}`,
    '--listen-peer',
    `0.0.0.0:${await freePort()}`,
  ]);
  refusedPlainly(t, run, '0.0.0.0 peer');
  t.match(run.stderr, /--listen-peer 0\.0\.0\.0:\d+ is not a loopback address/);
  t.match(run.stderr, /--peer-cert-file .* --peer-key-file .* --peer-ca-file/);
  t.notOk(existsSync(dataDir), 'the data dir was not created');
});

t.test('--insecure (or RAFTKV_INSECURE) lets a 0.0.0.0 address past the check', async (t) => {
  // A data dir that is refused after the TLS check: the process gets that far and exits
  // before opening any socket.
  const dataDir = join(tempDir(t, 'insecure'), 'data');
  mkdirSync(dataDir);
  writeFileSync(join(dataDir, 'notes.txt'), 'not a database\n');
  const args = [
    '--data-dir',
    dataDir,
    '--listen-client',
    `0.0.0.0:${await freePort()}`,
    '--listen-peer',
    `0.0.0.0:${await freePort()}`,
  ];
  for (const [label, extraArgs, env] of [
    ['--insecure', ['--insecure'], {}],
    ['RAFTKV_INSECURE', [], { RAFTKV_INSECURE: 'true' }],
  ] as const) {
    const run = await runToExit(t, [...args, ...extraArgs], env);
    refusedPlainly(t, run, label);
    t.notMatch(run.stderr, /not a loopback address/, `${label}: the TLS check passed`);
    t.match(run.stderr, /not a raftkv data dir/, `${label}: it went on to the data dir`);
  }
});

t.test('TLS flags that cannot work are refused before anything starts', async (t) => {
  const dir = tempDir(t, 'flags');
  const dataDir = join(dir, 'data');
  const base = [
    '--data-dir',
    dataDir,
    '--listen-client',
    `127.0.0.1:${await freePort()}`,
    '--listen-peer',
    `127.0.0.1:${await freePort()}`,
  ];
  const cases: [string, string[], RegExp][] = [
    [
      'a client cert without its key',
      ['--client-cert-file', join(dir, 'n1.crt')],
      /--client-cert-file is set but --client-key-file is not/,
    ],
    [
      'a peer key without its cert',
      ['--peer-key-file', join(dir, 'n1.key'), '--peer-ca-file', join(dir, 'ca.crt')],
      /--peer-key-file is set but --peer-cert-file is not/,
    ],
    [
      'missing certificate files',
      ['--client-cert-file', join(dir, 'nope.crt'), '--client-key-file', join(dir, 'nope.key')],
      /client TLS certificate file .*nope\.crt cannot be read/,
    ],
  ];
  for (const [label, extra, message] of cases) {
    const run = await runToExit(t, [...base, ...extra]);
    refusedPlainly(t, run, label);
    t.match(run.stderr, message, `${label}: says what is wrong`);
    t.notOk(existsSync(dataDir), `${label}: the data dir was not created`);
  }
  // The same rules hold for startNode (the library).
  const config = (overrides: Partial<NodeConfig>): NodeConfig => ({
    ...defaultConfig,
    initialCluster: new Map(),
    ...overrides,
  });
  t.throws(
    () =>
      checkTlsConfig(
        config({
          peerCertFile: 'a',
          peerKeyFile: 'b',
          peerCaFile: 'c',
          advertisePeerUrl: 'https://127.0.0.1:7380',
          initialCluster: new Map([['n1', 'http://127.0.0.1:7380']]),
        }),
      ),
    /peer TLS is on, so peer URLs must be https/,
  );
  t.throws(
    () => checkTlsConfig(config({ peerCertFile: 'a', peerKeyFile: 'b' })),
    /need --peer-ca-file/,
  );
  t.throws(() => checkTlsConfig(config({ listenClient: '10.1.2.3:7379' })), /not a loopback/);
  t.doesNotThrow(() => checkTlsConfig(config({ listenClient: '10.1.2.3:7379', insecure: true })));
  t.doesNotThrow(() =>
    checkTlsConfig(
      config({ listenClient: '0.0.0.0:7379', clientCertFile: 'a', clientKeyFile: 'b' }),
    ),
  );
});

t.test('loopback addresses are 127.0.0.0/8, ::1 and localhost', async (t) => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', '0:0:0:0:0:0:0:1', 'localhost'])
    t.ok(isLoopbackHost(host), `${host} is loopback`);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '128.0.0.1'])
    t.notOk(isLoopbackHost(host), `${host} is not`);
});

t.test('the data dir is created 0700 and the files in it 0600', async (t) => {
  const dataDir = join(tempDir(t, 'modes'), 'data');
  const clientPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const proc = new RaftkvProcess(
    [
      '--data-dir',
      dataDir,
      '--listen-client',
      `127.0.0.1:${clientPort}`,
      '--listen-peer',
      `127.0.0.1:${await freePort()}`,
      '--tick-ms',
      '20',
      '--log-level',
      'warn',
    ],
    { env: cleanEnv({ coverage: false }) },
  );
  t.teardown(() => proc.kill('SIGKILL'));
  await waitUntil(
    'the node to lead',
    async () => ((await status(url, 500))?.role === 'leader' ? true : undefined),
    30_000,
  );
  for (let i = 0; i < 20; i++) t.equal((await putKey(url, `k${i}`, 'v')).kind, 'ok');
  await proc.kill('SIGTERM');
  t.equal(statSync(dataDir).mode & 0o777, 0o700, 'the data dir is 0700');
  const files = readdirSync(dataDir, { recursive: true, encoding: 'utf8' });
  t.ok(files.length > 0, 'it holds files');
  const loose = files
    .map((f) => ({ f, mode: statSync(join(dataDir, f)).mode }))
    .filter(({ mode }) => (mode & 0o077) !== 0)
    .map(({ f, mode }) => `${f} ${(mode & 0o777).toString(8)}`);
  t.same(loose, [], 'no file or directory in it is readable by others');
});
