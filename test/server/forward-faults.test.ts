import t from 'tap';
import { get, put, startCluster } from '../integration/helpers.js';

// In-process partitions go through each node's fault filter: forwarded writes must obey it
// too, or a cut-off follower would still reach the leader over the peer port.
t.test('a write forwarded across a partition follows the outcome rules', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const follower = (leader + 1) % 3;
  const ids = c.nodes.map((n) => n!.node.id);
  const everyFilter = (fn: (f: (typeof c.filters)[number]) => void) => c.filters.forEach(fn);

  // The way there is cut: the write never left, so it is a definite "not applied".
  everyFilter((f) => f.drop(ids[follower], ids[leader]));
  const refused = await put(c.url(follower), 'cut-there', 'x');
  t.equal(refused.status, 503, 'never proposed: 503');
  t.equal(refused.body?.error?.code, 'unavailable');
  everyFilter((f) => f.heal());
  t.equal((await get(c.url(leader), 'cut-there')).status, 404, 'and not applied');

  // The way back is cut: the leader applied it, the follower cannot know: 504, outcome unknown.
  everyFilter((f) => f.drop(ids[leader], ids[follower]));
  const unknown = await put(c.url(follower), 'cut-back', 'y');
  t.equal(unknown.status, 504, 'answer lost: 504');
  t.equal(unknown.body?.error?.code, 'timeout');
  everyFilter((f) => f.heal());
  const landed = await get(c.url(leader), 'cut-back');
  t.equal(landed.body?.kv?.value, 'y', 'it was applied all the same');
});
