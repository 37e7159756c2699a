/**
 * POST /v1/cluster/leader on a 3-member cluster: leadership moves to the
 * named voter (or the most caught-up one) and the answer comes once it has;
 * a target that cannot be reached leaves the leader in place with a 503.
 */
import t from 'tap';
import { put, request, startCluster } from '../integration/helpers.js';

async function statusOf(url: string) {
  return (await request(url, 'GET', '/v1/status')).body as {
    id: string;
    leader: string;
    role: string;
    term: number;
  };
}

t.test('asked on the leader, leadership moves to the named follower', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  await put(c.url(leader), 'before', '1');
  const target = (leader + 1) % 3;
  const targetId = (await statusOf(c.url(target))).id;
  const before = await statusOf(c.url(leader));

  const r = await request(c.url(leader), 'POST', '/v1/cluster/leader', { to: targetId });
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.equal(r.body.leader, targetId, 'the answer names the new leader');
  t.ok(r.body.term > before.term, 'in a later term');
  const now = await statusOf(c.url(target));
  t.equal(now.role, 'leader', 'the target leads when the answer arrives');
  t.equal((await statusOf(c.url(leader))).leader, targetId, 'the old leader follows it');
  const w = await put(c.url(leader), 'after', '2');
  t.equal(w.status, 200, 'writes go on, through the old leader');
  t.equal((await request(c.url(target), 'GET', '/v1/kv/before')).body.kv.value, '1');
});

t.test('asked on a follower without a target, the leader hands over to someone else', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const oldId = (await statusOf(c.url(leader))).id;
  const follower = (leader + 2) % 3;
  const r = await request(c.url(follower), 'POST', '/v1/cluster/leader');
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.not(r.body.leader, oldId, 'leadership left the old leader');
  t.equal(c.leaderIndex() === leader, false, 'the old leader no longer leads');
  t.equal((await put(c.url(follower), 'k', 'v')).status, 200);
});

t.test('a target cut off from the leader: 503, and the leader stays', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const target = (leader + 1) % 3;
  const ids = await Promise.all([0, 1, 2].map(async (i) => (await statusOf(c.url(i))).id));
  const leaderId = ids[leader]!;
  const targetId = ids[target]!;
  // Cut both ways between the leader and the target only; the third member keeps the quorum.
  for (const f of c.filters) f.partition([leaderId], [targetId]);
  await put(c.url(leader), 'lagging', 'x');

  const r = await request(c.url(leader), 'POST', '/v1/cluster/leader', { to: targetId });
  t.equal(r.status, 503, JSON.stringify(r.body));
  t.equal(r.body.error.code, 'unavailable');
  t.match(r.body.error.message, /still leads/);
  t.equal((await statusOf(c.url(leader))).role, 'leader', 'nothing moved');
  for (const f of c.filters) f.heal();
  t.equal((await put(c.url(leader), 'k', 'v')).status, 200, 'and it takes writes again');
});
