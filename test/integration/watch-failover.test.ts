/**
 * A prefix watch (SSE over real HTTP) rides out leader changes while writes go
 * on: (1) the leader it watches on is cut off and the client resumes on a node
 * of the majority, then the next leader is stopped and restarted; (2) the
 * leader it watches on is stopped, the server ends the stream and the client
 * resumes elsewhere. Each time it resumes with `Last-Event-ID`. The
 * concatenated stream must hold every revision that touched the prefix exactly
 * once, in order, with exactly the events the writes produced (API.md: one
 * change per revision, never split, no gaps or duplicates). (3) Stopping a
 * node, or SIGTERM to raftkv, with a watch open ends the stream promptly.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort, startCluster, type TestCluster } from './helpers.js';
import {
  call,
  type Outcome,
  putKey,
  revisionOf,
  seededRandom,
  sleep,
  status,
  waitUntil,
} from './http-ops.js';
import { RaftkvProcess, singleNodeArgs } from './process-cluster.js';
import { type ChangeEvent, ResumingWatcher, sseEvents } from './sse.js';

const PREFIX = 'wf/';
const WATCH_PATH = `/v1/watch/${encodeURIComponent(PREFIX)}?prefix=true`;
const IN_KEYS = ['wf/a', 'wf/b', 'wf/c', 'wf/d'];
const OUT_KEYS = ['wf', 'wg/a', 'other'];
/** Hard cap on writes, whatever the timing. */
const WRITES_MAX = 3_000;
/** The watched stream must carry at least this many acknowledged changes (the load runs on until it has them). */
const WATCHED_WRITES_MIN = 100;

interface Effect {
  type: 'put' | 'delete';
  key: string;
  value?: string;
}

interface Write {
  /** What the write does to the store if it applies (a delete of a missing key does nothing). */
  effects: Effect[];
  result: 'acked' | 'unknown' | 'failed';
  revision?: number;
  /** For an acked delete: how many keys it removed. */
  deleted?: number;
}

/** Stops node i with a bound, so a hang shows up as a failure rather than a stuck test. */
async function stopBounded(c: TestCluster, i: number, timeoutMs: number): Promise<string> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const result = await Promise.race([c.stopNode(i).then(() => 'stopped'), timedOut]);
  clearTimeout(timer);
  return `${result} in ${Date.now() - started} ms`;
}

const render = (e: ChangeEvent['events'][number]) =>
  e.type === 'put' ? `put ${e.kv.key}=${e.kv.value}` : `delete ${e.kv.key}`;

type Scenario = 'isolate-then-stop' | 'stop-watched';

