/**
 * The latency accounting (src/server/write-accounting.ts) counts what it says
 * it counts: every write through the API moves each stage of its chain once,
 * the chain's stages add up to the total, a follower accounts the leader's
 * part as `forward` while the leader accounts its core stages, and what is
 * not a single write is left out. No timing thresholds: counts and sums only.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import t from 'tap';
import { parseHistograms, type Series } from '../../bench/accounting.js';
import { startCluster } from '../integration/helpers.js';
import { inject, type SingleNode, startSingleNode, type TestCluster } from './helpers.js';

const STAGES = 'raftkv_write_stage_seconds';
const TOTAL = 'raftkv_write_duration_seconds';
/** The stages that follow one another from request received to response sent. */
const CHAIN = ['http_in', 'proposal_queue', 'replication', 'commit', 'apply', 'http_out'];

type Scrape = Map<string, Map<string, Series>>;

async function scrape(app: SingleNode['app']): Promise<Scrape> {
  const text = (await inject(app, 'GET', '/metrics')).text;
  return parseHistograms(text, [
    STAGES,
    TOTAL,
    'raftkv_eventloop_delay_seconds',
    'raftkv_gc_pause_seconds',
  ]);
}

/** How much a series' count and sum moved between two scrapes. */
function moved(before: Scrape, after: Scrape, name: string, key: string) {
  const b = before.get(name)?.get(key);
  const a = after.get(name)?.get(key);
  return { count: (a?.count ?? 0) - (b?.count ?? 0), sum: (a?.sum ?? 0) - (b?.sum ?? 0) };
}

/**
 * A scrape once the last `writes` requests since `before` have been counted in
 * the total: fastify runs its onResponse hook (where http_in, http_out and
 * the total are observed) after inject() has resolved, while the core's
 * stages were observed at apply, before the answer.
 */
