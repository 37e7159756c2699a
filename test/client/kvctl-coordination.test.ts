/**
 * kvctl's coordination commands as child processes against a 3-node
 * in-process cluster: lease, registry (register held until SIGTERM), lock
 * (running a command with the fencing token), elect and elect --observe.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { Client } from '../../src/client/index.js';
import { startCluster } from '../integration/helpers.js';
import { kvctlBundle } from '../support/kvctl-bundle.js';

const root = join(import.meta.dirname, '..', '..');

/** Without tap's NODE_OPTIONS / coverage, which would make each start much slower. */
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([name]) => !/^(NODE_OPTIONS|NODE_V8_COVERAGE|TAP|_TAPJS_)/.test(name),
  ),
);

const children = new Set<ChildProcess>();
t.teardown(() => {
  for (const c of children) c.kill('SIGKILL');
});

interface Proc {
  child: ChildProcess;
  /** Output so far. */
  out(): { stdout: string; stderr: string };
  /** Resolves when stdout matches (rejects after `ms`). */
  waitFor(re: RegExp, ms?: number): Promise<void>;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Starts kvctl; it is SIGKILLed after `killAfterMs` whatever happens. */
function start(args: string[], killAfterMs = 30_000): Proc {
  const child = spawn(process.execPath, [kvctlBundle(), ...args], {
    cwd: root,
    env: { ...baseEnv, KVCTL_ENDPOINTS: endpoints },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString('utf8');
    for (const w of waiters) w();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString('utf8');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        children.delete(child);
        for (const w of waiters) w();
        resolve({ code, stdout, stderr });
      });
    },
  );
  return {
    child,
    out: () => ({ stdout, stderr }),
    done,
    waitFor(re, ms = 15_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (re.test(stdout)) {
            cleanup();
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(new Error(`kvctl exited before ${re}: ${stdout} ${stderr}`));
          }
        };
        const timeout = setTimeout(() => {
          cleanup();
          reject(new Error(`no ${re} within ${ms} ms: ${stdout} ${stderr}`));
        }, ms);
        const cleanup = () => {
          clearTimeout(timeout);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

const run = (args: string[]) => start(args).done;

const cluster = await startCluster(3);
t.teardown(() => cluster.close());
await cluster.waitForLeader();
const endpoints = [0, 1, 2].map((i) => cluster.url(i)).join(',');
const client = new Client({ endpoints: endpoints.split(',') });
t.teardown(() => client.close());

t.test('lease grant, get, ls, keepalive --once, revoke', async (t) => {
  const grant = await run(['-o', 'json', 'lease', 'grant', '30', '--id', 'cli-lease']);
  t.equal(grant.code, 0, grant.stderr);
  t.same(JSON.parse(grant.stdout), { id: 'cli-lease', ttl: 30 });
  await client.put('cli-lease/k', 'v', { lease: 'cli-lease' });

  const [get, ls, keep] = await Promise.all([
    run(['lease', 'get', 'cli-lease']),
    run(['lease', 'ls']),
    run(['lease', 'keepalive', 'cli-lease', '--once']),
  ]);
  t.equal(get.code, 0, get.stderr);
  t.match(get.stdout, /^id\s+cli-lease\nttl\s+30\nremaining\s+\d+\nkeys\s+cli-lease\/k\n$/);
  t.equal(ls.code, 0, ls.stderr);
  t.match(ls.stdout, /^ID\s+TTL\s+REMAINING\n(.*\n)*cli-lease\s+30\s+\d+\n/);
  t.equal(keep.code, 0, keep.stderr);
  t.match(keep.stdout, /^id\s+cli-lease\nttl\s+30\n$/);

  // Without --once it keeps renewing, and exits 3 when the lease is revoked elsewhere.
  const keeper = start(['lease', 'keepalive', 'cli-lease']);
  await keeper.waitFor(/^id\s+cli-lease\nttl\s+30\n$/);
  await client.revokeLease('cli-lease');
  const kept = await keeper.done;
  t.equal(kept.code, 3, 'lease lost: exit 3');
  t.match(kept.stderr, /lease lost: lease_not_found/);
  await client.grantLease(30, { id: 'cli-lease' });
  await client.put('cli-lease/k', 'v', { lease: 'cli-lease' });

  const revoke = await run(['lease', 'revoke', 'cli-lease']);
  t.equal(revoke.code, 0, revoke.stderr);
  t.match(revoke.stdout, /^revoked\s+true\ndeleted\s+1\n$/);
  const missing = await run(['lease', 'get', 'cli-lease']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /lease_not_found/);
});

t.test('lock -- command: runs it with the fencing token, then frees the lock', async (t) => {
  const res = await run([
    'lock',
    'job',
    '--ttl',
    '5',
    '--',
    process.execPath,
    '-e',
    'console.log("token=" + process.env.RAFTKV_FENCING_TOKEN + " key=" + process.env.RAFTKV_LOCK_KEY)',
  ]);
  t.equal(res.code, 0, res.stderr);
  const m = /^token=(\d+) key=(\S+)\n$/.exec(res.stdout);
  t.ok(m, `printed the token: ${res.stdout}`);
  t.ok(Number(m?.[1]) > 0);
  t.match(res.stderr, /fencing token \d+/);

  // The lock is free again, and its lease is gone.
  const lease = (await client.grantLease(10)).id;
  const lock = await client.lock('job', { lease, timeoutMs: 1_000 });
  t.ok(lock.fencingToken > Number(m?.[1]), 'the next holder gets a larger token');
  await client.unlock('job', lock.key);
  t.notOk(
    (await client.leases()).some((l) => l.id !== lease && l.ttl === 5),
    "kvctl's lease was revoked",
  );
  await client.revokeLease(lease);

  const failing = await run(['lock', 'job', '--', process.execPath, '-e', 'process.exit(7)']);
  t.equal(failing.code, 7, "exits with the command's exit code");
});

t.test('lock: lock_timeout exits 1; without a command holds until SIGTERM', async (t) => {
  const holder = start(['lock', 'held', '--ttl', '5']);
  await holder.waitFor(/fencingToken\s+\d+/);
  const [late, lateOldFlag] = await Promise.all([
    run(['lock', 'held', '--wait-timeout', '1s']),
    run(['lock', 'held', '--timeout', '1000']),
  ]);
  t.equal(late.code, 1);
  t.match(late.stderr, /lock_timeout/);
  t.notMatch(late.stderr, /--wait-timeout/, 'no note with the new name');
  // The old name of --wait-timeout still sets the wait, and says what to use instead.
  t.equal(lateOldFlag.code, 1);
  t.match(lateOldFlag.stderr, /lock --timeout is now --wait-timeout[\s\S]*lock_timeout/);
  // A waiter interrupted in line gives up (130) and leaves the line.
  const leasesBefore = (await client.leases()).length;
  const waiter = start(['lock', 'held']);
  for (let i = 0; i < 100 && (await client.leases()).length === leasesBefore; i++)
    await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 300));
  waiter.child.kill('SIGINT');
  const interrupted = await waiter.done;
  t.equal(interrupted.code, 130, interrupted.stderr);
  t.match(interrupted.stderr, /interrupted while waiting for lock held/);
  holder.child.kill('SIGTERM');
  const end = await holder.done;
  t.equal(end.code, 0, end.stderr);
  const lease = (await client.grantLease(10)).id;
  const lock = await client.lock('held', { lease, timeoutMs: 1_000 });
  await client.unlock('held', lock.key);
  await client.revokeLease(lease);
});

