/**
 * A `kvctl lock NAME -- command` holder frozen with SIGSTOP (kvctl and its
 * command, one process group) past its lease TTL, on 3 real raftkv
 * processes. API.md "Locks": the next holder gets a strictly larger fencing
 * token, and a fenced txn of the stale holder "cannot write through it". kvctl
 * (--help): the command gets RAFTKV_FENCING_TOKEN and RAFTKV_LOCK_KEY
 * (URI-encoded), and SIGTERM if the lease is lost; kvctl then exits with the
 * command's exit code.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Client } from '../../src/client/index.js';
import { currentRevision, fencedPut } from './coordination-ops.js';
import { sleep, waitUntil } from './http-ops.js';
import { ProcessCluster, type RaftkvProcess, startKvctl } from './process-cluster.js';
import { readHistory } from './sse.js';

const LOCK = 'job';
const OUT = 'fenced/out';
const HOLDER_TTL_S = 2;
/** Lease expiry plus a new leader's restart of deadlines, generously. */
const HANDOVER_BOUND_MS = HOLDER_TTL_S * 1000 + 15_000;
/** What `sleep` killed by SIGTERM exits with, and kvctl passes on. */
const EXIT_SIGTERM = 128 + 15;

/**
 * `kvctl lock` running a shell that records its token and holder key in `file`, then
 * sleeps (exec'd, so kvctl's SIGTERM reaches the sleep itself).
 */
function lockHolder(endpoints: string[], file: string): RaftkvProcess {
  const script =
    'printf "%s %s" "$RAFTKV_FENCING_TOKEN" "$RAFTKV_LOCK_KEY" > "$1.tmp" && mv "$1.tmp" "$1"; exec sleep 60';
  return startKvctl(endpoints, [
    'lock',
    LOCK,
    '--ttl',
    String(HOLDER_TTL_S),
    '--',
    'sh',
    '-c',
    script,
    'sh',
    file,
  ]);
}

/** The token and decoded holder key the command recorded. */
async function recorded(file: string, holder: RaftkvProcess) {
  const text = await waitUntil(
    `the lock holder's command to record its token in ${file}`,
    () => {
      if (!holder.running) throw new Error(`kvctl exited: ${JSON.stringify(holder.exit)}`);
      return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    },
    30_000,
    50,
  );
  const [token, key] = text.split(' ');
  return { token: Number(token), key: decodeURIComponent(key ?? '') };
}