async function failover(t: Test, scenario: Scenario): Promise<void> {
  const seed = Number(process.env.RAFTKV_TEST_SEED ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed} (replay with RAFTKV_TEST_SEED=${seed})`);
  const random = seededRandom(seed);
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const first = await c.waitForLeader(20_000);
  const live = () => [0, 1, 2].filter((i) => c.nodes[i] !== undefined);
  const anyLive = () => {
    const l = live();
    return c.url(l[Math.floor(random() * l.length)]!);
  };

  const seedWrite = await putKey(c.url(first), 'wf/a', 'seed');
  t.equal(seedWrite.status, 200, 'a first write marks where the watch starts');
  const fromRevision = revisionOf(seedWrite) + 1;

  const watcher = new ResumingWatcher(WATCH_PATH, fromRevision, anyLive);
  watcher.start(c.url(first));

  const writes: Write[] = [];
  let writing = true;
  const writer = async (w: number) => {
    for (let n = 0; writing && writes.length < WRITES_MAX; n++) {
      const url = anyLive();
      const dice = random();
      const value = `w${w}-${n}`;
      const pick = (keys: string[]) => keys[Math.floor(random() * keys.length)]!;
      let write: Write;
      let r: Outcome;
      if (dice < 0.45) {
        const key = pick(IN_KEYS);
        write = { effects: [{ type: 'put', key, value }], result: 'unknown' };
        r = await putKey(url, key, value);
      } else if (dice < 0.6) {
        const key = pick(IN_KEYS);
        write = { effects: [{ type: 'delete', key }], result: 'unknown' };
        r = await call(url, `/v1/kv/${encodeURIComponent(key)}`, { method: 'DELETE' });
      } else if (dice < 0.8) {
        // One revision touching two watched keys and one unwatched: one change, never split.
        const [a, b] = [pick(IN_KEYS), pick(IN_KEYS)];
        const keys = a === b ? [a] : [a, b];
        const out = pick(OUT_KEYS);
        write = {
          effects: [...keys, out].map((key) => ({ type: 'put' as const, key, value })),
          result: 'unknown',
        };
        r = await call(url, '/v1/txn', {
          method: 'POST',
          body: { compare: [], success: [...keys, out].map((key) => ({ op: 'put', key, value })) },
        });
      } else {
        const key = pick(OUT_KEYS);
        write = { effects: [{ type: 'put', key, value }], result: 'unknown' };
        r = await putKey(url, key, value);
      }
      writes.push(write);
      if (r.kind === 'ok') {
        write.result = 'acked';
        write.revision = r.body.revision;
        if (r.body.deleted !== undefined) write.deleted = r.body.deleted;
      } else if (r.kind === 'failed') {
        write.result = 'failed';
        await sleep(20);
      }
    }
  };
  const writers = [writer(0), writer(1), writer(2)];
  /** Acknowledged writes that changed a watched key. */
  const ackedWatched = () =>
    writes.filter(
      (w) =>
        w.result === 'acked' &&
        w.effects.some(
          (e) => e.key.startsWith(PREFIX) && (e.type === 'put' || (w.deleted ?? 0) > 0),
        ),
    ).length;
  const log: string[] = [];
  let endRevision = 0;
  let gaveUp = false;
  try {
    await sleep(800);
    if (scenario === 'stop-watched') {
      // Stop the leader the watch is on: the server ends the stream, the watcher resumes elsewhere.
      const stopped = await stopBounded(c, first, 5_000);
      log.push(`stop watched leader n${first + 1}: ${stopped}`);
      t.match(stopped, /^stopped/, 'the watched leader stops while its watch is open');
      if (!stopped.startsWith('stopped')) {
        gaveUp = true;
        return;
      }
      await sleep(1_000);
      await c.restartNode(first);
      await c.waitForLeader(20_000);
      await sleep(500);
    } else {
      // 1. Cut off the leader the watch is on; once the majority has a new leader, the client
      //    gives up on the silent stream and resumes on a node of the majority.
      isolate(c, first);
      const second = await waitUntil(
        'a new leader in the majority',
        () => {
          const i = c.nodes.findIndex(
            (s, k) => k !== first && s?.node.statusSync().role === 'leader',
          );
          return i >= 0 ? i : undefined;
        },
        10_000,
      );
      const majority = [0, 1, 2].filter((i) => i !== first);
      const target = majority[Math.floor(random() * majority.length)]!;
      watcher.switchTo(c.url(target));
      log.push(
        `isolate watched leader n${first + 1} (new leader n${second + 1}), watcher to n${target + 1}`,
      );
      await sleep(1_000);
      for (const f of c.filters) f.heal();
      await sleep(500);
      // 2. Stop the current leader (the watcher moves off it first if it is there), restart it.
      const leader = await c.waitForLeader(20_000);
      if (watcher.currentUrl === c.url(leader)) {
        const other = [0, 1, 2].find((i) => i !== leader)!;
        watcher.switchTo(c.url(other));
        log.push(`watcher to n${other + 1}`);
      }
      await sleep(100);
      const stopped = await stopBounded(c, leader, 8_000);
      log.push(`stop leader n${leader + 1}: ${stopped}`);
      t.match(stopped, /^stopped/, 'the leader (with no watch on it) stops');
      await sleep(1_000);
      await c.restartNode(leader);
      await c.waitForLeader(20_000);
      await sleep(500);
    }
    // The load runs on until the stream has carried real work: a count, not a time.
    await waitUntil(
      `${WATCHED_WRITES_MIN} acknowledged writes to watched keys`,
      () => (ackedWatched() >= WATCHED_WRITES_MIN ? true : undefined),
      60_000,
    ).catch(() => undefined);
  } finally {
    writing = false;
    for (const f of c.filters) f.heal();
    await Promise.all(writers);
    if (gaveUp) await watcher.stop();
  }
  await c.waitForLeader(20_000);
  const end = await putKey(anyLive(), 'wf/zz-end', 'end');
  t.equal(end.status, 200, 'a last write marks the end');
  endRevision = revisionOf(end);
  const caughtUp = await watcher.waitFor(endRevision, 10_000);
  await watcher.stop();
  t.comment(log.join('; '));
  t.comment(
    `connections: ${watcher.connections
      .map((k) => `${k.url.slice(-5)} after ${k.resumedAfter}: ${k.changes} changes, ${k.endedBy}`)
      .join(' | ')}`,
  );
  t.ok(caughtUp, `the watcher reached revision ${endRevision}`);
  t.ok(watcher.connections.length >= 2, 'the watcher resumed on another connection');
  t.same(watcher.problems, [], 'no duplicate, out-of-order or mislabelled event');

  // The history of the prefix, read in one piece from a node at the end.
  const reference = new ResumingWatcher(WATCH_PATH, fromRevision, anyLive, 1);
  const historyNode = live()[0]!;
  await waitUntil(
    'the history node to apply the last write',
    async () => ((await status(c.url(historyNode)))?.revision ?? 0) >= endRevision || undefined,
    10_000,
  );
  reference.start(c.url(historyNode));
  t.ok(await reference.waitFor(endRevision, 10_000), 'the history read reached the end');
  await reference.stop();
  const watched = watcher.changes.filter((ch) => ch.revision <= endRevision);
  t.same(
    watched.map((ch) => ch.revision),
    reference.changes.map((ch) => ch.revision),
    'the resumed stream has exactly the revisions of the history, in order',
  );
  t.same(watched, reference.changes, 'and exactly the same events');

  // Each change is what one write produced, and every acked change of the prefix is there.
  const byRevision = new Map(watched.map((ch) => [ch.revision, ch]));
  const problems: string[] = [];
  let ackedInPrefix = 0;
  for (const w of writes) {
    if (w.result !== 'acked') continue;
    const expected = w.effects
      .filter((e) => e.key.startsWith(PREFIX))
      .filter((e) => e.type === 'put' || (w.deleted ?? 0) > 0)
      .map((e) => (e.type === 'put' ? `put ${e.key}=${e.value}` : `delete ${e.key}`));
    const change = byRevision.get(w.revision!);
    if (expected.length === 0) {
      if (change && w.effects.every((e) => e.type === 'put'))
        problems.push(`revision ${w.revision} touched no watched key but was delivered`);
      continue;
    }
    ackedInPrefix++;
    const got = change ? change.events.map(render).sort() : [];
    if (JSON.stringify(got) !== JSON.stringify(expected.sort()))
      problems.push(`revision ${w.revision}: expected ${expected} got ${got}`);
  }
  const attempted = new Map<string, Write>();
  for (const w of writes)
    for (const e of w.effects) if (e.type === 'put') attempted.set(`${e.key}=${e.value}`, w);
  for (const ch of watched) {
    for (const e of ch.events) {
      if (!e.kv.key.startsWith(PREFIX)) problems.push(`revision ${ch.revision}: ${render(e)}`);
      if (e.type === 'put' && e.kv.modRevision !== ch.revision)
        problems.push(`revision ${ch.revision}: kv.modRevision ${e.kv.modRevision}`);
      const origin = attempted.get(`${e.kv.key}=${e.kv.value}`);
      if (e.type === 'put' && e.kv.key !== 'wf/zz-end' && ch.revision >= fromRevision) {
        if (!origin || origin.result === 'failed')
          problems.push(`revision ${ch.revision}: ${render(e)} was never (successfully) written`);
      }
    }
  }
  t.same(problems.slice(0, 20), [], 'every change matches the write that produced it');
  t.ok(
    ackedInPrefix >= WATCHED_WRITES_MIN,
    `${ackedInPrefix} acknowledged changes of the watched prefix (at least ${WATCHED_WRITES_MIN})`,
  );
  t.comment(
    `${writes.length} writes (${writes.filter((w) => w.result === 'acked').length} acked, ` +
      `${ackedInPrefix} acked changes of the prefix), ${watched.length} changes watched ` +
      `over ${watcher.connections.length} connections`,
  );
}

/** Cuts node i off on every node's filter. */
function isolate(c: TestCluster, i: number): void {
  const id = c.nodes[i]!.node.id;
  for (const f of c.filters) f.isolate(id);
}

t.test('a prefix watch resumes with Last-Event-ID across an isolated and a stopped leader', (t) =>
  failover(t, 'isolate-then-stop'),
);

t.test('a prefix watch resumes after the leader it is on is stopped', (t) =>
  failover(t, 'stop-watched'),
);

t.test('stopping a node, or SIGTERM to raftkv, ends its open watch streams promptly', async (t) => {
  // In process: StartedNode.stop() with one watch open.
  const c = await startCluster(1);
  const controller = new AbortController();
  const watchAbort = new AbortController();
  // Streams first: should stop() wait for them again, close() would wait too.
  t.teardown(async () => {
    controller.abort();
    watchAbort.abort();
    await c.close();
  });
  await c.waitForLeader(20_000);
  const res = await fetch(`${c.url(0)}${WATCH_PATH}`, { signal: controller.signal });
  t.equal(res.status, 200, 'the watch is open');
  const events: string[] = [];
  const reading = (async () => {
    try {
      for await (const ev of sseEvents(res.body!)) events.push(ev.event);
      return 'ended';
    } catch {
      return 'aborted';
    }
  })();
  const stopped = await stopBounded(c, 0, 3_000);
  t.match(stopped, /^stopped/, `stop() returns with a watch open (${stopped})`);
  controller.abort();
  t.equal(await reading, 'ended', 'the server ended the stream');
  t.ok(events.includes('closed'), 'with a closed event');

  // The command: SIGTERM with one watch open must exit 0, well before the 10 s force-exit.
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-wsig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [client, peer] = [await freePort(), await freePort()];
  const proc = new RaftkvProcess(singleNodeArgs('n1', join(dir, 'n1'), client, peer));
  t.teardown(() => proc.kill('SIGKILL'));
  const url = `http://127.0.0.1:${client}`;
  await waitUntil(
    'raftkv to lead',
    async () => ((await status(url))?.role === 'leader' ? true : undefined),
    45_000, // starting under tsx on a busy 2-core machine has taken over 15 s
  );
  const stream = await fetch(`${url}${WATCH_PATH}`, { signal: watchAbort.signal });
  t.equal(stream.status, 200, 'the watch on the process is open');
  const started = Date.now();
  await proc.kill('SIGTERM', 15_000);
  const tookMs = Date.now() - started;
  t.same(proc.exit, { code: 0, signal: null }, `SIGTERM exits 0 (took ${tookMs} ms)`);
  t.ok(tookMs < 5_000, 'promptly');
  watchAbort.abort();
});
