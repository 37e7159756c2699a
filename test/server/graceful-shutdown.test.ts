/**
 * The graceful stop (StartedNode.stop(), what SIGTERM runs) on in-process
 * clusters: a stopping leader hands leadership to the most caught-up voter and
 * its pending writes are answered 200 (they commit under the new leader), not
 * 504; a stopping member closes idle client connections at once, answers what
 * it holds with `Connection: close`, and says it is shutting down.
 */
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { Pool } from 'undici';
import { clientConnections } from '../../src/api/app.js';
import { put, request, startCluster } from '../integration/helpers.js';

async function statusOf(url: string) {
  return (await request(url, 'GET', '/v1/status')).body as {
    id: string;
    leader: string | null;
    role: string;
    term: number;
    commitIndex: number;
  };
}

/** Polls `check` every 10 ms, at most `tries` times; false if it never held. */
async function eventually(check: () => boolean | Promise<boolean>, tries = 500): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

/** `promise`, or 'hung' if it has not settled after `ms` (a hang detector, not a timing check). */
async function orHung<T>(promise: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => resolve('hung'), ms);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

t.test(
  'stopping the leader hands leadership to the most caught-up voter, and its pending writes get 200s, not 504',
  async (t) => {
    // An election timeout of 2 s: the handoff, which waits for the slowed replication below
    // (150 ms), stays well inside it even on a busy machine.
    const c = await startCluster(3, { electionTicks: 100 });
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    const caughtUp = (leader + 1) % 3;
    const lagging = (leader + 2) % 3;
    const ids = await Promise.all([0, 1, 2].map(async (i) => (await statusOf(c.url(i))).id));
    const leaderId = ids[leader]!;
    // The lagging member hears nothing from the leader, so its match index stays behind:
    // handing over to it could not succeed, only to the caught-up one.
    for (const f of c.filters) f.partition([leaderId], [ids[lagging]!]);
    t.equal((await put(c.url(leader), 'warm', 'up')).status, 200);
    // Replication to the caught-up member is slowed, so writes stay proposed but uncommitted.
    const slow = c.filters.map((f) => f.delay(150, leaderId, ids[caughtUp]));
    const node = c.nodes[leader]!.node;
    const before = node.logBounds().lastIndex;
    const n = 20;
    const writes = Array.from({ length: n }, (_, i) => put(c.url(leader), `pending/${i}`, `v${i}`));
    t.ok(
      await eventually(() => node.logBounds().lastIndex >= before + n),
      'the writes are proposed',
    );
    t.ok(
      node.statusSync().commitIndex < node.logBounds().lastIndex,
      'and not yet committed when the leader is told to stop',
    );
    for (const [i, f] of c.filters.entries()) f.removeRule(slow[i]!);

    const stopping = c.nodes[leader]!.stop();
    t.equal(node.shuttingDown, true, 'shuttingDown from the start of the stop');
    t.equal(node.health().reason, 'shutting down');
    await stopping;
    c.nodes[leader] = undefined;
    t.equal((await node.stop())?.handedOverTo, ids[caughtUp], 'handed over to the caught-up voter');
    const newLeader = c.nodes[caughtUp]!.node.statusSync();
    t.equal(newLeader.role, 'leader', 'the caught-up voter leads by the time the stop returns');
    t.not(c.nodes[lagging]!.node.statusSync().role, 'leader');

    const answers = await Promise.all(writes);
    t.same(
      answers.map((a) => a.status),
      Array(n).fill(200),
      'every pending write was answered 200 by the stopping leader',
    );
    for (const f of c.filters) f.heal();
    for (let i = 0; i < n; i++) {
      const r = await request(c.url(caughtUp), 'GET', `/v1/kv/pending/${i}`);
      t.equal(r.body?.kv?.value, `v${i}`);
    }
  },
);

t.test(
  'a stopping member closes idle keep-alive and never-used connections at once, and answers what it holds with Connection: close',
  async (t) => {
    const c = await startCluster(1);
    t.teardown(() => c.close());
    await c.waitForLeader();
    const url = new URL(c.url(0));
    const started = c.nodes[0]!;
    const rev = (await put(c.url(0), 'a', '1')).body.revision as number;

    // 1. A keep-alive connection that served a request and is now idle.
    const pool = new Pool(c.url(0), { connections: 2, keepAliveTimeout: 60_000 });
    t.teardown(() => pool.destroy());
    const res = await pool.request({ method: 'GET', path: '/v1/status' });
    await res.body.text();
    // 2. A connection opened and never used (clients and proxies pre-connect).
    const raw: Socket = connect(Number(url.port), url.hostname);
    raw.on('error', () => {});
    await new Promise((r) => raw.once('connect', r));
    const rawClosed = new Promise<void>((r) => raw.once('close', () => r()));
    // 3. A request in progress: a read waiting for a revision not applied yet.
    const held = request(c.url(0), 'GET', `/v1/kv/a?minRevision=${rev + 1}`);
    const heldRaw = fetch(`${c.url(0)}/v1/kv/a?minRevision=${rev + 1}`);
    t.ok(
      await eventually(() => clientConnections(started.app).requestsInProgress === 2),
      'both reads are held by the member',
    );

    let heldAnswered = false;
    void heldRaw.then(() => {
      heldAnswered = true;
    });

    const stopped = started.stop();
    t.equal(started.node.shuttingDown, true);
    t.equal(await orHung(rawClosed, 20_000), undefined, 'the never-used connection is closed');
    t.ok(
      await eventually(() => pool.stats.connected === 0),
      'the idle keep-alive connection is closed',
    );
    t.equal(heldAnswered, false, 'both at once: while the member still holds a request');
    // The held read is answered once the revision is applied (a write through the library).
    await started.node.write({ type: 'put', key: 'a', value: '2' });
    const answer = await heldRaw;
    t.equal(answer.status, 200, 'the held read is answered');
    t.equal(answer.headers.get('connection'), 'close', 'with Connection: close');
    t.equal((await held).status, 200);
    t.not(
      await orHung(stopped, 20_000),
      'hung',
      'the stop ends without waiting for idle connections',
    );
    c.nodes[0] = undefined;
  },
);
