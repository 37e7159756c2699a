/**
 * kvctl as a child process: --version; values from stdin (`-`) and from
 * --file, byte for byte and large, and refused when not UTF-8; and
 * --command-timeout, which makes a command fail fast without a quorum but
 * does not cut a long-running command (watch, lock) in its normal life.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { invalidUtf8Offset } from '../../cmd/kvctl/value-input.js';
import { Client } from '../../src/client/index.js';
import { VERSION } from '../../src/server/version.js';
import { startCluster } from '../integration/helpers.js';
import { kvctlRunner } from '../support/kvctl-run.js';

const root = join(import.meta.dirname, '..', '..');

const { start, run: kvctl, killAll } = kvctlRunner(() => endpoints, 60_000);
t.teardown(killAll);

function waitForOutput(child: ChildProcess, ready: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ${ready} within 30 s: ${out}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d.toString('utf8');
      if (ready.test(out)) {
        clearTimeout(timer);
        child.stdout!.removeListener('data', onData);
        resolve(out);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kvctl exited (${code}) before ${ready}: ${out}`));
    });
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('close', (code) => resolve(code));
  });
}

const cluster = await startCluster(3);
t.teardown(() => cluster.close());
await cluster.waitForLeader();
const endpoints = [0, 1, 2].map((i) => cluster.url(i)).join(',');
const client = new Client({ endpoints: endpoints.split(',') });
t.teardown(() => client.close());
const tmp = mkdtempSync(join(tmpdir(), 'kvctl-values-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

/** 200 KB of text with multi-byte characters, a NUL, a BOM up front and a trailing newline. */
const big = `\ufeff${'raftkv ✓ 日本語 \u0000 '.repeat(8_000).slice(0, 200_000)}\n`;

t.test('--version prints the version the server reports (package.json agrees)', async (t) => {
  const [long, short] = await Promise.all([kvctl(['--version']), kvctl(['-V'])]);
  t.equal(long.code, 0, long.stderr);
  t.equal(long.stdout, `${VERSION}\n`);
  t.equal(short.stdout, `${VERSION}\n`);
  t.equal((await client.status()).version, VERSION, 'the same as /v1/status');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  t.equal(pkg.version, VERSION, 'package.json');
});

t.test('put KEY - stores stdin byte for byte; --file F a file; 200 KB each', async (t) => {
  const file = join(tmp, 'value.txt');
  writeFileSync(file, `${big}from a file`);
  const [fromStdin, fromFile, literal] = await Promise.all([
    kvctl(['put', 'in/stdin', '-'], { stdin: Buffer.from(big, 'utf8') }),
    kvctl(['put', 'in/file', '--file', file]),
    kvctl(['put', 'in/literal', '--', '-x']),
  ]);
  t.equal(fromStdin.code, 0, fromStdin.stderr);
  t.equal(fromFile.code, 0, fromFile.stderr);
  t.equal(literal.code, 0, literal.stderr);
  const stored = (await client.get('in/stdin')).kv.value;
  t.equal(stored.length, big.length, 'all of it');
  t.ok(stored === big, 'the same characters, BOM and trailing newline included');
  t.ok((await client.get('in/file')).kv.value === `${big}from a file`, 'the file, exactly');
  t.equal((await client.get('in/literal')).kv.value, '-x', 'a VALUE argument is still the value');
});

t.test(
  'registry register NAME - and elect NAME --file take their value the same way',
  async (t) => {
    const file = join(tmp, 'candidate.txt');
    writeFileSync(file, 'candidate\nfrom a file');
    const register = start(['registry', 'register', 'svc/in', '-', '--ttl', '5']);
    register.stdin!.end('10.0.0.1:80\n');
    const elect = start(['elect', 'in-election', '--file', file, '--ttl', '5']);
    elect.stdin!.end();
    await Promise.all([waitForOutput(register, /registered/), waitForOutput(elect, /elected/)]);
    t.equal((await client.lookup('svc/in')).value, '10.0.0.1:80\n');
    t.equal((await client.leader('in-election')).value, 'candidate\nfrom a file');
    register.kill('SIGINT');
    elect.kill('SIGINT');
    t.same(await Promise.all([exitOf(register), exitOf(elect)]), [0, 0], 'Ctrl-C: exit 0');
  },
);