t.test('lock: the command is stopped when the lease is lost', async (t) => {
  const proc = start([
    'lock',
    'lost',
    '--ttl',
    '3',
    '--',
    process.execPath,
    '-e',
    'console.log("started"); setTimeout(() => {}, 60000)',
  ]);
  await proc.waitFor(/started/);
  const kvctlLease = (await client.leases()).find((l) => l.ttl === 3);
  t.ok(kvctlLease, "kvctl's lease is listed");
  await client.revokeLease(kvctlLease!.id);
  const end = await proc.done;
  t.equal(end.code, 143, 'the command was terminated (SIGTERM)');
  t.match(end.stderr, /lease lost: lease_not_found/);
});

t.test('registry register holds a name until SIGTERM; lookup, ls, unregister', async (t) => {
  const holder = start(['registry', 'register', 'svc/api', 'http://10.0.0.1:80', '--ttl', '5']);
  await holder.waitFor(/^registered svc\/api = http:\/\/10\.0\.0\.1:80 \(lease \S+\)\n/);

  const [lookup, ls, taken] = await Promise.all([
    run(['-o', 'json', 'registry', 'lookup', 'svc/api']),
    run(['registry', 'ls', 'svc/']),
    run(['registry', 'register', 'svc/api', 'other']),
  ]);
  t.equal(lookup.code, 0, lookup.stderr);
  t.match(JSON.parse(lookup.stdout), { name: 'svc/api', value: 'http://10.0.0.1:80' });
  t.equal(ls.code, 0, ls.stderr);
  t.match(
    ls.stdout,
    /^NAME\s+VALUE\s+LEASE\s+CREATE-REV\s+MOD-REV\nsvc\/api\s+http:\/\/10\.0\.0\.1:80\s/,
  );
  t.equal(taken.code, 1, 'a taken name exits 1');
  t.match(taken.stderr, /name_taken: "svc\/api" is held by lease/);

  holder.child.kill('SIGTERM');
  const end = await holder.done;
  t.equal(end.code, 0, end.stderr);
  const gone = await run(['registry', 'lookup', 'svc/api']);
  t.equal(gone.code, 1, 'the name is free after SIGTERM');
  t.match(gone.stderr, /key_not_found/);

  // Two kvctl processes start before the revoke: on a loaded machine that can take over 10 s.
  const lease = (await client.grantLease(60)).id;
  await client.register('svc/manual', 'm', lease);
  const wrong = await run(['registry', 'unregister', 'svc/manual', '--lease', 'not-the-owner']);
  t.equal(wrong.code, 1);
  const unregister = await run(['registry', 'unregister', 'svc/manual', '--lease', lease]);
  t.equal(unregister.code, 0, unregister.stderr);
  t.match(unregister.stdout, /^deleted\s+1\nrevision\s+\d+\n$/);
  await client.revokeLease(lease);
});

