/**
 * Membership over HTTP on a 3-member cluster: a member added as a learner
 * joins with --join (catching up by snapshot), is promoted to voter and
 * counts; another is removed; writes go on throughout. A member started with
 * --join that was never added is refused with a clear message.
 */
import { join } from 'node:path';
import t from 'tap';
import { type StartedNode, startNode } from '../../src/index.js';
import { freePort, get, put, request, startCluster, startJoiner } from '../integration/helpers.js';
import { waitUntil } from '../integration/http-ops.js';

t.test('add a learner, join it, promote it, remove another member', async (t) => {
  const c = await startCluster(3, { snapshotCount: 50, snapshotCatchUpEntries: 10 });
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const follower = (leader + 1) % 3;
  for (let i = 0; i < 80; i++) await put(c.url(i % 3), `before/${i}`, `v${i}`);

  const [peerPort, clientPort] = [await freePort(), await freePort()];
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const added = await request(c.url(follower), 'POST', '/v1/cluster/members', {
    name: 'n4',
    peerUrl,
    clientUrl,
    learner: true,
  });
  t.equal(added.status, 201, JSON.stringify(added.body));
  t.equal(added.body.role, 'learner');
  const id = added.body.id as string;

  let n4: StartedNode | undefined = await startJoiner(c, 'n4', peerPort, clientPort);
  t.teardown(() => n4?.stop());
  t.equal(n4.node.statusSync().id, id, 'the joiner took the id the cluster gave it');
  await waitUntil(
    'the learner has the data',
    async () => {
      const r = await get(clientUrl, 'before/79', '?consistency=serializable');
      return r.status === 200 ? r : undefined;
    },
    15_000,
  );
  t.equal((await get(clientUrl, 'before/3', '?consistency=serializable')).body.kv.value, 'v3');

  const promoted = await request(c.url(leader), 'POST', `/v1/cluster/members/${id}/promote`);
  t.equal(promoted.status, 200, JSON.stringify(promoted.body));
  t.equal(promoted.body.role, 'voter');
  const members = (await request(c.url(leader), 'GET', '/v1/cluster/members')).body.members;
  t.equal(members.length, 4);
  t.equal((await put(clientUrl, 'via/n4', 'x')).status, 200, 'the new voter takes writes');

  const gone = (leader + 2) % 3;
  const goneId = c.nodes[gone]!.node.statusSync().id;
  const removed = await request(c.url(follower), 'DELETE', `/v1/cluster/members/${goneId}`);
  t.equal(removed.status, 200, JSON.stringify(removed.body));
  await c.stopNode(gone);
  const after = (await request(clientUrl, 'GET', '/v1/cluster/members')).body.members;
  t.same(
    after.map((m: { name: string }) => m.name).sort(),
    ['n1', 'n2', 'n3', 'n4'].filter((n) => n !== c.names[gone]),
  );
  // Three voters left, one of them new: a quorum needs the new one or both old ones.
  t.equal((await put(c.url(leader), 'after', 'y')).status, 200);
  t.equal((await get(clientUrl, 'after')).body.kv.value, 'y');
  await n4.stop();
  n4 = undefined;
});

t.test('--join for a member nobody added: refused, saying what to do', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  await c.waitForLeader();
  const peerPort = await freePort();
  const joinCluster = new Map(c.configs[0]!.initialCluster);
  joinCluster.set('stranger', `http://127.0.0.1:${peerPort}`);
  await t.rejects(
    startNode({
      ...c.configs[0],
      name: 'stranger',
      dataDir: join(c.dir, 'stranger'),
      listenPeer: `127.0.0.1:${peerPort}`,
      listenClient: `127.0.0.1:${await freePort()}`,
      initialCluster: joinCluster,
      join: true,
    }),
    { message: /no member "stranger".*add it first/ },
  );
});