t.test('input that is not UTF-8 is refused (exit 2), not stored altered', async (t) => {
  const bad = Buffer.concat([Buffer.from('abc', 'utf8'), Buffer.from([0xff, 0x00, 0xc3])]);
  const file = join(tmp, 'binary.bin');
  writeFileSync(file, bad);
  const txnFile = join(tmp, 'txn.json');
  writeFileSync(
    txnFile,
    Buffer.concat([
      Buffer.from('{"success": [{"op": "put", "key": "in/bad", "value": "', 'utf8'),
      Buffer.from([0xc0, 0xaf]),
      Buffer.from('"}]}', 'utf8'),
    ]),
  );
  const [stdin, fromFile, txn, both, none] = await Promise.all([
    kvctl(['put', 'in/bad', '-'], { stdin: bad }),
    kvctl(['put', 'in/bad', '--file', file]),
    kvctl(['txn', txnFile]),
    kvctl(['put', 'in/bad', 'v', '--file', file]),
    kvctl(['put', 'in/bad']),
  ]);
  t.equal(stdin.code, 2, stdin.stderr);
  t.equal(
    stdin.stderr,
    'error: stdin is not valid UTF-8 (byte 3 of 6): raftkv values are text, so encode binary data first (e.g. base64)\n',
  );
  t.equal(fromFile.code, 2);
  t.match(fromFile.stderr, /^error: --file .*binary\.bin is not valid UTF-8 \(byte 3 of 6\)/);
  t.equal(txn.code, 2);
  t.match(txn.stderr, /is not valid UTF-8 \(byte 54 of/);
  t.equal(both.code, 2);
  t.match(both.stderr, /give VALUE or --file, not both/);
  t.equal(none.code, 2);
  t.match(none.stderr, /VALUE is missing/);
  t.match(await client.get('in/bad').catch((e: unknown) => e), { code: 'key_not_found' });
});

t.test('the UTF-8 check: the first malformed byte, by RFC 3629', async (t) => {
  const at = (bytes: number[]) => invalidUtf8Offset(Uint8Array.from(bytes));
  t.equal(at([0x61, 0xe6, 0x97, 0xa5, 0xf0, 0x9f, 0x98, 0x80]), -1, 'well-formed');
  t.equal(at([0x61, 0xc0, 0xaf]), 1, 'overlong 2-byte');
  t.equal(at([0xe0, 0x80, 0xaf]), 0, 'overlong 3-byte');
  t.equal(at([0x61, 0x62, 0xed, 0xa0, 0x80]), 2, 'a surrogate');
  t.equal(at([0xf4, 0x90, 0x80, 0x80]), 0, 'past U+10FFFF');
  t.equal(at([0x61, 0xe6, 0x97]), 1, 'cut short');
  t.equal(at([0x80]), 0, 'a lone continuation byte');
});

t.test('--command-timeout: --help shows it and its default', async (t) => {
  const [help, bad] = await Promise.all([
    kvctl(['--help']),
    kvctl(['--command-timeout', '5 parsecs', 'get', 'k']),
  ]);
  t.equal(help.code, 0);
  t.match(
    help.stdout,
    /--command-timeout <duration>[\s\S]*\(default:\s+5s,\s+env:\s+KVCTL_COMMAND_TIMEOUT\)/,
  );
  t.match(help.stdout, /-V, --version/);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /not a duration: "5 parsecs"/);
});