t.test('registry register exits 3 when its lease is lost; registry watch', async (t) => {
  const watch = start(['-o', 'json', 'registry', 'watch', 'lost/']);
  await new Promise((r) => setTimeout(r, 1_500));
  const holder = start(['registry', 'register', 'lost/x', 'v', '--ttl', '4']);
  await holder.waitFor(/^registered lost\/x/);
  const entry = await client.lookup('lost/x');
  await client.revokeLease(entry.lease!);
  const end = await holder.done;
  t.equal(end.code, 3);
  t.match(end.stderr, /lease lost/);

  await watch.waitFor(/"type":"delete"/);
  watch.child.kill('SIGINT');
  const w = await watch.done;
  t.equal(w.code, 0, w.stderr);
  const lines = w.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.same(
    lines.flatMap((c) =>
      c.events.map((e: { type: string; entry: { name: string } }) => [e.type, e.entry.name]),
    ),
    [
      ['put', 'lost/x'],
      ['delete', 'lost/x'],
    ],
  );
});

t.test('elect campaigns and holds; elect --observe prints leader changes', async (t) => {
  const observer = start(['elect', '--observe', 'cli-election']);
  await observer.waitFor(/\(no leader\)\n/);

  const first = start(['elect', 'cli-election', 'worker-1', '--ttl', '5']);
  await first.waitFor(/^elected: cli-election = worker-1 \(key \S+\)\n/);
  await observer.waitFor(/worker-1/);
  const leasesBefore = (await client.leases()).length;
  const second = start(['elect', 'cli-election', 'worker-2', '--ttl', '5']);
  // Its lease appears just before it campaigns.
  for (let i = 0; i < 100 && (await client.leases()).length === leasesBefore; i++)
    await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500));
  t.equal(second.out().stdout, '', 'the second candidate waits');
  t.equal((await client.leader('cli-election')).value, 'worker-1');
  // A candidate with a wait limit gives up (exit 1) and leaves the line with its lease.
  const impatient = await run(['elect', 'cli-election', 'worker-3', '--wait-timeout', '1s']);
  t.equal(impatient.code, 1, impatient.stderr);
  t.match(impatient.stderr, /lock_timeout/);
  t.equal(
    (await client.leases()).length,
    leasesBefore + 1,
    "its lease is revoked, the second's kept",
  );
  const observing = await run(['elect', '--observe', 'cli-election', '--wait-timeout', '1s']);
  t.equal(observing.code, 2, '--observe takes no --wait-timeout');

  first.child.kill('SIGTERM');
  t.equal((await first.done).code, 0);
  await second.waitFor(/^elected: cli-election = worker-2/);
  await observer.waitFor(/worker-2/);
  second.child.kill('SIGINT');
  t.equal((await second.done).code, 0);
  await observer.waitFor(/worker-2[^\n]*\n\d+\s+\(no leader\)\n/);

  observer.child.kill('SIGTERM');
  const obs = await observer.done;
  t.equal(obs.code, 0, obs.stderr);
  const lines = obs.stdout.trim().split('\n');
  t.match(lines[0], /^\d+\s+\(no leader\)$/);
  t.match(lines[1], /^\d+\s+worker-1\s+\(key \S+, since revision \d+\)$/);
  t.match(lines[2], /^\d+\s+worker-2\s/, 'the waiting candidate took over');
  t.match(lines[3], /^\d+\s+\(no leader\)$/);
  t.equal(lines.length, 4, obs.stdout);

  const usage = await run(['elect', 'cli-election']);
  t.equal(usage.code, 2);
});
