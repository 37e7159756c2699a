/**
 * Writes sent to a follower reach the leader as frames on the peer stream,
 * each with its own answer; when the leader goes away mid-flight they end as
 * 503/504, never hang or fail with 500.
 */
import t from 'tap';
import { get, put, request, startCluster } from '../integration/helpers.js';

async function streamBatches(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('raftkv_forward_batches_total{channel="stream"}'));
  return line ? Number(line.split(' ')[1]) : 0;
}

t.test('writes through a follower travel on the stream, each with its own answer', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const follower = (leader + 1) % 3;
  const via = c.url(follower);
  // The follower's stream to the leader opens with its first Raft answer.
  await put(via, 'warm-up', '0');

  await put(c.url(leader), 'cas', 'v0');
  const writes = await Promise.all([
    ...Array.from({ length: 30 }, (_, i) => put(via, `k${i}`, `v${i}`)),
    // Five guards hold, at most one of them can win; the others see the winner's value.
    ...Array.from({ length: 5 }, (_, i) =>
      request(via, 'PUT', '/v1/kv/cas', { value: `w${i}`, prevValue: 'v0' }),
    ),
  ]);
  const puts = writes.slice(0, 30);
  const cas = writes.slice(30);
  t.same(
    puts.map((r) => r.status),
    puts.map(() => 200),
    'every put answered 200',
  );
  t.equal(new Set(puts.map((r) => r.body.revision)).size, 30, 'each its own revision');
  t.same(
    puts.map((r) => r.body.kv.value),
    puts.map((_, i) => `v${i}`),
    'each answer is its own write',
  );
  t.equal(cas.filter((r) => r.status === 200).length, 1, 'one compare-and-swap won');
  t.equal(cas.filter((r) => r.status === 409).length, 4, 'four saw compare_failed');
  const winner = cas.find((r) => r.status === 200)!.body.kv.value;
  t.equal((await get(c.url(leader), 'cas')).body.kv.value, winner);
  t.ok((await streamBatches(via)) >= 1, 'forwarded as stream frames');
});

t.test('writes in flight when the leader stops end as 503 or 504', async (t) => {
  const c = await startCluster(3, { requestTimeoutMs: 2000 });
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const follower = (leader + 1) % 3;
  const via = c.url(follower);
  await put(via, 'warm-up', '0');

  // Eight writers, each one write at a time, bounded in count; the leader stops under them.
  const statuses: number[] = [];
  let stopped = false;
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; i < 400; i++) {
      const last = stopped; // one more write after the stop, then done
      statuses.push((await put(via, `x${w}-${i}`, 'v')).status);
      if (last) break;
    }
  });
  for (let i = 0; i < 2000 && statuses.filter((s) => s === 200).length < 40; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  await c.stopNode(leader);
  stopped = true;
  await Promise.all(writers);
  const odd = statuses.filter((s) => s !== 200 && s !== 503 && s !== 504);
  t.same(odd, [], 'only 200, 503 and 504');
  t.ok(statuses.filter((s) => s === 200).length >= 40, 'writes went through before');
});