t.test('a long-running command is not cut by --command-timeout in its normal life', async (t) => {
  const timeout = ['--command-timeout', '2s'];
  // A watch seen open (it printed a change), then left for longer than the timeout.
  const watch = start([...timeout, '-o', 'json', 'watch', 'long/w']);
  watch.stdin!.end();
  const watchErr: string[] = [];
  watch.stderr!.on('data', (d: Buffer) => watchErr.push(d.toString('utf8')));
  // A lock held (by a command) for longer than the timeout, then released.
  const lock = start([
    ...timeout,
    'lock',
    'long-lock',
    '--',
    process.execPath,
    '-e',
    'setTimeout(() => {}, 3000)',
  ]);
  lock.stdin!.end();
  const lockErr: string[] = [];
  lock.stderr!.on('data', (d: Buffer) => lockErr.push(d.toString('utf8')));

  // Put until the watch shows one (it may not be open yet at the first put): bounded.
  const first = waitForOutput(watch, /"revision"/);
  let seen = false;
  void first.then(() => {
    seen = true;
  });
  for (let i = 0; i < 100 && !seen; i++) {
    await client.put('long/w', `first ${i}`);
    await Promise.race([first, sleep(200)]).catch(() => {});
  }
  await first.catch((err: Error) => {
    throw new Error(`${err.message} ${watchErr.join('')}`);
  });
  await sleep(2_500); // longer than the timeout: a watch cut by it would have exited 3 by now
  const second = waitForOutput(watch, /still watching/);
  await client.put('long/w', 'still watching');
  await second.catch((err: Error) => {
    throw new Error(`${err.message} ${watchErr.join('')}`);
  });
  watch.kill('SIGINT');
  t.equal(await exitOf(watch), 0, `watch: exit 0 after Ctrl-C ${watchErr.join('')}`);
  t.equal(await exitOf(lock), 0, `lock: the command's exit code, 0 ${lockErr.join('')}`);
  t.notMatch(lockErr.join(''), /warning|error/, 'unlocked and revoked cleanly');
});

// Last: it stops two of the three members.
t.test('without a quorum, put fails within --command-timeout: one line, exit 3', async (t) => {
  const leader = await cluster.waitForLeader();
  await Promise.all([cluster.stopNode((leader + 1) % 3), cluster.stopNode((leader + 2) % 3)]);
  // Many retries: without the deadline, each command would go on for minutes.
  const retries = ['--retries', '100'];
  const [flag, env, read, baseline] = await Promise.all([
    kvctl([...retries, '--command-timeout', '1s', 'put', 'noquorum/k', 'v']),
    kvctl([...retries, 'put', 'noquorum/k', 'v'], { env: { KVCTL_COMMAND_TIMEOUT: '1500ms' } }),
    kvctl([...retries, '--command-timeout', '1s', 'get', 'noquorum/k']),
    kvctl(['--version']),
  ]);
  for (const [what, r, ms] of [
    ['--command-timeout 1s', flag, 1000],
    ['KVCTL_COMMAND_TIMEOUT=1500ms', env, 1500],
    ['a linearizable get', read, 1000],
  ] as const) {
    t.equal(r.code, 3, `${what}: exit 3 (${r.stderr})`);
    // Generous slack over the start of a process on this machine now: bounded, not a tight threshold.
    t.ok(
      r.elapsedMs < 5 * ms + 2 * baseline.elapsedMs,
      `${what}: gave up in ${r.elapsedMs} ms (a kvctl --version took ${baseline.elapsedMs} ms)`,
    );
    t.match(
      r.stderr,
      /^error: timeout: gave up after the command timeout of [\d.]+ m?s \(--command-timeout\); last attempt: [a-z_]+: .+\n$/,
      `${what}: one line, saying why`,
    );
  }
  t.match(flag.stderr, /\(the write (was not applied|may or may not have been applied)\)\n$/);
  t.notMatch(read.stderr, /the write/, 'a read says nothing about writes');
});