async function scrapeAfter(app: SingleNode['app'], before: Scrape, writes: number) {
  for (let i = 0; i < 100; i++) {
    const after = await scrape(app);
    if (moved(before, after, TOTAL, '').count >= writes) return after;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the total never counted ${writes} writes`);
}

t.test('on a single member', async (t) => {
  const n = await startSingleNode();
  t.teardown(() => n.close());
  // Warm: the first write of a term can meet a leader's no-op in its batch.
  await inject(n.app, 'PUT', '/v1/kv/acc/warm', { body: { value: 'w' } });

  t.test('each write through the API moves every stage of its chain once', async (t) => {
    const before = await scrape(n.app);
    const writes = 20;
    const replies = await Promise.all([
      ...Array.from({ length: writes - 2 }, (_, i) =>
        inject(n.app, 'PUT', `/v1/kv/acc/k${i}`, { body: { value: String(i) } }),
      ),
      inject(n.app, 'DELETE', '/v1/kv/acc/k0'),
      inject(n.app, 'POST', '/v1/txn', {
        body: { compare: [], success: [{ op: 'put', key: 'acc/t', value: 'v' }], failure: [] },
      }),
    ]);
    t.strictSame(
      replies.map((r) => r.status),
      replies.map(() => 200),
    );
    const after = await scrapeAfter(n.app, before, writes);
    for (const stage of [...CHAIN, 'append_sync'])
      t.equal(moved(before, after, STAGES, stage).count, writes, `${stage} counted each write`);
    t.equal(moved(before, after, TOTAL, '').count, writes, 'the total counted each write');
    t.equal(moved(before, after, STAGES, 'forward').count, 0, 'nothing was forwarded');
  });

  t.test("the chain's stages add up to the total, and none is negative", async (t) => {
    const before = await scrape(n.app);
    for (let i = 0; i < 10; i++)
      await inject(n.app, 'PUT', `/v1/kv/acc/seq${i}`, { body: { value: 'x' } });
    const after = await scrapeAfter(n.app, before, 10);
    const total = moved(before, after, TOTAL, '').sum;
    const sums = CHAIN.map((stage) => moved(before, after, STAGES, stage).sum);
    for (const [i, sum] of sums.entries()) t.ok(sum >= 0, `${CHAIN[i]} sum is not negative`);
    const chain = sums.reduce((a, b) => a + b, 0);
    t.ok(total > 0, 'the writes took time');
    t.ok(chain <= total * (1 + 1e-9), `the stages (${chain} s) are within the total (${total} s)`);
    t.ok(chain >= total * 0.99, 'and account for all of it');
  });

  t.test('a refused write, a read and a multi-write request are not accounted', async (t) => {
    const before = await scrape(n.app);
    const bad = await inject(n.app, 'PUT', '/v1/kv/acc/bad', { body: { value: 1 } });
    t.equal(bad.status, 400);
    t.equal((await inject(n.app, 'GET', '/v1/kv/acc/k1')).status, 200);
    const after = await scrape(n.app);
    t.equal(moved(before, after, TOTAL, '').count, 0);
    t.equal(moved(before, after, STAGES, 'http_in').count, 0);
    t.equal(moved(before, after, STAGES, 'proposal_queue').count, 0);
  });

  t.test('a write that is not an accounted request counts in the core stages only', async (t) => {
    const before = await scrape(n.app);
    const lease = await inject(n.app, 'POST', '/v1/leases', { body: { ttl: 30 } });
    t.equal(lease.status, 201);
    const after = await scrape(n.app);
    for (const stage of ['proposal_queue', 'append_sync', 'replication', 'commit', 'apply'])
      t.equal(moved(before, after, STAGES, stage).count, 1, `${stage} counted the lease grant`);
    t.equal(moved(before, after, STAGES, 'http_in').count, 0);
    t.equal(moved(before, after, TOTAL, '').count, 0);
  });

  t.test('the event-loop delay is sampled while the process runs', async (t) => {
    const before = await scrape(n.app);
    await new Promise((r) => setTimeout(r, 100));
    const after = await scrape(n.app);
    t.ok(moved(before, after, 'raftkv_eventloop_delay_seconds', '').count > 0);
  });

  t.test('every GC pause the runtime reports is counted', async (t) => {
    const before = await scrape(n.app);
    let seen = 0;
    const observer = new PerformanceObserver((list) => {
      seen += list.getEntries().length;
    });
    observer.observe({ entryTypes: ['gc'] });
    // Enough garbage for a few scavenges in one turn: they reach observers as one batch.
    let keep: unknown[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 200_000; i++) keep.push({ i, s: `x${i}` });
      keep = [];
    }
    await new Promise((r) => setTimeout(r, 50));
    observer.disconnect();
    const after = await scrape(n.app);
    const counted = ['minor', 'major', 'incremental', 'weakcb', 'other']
      .map((kind) => moved(before, after, 'raftkv_gc_pause_seconds', kind).count)
      .reduce((a, b) => a + b, 0);
    t.ok(seen > 0, 'the allocation caused GCs');
    t.ok(counted >= seen, `counted ${counted} pauses, the runtime reported ${seen}`);
  });
});

t.test('in a cluster, a write through a follower', async (t) => {
  const cluster: TestCluster = await startCluster(3);
  t.teardown(() => cluster.close());
  const leader = await cluster.waitForLeader();
  const follower = (leader + 1) % 3;
  const app = (i: number) => cluster.nodes[i]!.app;
  const [leaderStart, followerStart] = [await scrape(app(leader)), await scrape(app(follower))];
  await inject(app(leader), 'PUT', '/v1/kv/acc/warm', { body: { value: 'w' } });
  await inject(app(follower), 'PUT', '/v1/kv/acc/warm', { body: { value: 'w' } });

  // Once each warm-up write is whole in its member's figures (see scrapeAfter).
  const leaderBefore = await scrapeAfter(app(leader), leaderStart, 1);
  const followerBefore = await scrapeAfter(app(follower), followerStart, 1);
  const writes = 5;
  for (let i = 0; i < writes; i++) {
    const r = await inject(app(follower), 'PUT', `/v1/kv/acc/f${i}`, { body: { value: 'v' } });
    t.equal(r.status, 200);
  }
  const followerAfter = await scrapeAfter(app(follower), followerBefore, writes);
  const leaderAfter = await scrape(app(leader));

  for (const stage of ['http_in', 'forward', 'http_out'])
    t.equal(
      moved(followerBefore, followerAfter, STAGES, stage).count,
      writes,
      `the follower counted ${stage}`,
    );
  t.equal(moved(followerBefore, followerAfter, STAGES, 'proposal_queue').count, 0);
  t.equal(moved(followerBefore, followerAfter, TOTAL, '').count, writes);
  const followerChain = ['http_in', 'forward', 'http_out']
    .map((s) => moved(followerBefore, followerAfter, STAGES, s).sum)
    .reduce((a, b) => a + b, 0);
  const followerTotal = moved(followerBefore, followerAfter, TOTAL, '').sum;
  t.ok(followerChain <= followerTotal * (1 + 1e-9) && followerChain >= followerTotal * 0.99);

  for (const stage of ['proposal_queue', 'append_sync', 'replication', 'commit', 'apply'])
    t.equal(
      moved(leaderBefore, leaderAfter, STAGES, stage).count,
      writes,
      `the leader counted ${stage} of the forwarded writes`,
    );
  t.equal(moved(leaderBefore, leaderAfter, STAGES, 'http_in').count, 0);
  t.equal(moved(leaderBefore, leaderAfter, TOTAL, '').count, 0);
});
