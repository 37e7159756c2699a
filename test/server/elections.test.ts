import t from 'tap';
import { request as call, startCluster } from '../integration/helpers.js';

/** Reads SSE `change` events from an observe stream until `count` arrived (bounded by the abort signal). */
async function observe(url: string, count: number, signal: AbortSignal): Promise<unknown[]> {
  const res = await fetch(`${url}/v1/elections/workers?watch=true`, { signal });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: unknown[] = [];
  let buffer = '';
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let i = buffer.indexOf('\n\n');
    while (i >= 0) {
      const block = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      if (block.startsWith('event: change') && data) events.push(JSON.parse(data.slice(6)));
      i = buffer.indexOf('\n\n');
    }
  }
  await reader.cancel();
  return events;
}

t.test('elections: campaign, leader, proclaim, observe, resign', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  await c.waitForLeader();
  const lease = async (i: number) =>
    (await call(c.url(i), 'POST', '/v1/leases', { ttl: 30 })).body.id as string;
  const [a, b] = [await lease(0), await lease(1)];

  t.equal(
    (await call(c.url(0), 'GET', '/v1/elections/workers')).body.error.code,
    'no_leader_elected',
  );
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 15_000);
  t.teardown(() => clearTimeout(timer));
  const observed = observe(c.url(2), 4, ac.signal);
  await new Promise((r) => setTimeout(r, 200));

  const won = await call(c.url(0), 'POST', '/v1/elections/workers/campaign', {
    lease: a,
    value: 'worker-a',
  });
  t.equal(won.status, 200);
  t.equal(won.body.leader.value, 'worker-a');
  const keyA = won.body.leader.key as string;
  const waitingB = call(c.url(1), 'POST', '/v1/elections/workers/campaign', {
    lease: b,
    value: 'worker-b',
    timeoutMs: 10_000,
  });
  await new Promise((r) => setTimeout(r, 200));
  t.equal((await call(c.url(2), 'GET', '/v1/elections/workers')).body.leader.key, keyA);

  const proclaimed = await call(c.url(1), 'POST', '/v1/elections/workers/proclaim', {
    key: keyA,
    value: 'worker-a v2',
  });
  t.equal(proclaimed.status, 200);
  t.equal(proclaimed.body.leader.value, 'worker-a v2');

  t.equal(
    (await call(c.url(0), 'DELETE', `/v1/elections/workers/leader?key=${encodeURIComponent(keyA)}`))
      .status,
    200,
  );
  const second = await waitingB;
  t.equal(second.status, 200, 'the next candidate is elected when the leader resigns');
  t.equal(second.body.leader.value, 'worker-b');
  t.ok(second.body.leader.revision > won.body.leader.revision);
  const notLeader = await call(c.url(0), 'POST', '/v1/elections/workers/proclaim', {
    key: keyA,
    value: 'x',
  });
  t.equal(notLeader.status, 409, 'a former leader cannot proclaim');

  const events = (await observed) as { leader: { value: string } | null }[];
  t.same(
    events.map((e) => e.leader?.value ?? null),
    [null, 'worker-a', 'worker-a v2', 'worker-b'],
    'observe streams every change of leader',
  );
});
