/**
 * A member removed from the cluster stops serving: whether it applies its own
 * removal, or missed it (partitioned) and is told by the peers it contacts.
 * Its data dir cannot start again.
 */
import t from 'tap';
import { MemberRemovedError, startNode } from '../../src/index.js';
import { request, startCluster } from '../integration/helpers.js';
import { waitUntil } from '../integration/http-ops.js';

/** DELETE the member, retrying while the cluster's first configuration change is still pending. */
async function removeMember(url: string, id: string) {
  return waitUntil(
    `member ${id} removed`,
    async () => {
      const r = await request(url, 'DELETE', `/v1/cluster/members/${id}`);
      return r.status === 503 ? undefined : r;
    },
    10_000,
    50,
  );
}

async function removedReason(node: { removed: string | undefined }, timeoutMs = 15_000) {
  return waitUntil('the member to notice its removal', () => node.removed, timeoutMs, 20);
}

t.test('a member that applies its own removal stops serving clients and says why', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const victim = (leader + 1) % 3;
  const node = c.nodes[victim]!.node;
  let told: string | undefined;
  node.onRemoved((reason) => {
    told = reason;
  });
  const removed = await removeMember(c.url(leader), node.id);
  t.equal(removed.status, 200, JSON.stringify(removed.body));

  const reason = await removedReason(node);
  t.match(reason, /removal|removed/, `reason: ${reason}`);
  t.equal(told, reason, 'onRemoved listeners are told once, with the reason');

  const ready = await request(c.url(victim), 'GET', '/readyz');
  t.equal(ready.status, 503);
  t.same(ready.body, { status: 'unavailable', reason: 'removed' });
  t.equal(
    (await request(c.url(victim), 'GET', '/livez')).status,
    200,
    'still alive until it exits',
  );
  const health = await request(c.url(victim), 'GET', '/health');
  t.equal(health.status, 503);
  const put = await request(c.url(victim), 'PUT', '/v1/kv/k', { value: 'v' });
  t.equal(put.status, 503, 'a write to the removed member is refused');
  t.equal(put.body.error.code, 'unavailable');
  t.match(put.body.error.message, /removed from the cluster/);
  const get = await request(c.url(victim), 'GET', '/v1/kv/k?consistency=serializable');
  t.equal(get.status, 503, 'so is a read, even a serializable one');
  const status = await request(c.url(victim), 'GET', '/v1/status');
  t.equal(status.status, 503, 'and /v1/status: it would report a cluster it is not in');

  const stillThere = await request(c.url(leader), 'PUT', '/v1/kv/after', { value: 'x' });
  t.equal(stillThere.status, 200, 'the rest of the cluster goes on');
});

t.test(
  'a member removed while partitioned learns it from the peers that refuse its traffic',
  async (t) => {
    const c = await startCluster(3);
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    const victim = (leader + 1) % 3;
    const node = c.nodes[victim]!.node;
    for (const f of c.filters) f.isolate(node.id);
    const removed = await removeMember(c.url(leader), node.id);
    t.equal(removed.status, 200, JSON.stringify(removed.body));
    t.equal(node.removed, undefined, 'cut off, it could not apply its removal');
    for (const f of c.filters) f.heal();

    const reason = await removedReason(node);
    t.match(reason, /refused its traffic/, `reason: ${reason}`);
    const ready = await request(c.url(victim), 'GET', '/readyz');
    t.same(ready.body, { status: 'unavailable', reason: 'removed' });
  },
);

t.test('the data dir of a removed member does not start again', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const victim = (leader + 2) % 3;
  const node = c.nodes[victim]!.node;
  const removed = await removeMember(c.url(leader), node.id);
  t.equal(removed.status, 200);
  await removedReason(node);
  await c.stopNode(victim);
  await t.rejects(startNode(c.configs[victim]!), MemberRemovedError);
  await t.rejects(startNode(c.configs[victim]!), {
    message: /was removed from the cluster.*--join/,
  });
});