t.test(
  'a SIGSTOPped kvctl lock holder loses the lock past its TTL: the next token is larger, stale fenced writes are refused, kvctl stops its command',
  async (t) => {
    const c = await ProcessCluster.create(3);
    const holders: RaftkvProcess[] = [];
    let client: Client | undefined;
    t.teardown(async () => {
      await Promise.all(holders.map((h) => h.kill('SIGKILL')));
      await client?.close();
      await c.close();
    });
    try {
      await c.startAll();
      await c.waitForLeader();
      const endpoints = [0, 1, 2].map((i) => c.url(i));
      const urls = () => endpoints;
      client = new Client({ endpoints, timeoutMs: 5_000 });
      const startRev = (await currentRevision(urls)) + 1;
      const landed: { token: number; value: string }[] = [];
      const refused: string[] = [];
      const write = async (token: number, value: string) => {
        const ok = await fencedPut(urls, LOCK, token, OUT, value);
        if (ok) landed.push({ token, value });
        else refused.push(value);
        return ok;
      };

      // 1. kvctl acquires and its command records the token; the holder's fenced write lands.
      const first = lockHolder(endpoints, join(c.dir, 'first.token'));
      holders.push(first);
      const one = await recorded(join(c.dir, 'first.token'), first);
      t.ok(one.token > 0, `kvctl's command got fencing token ${one.token}`);
      t.ok(one.key.length > 0, 'and its holder key');
      t.ok(
        await write(one.token, `${one.token}:first`),
        'the first holder writes through its fence',
      );

      // 2. A second holder (the library) queues, then the first is frozen past its TTL.
      const lease2 = (await client.grantLease(HOLDER_TTL_S)).id;
      const keeper2 = client.keepLeaseAlive(lease2, { ttlSeconds: HOLDER_TTL_S });
      t.teardown(() => keeper2.stop());
      const waiting = client.lock(LOCK, { lease: lease2, timeoutMs: HANDOVER_BOUND_MS });
      await sleep(300);
      t.ok(
        await write(one.token, `${one.token}:still`),
        'the first holder still holds while it renews',
      );
      t.ok(first.signal('SIGSTOP'), 'kvctl and its command are SIGSTOPped (one process group)');
      const stoppedAt = Date.now();
      const two = await waiting;
      t.ok(
        Date.now() - stoppedAt >= (HOLDER_TTL_S * 1000) / 2,
        `the lock changed hands only after the stopped holder's lease ran out (${Date.now() - stoppedAt} ms)`,
      );
      t.ok(two.fencingToken > one.token, `the token grows: ${one.token} < ${two.fencingToken}`);
      t.ok(
        await write(two.fencingToken, `${two.fencingToken}:second`),
        'the new holder writes through its fence',
      );
      t.notOk(
        await write(one.token, `${one.token}:stale-frozen`),
        "the stale token's fenced write is refused",
      );
      await sleep(HOLDER_TTL_S * 1000); // frozen well past the TTL
      t.equal(first.exit, undefined, 'kvctl was still stopped, not dead');

      // 3. The first holder wakes: its stale write is refused, kvctl notices and stops its command.
      t.ok(first.signal('SIGCONT'), 'SIGCONT to the group');
      t.notOk(
        await write(one.token, `${one.token}:stale-woken`),
        'the woken holder cannot write through its old token',
      );
      const exit = await first.waitExit(20_000);
      t.same(
        exit,
        { code: EXIT_SIGTERM, signal: null },
        "kvctl SIGTERMed its command and exited with the command's code",
      );
      t.match(
        first.stderr,
        /lease lost/,
        `kvctl says why: ${first.stderr.trim().split('\n').at(-1)}`,
      );
      t.notOk(await write(one.token, `${one.token}:stale-after-exit`), 'nor after kvctl exited');
      t.ok(
        await write(two.fencingToken, `${two.fencingToken}:after-wake`),
        "the woken holder's clean-up left the new holder's lock alone",
      );

      // 4. The library releases; a new kvctl gets a larger token still; SIGTERM ends it cleanly.
      await client.unlock(LOCK, two.key);
      await keeper2.stop();
      t.notOk(
        await write(two.fencingToken, `${two.fencingToken}:released`),
        "a released holder's token is refused",
      );
      const third = lockHolder(endpoints, join(c.dir, 'third.token'));
      holders.push(third);
      const three = await recorded(join(c.dir, 'third.token'), third);
      t.ok(three.token > two.fencingToken, `the token grows: ${two.fencingToken} < ${three.token}`);
      t.ok(await write(three.token, `${three.token}:third`), 'the third holder writes');
      const end = await third.kill('SIGTERM');
      t.same(end, { code: EXIT_SIGTERM, signal: null }, 'SIGTERM: kvctl stops its command');
      t.notOk(await write(three.token, `${three.token}:gone`), 'its lock was released on exit');

      // The key's history is exactly the fenced writes that were acknowledged, tokens growing.
      const upTo = await currentRevision(urls);
      const h = await readHistory(
        endpoints[0]!,
        `/v1/watch/${encodeURIComponent(OUT)}`,
        startRev,
        upTo,
        15_000,
      );
      const values = (h ?? []).flatMap((ch) => ch.events.map((e) => e.kv.value));
      t.same(
        values,
        landed.map((l) => l.value),
        'only the acknowledged fenced writes landed, in order',
      );
      const tokens = [...new Set(landed.map((l) => l.token))];
      t.ok(
        tokens.every((tok, i) => i === 0 || tok > tokens[i - 1]!),
        `tokens of successful fenced writes strictly increase by holder: ${tokens.join(' < ')}`,
      );
      t.equal(tokens.length, 3, 'three holders wrote');
      t.comment(
        `tokens ${tokens.join(', ')}; ${landed.length} fenced writes landed, ${refused.length} refused ` +
          `(${refused.join(', ')}); kvctl exits ${JSON.stringify(exit)}, ${JSON.stringify(end)}`,
      );
    } finally {
      if (!t.passing())
        t.comment(
          `${c.diagnostics()}\n${holders.map((h) => `kvctl ${h.pid}: ${h.stderr}`).join('\n')}`,
        );
    }
  },
);
