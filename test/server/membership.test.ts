/**
 * Membership over HTTP on a 3-member cluster: a member added as a learner
 * joins with --join (catching up by snapshot), is promoted to voter and
 * counts; another is removed; writes go on throughout. A member started with
 * --join that was never added is refused with a clear message. The member
 * list is linearizable unless asked otherwise.
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

t.test(
  'the member list is linearizable: a change acknowledged shows on every member; serializable asks one member alone',
  async (t) => {
    const c = await startCluster(3);
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    const cut = (leader + 1) % 3;
    const names = async (i: number, query = '') =>
      (
        (await request(c.url(i), 'GET', `/v1/cluster/members${query}`)).body.members as {
          name: string;
        }[]
      ).map((m) => m.name);

    // Read your writes: a learner added through one member is listed by every member at once.
    const n4 = {
      name: 'n4',
      peerUrl: `http://127.0.0.1:${await freePort()}`,
      clientUrl: `http://127.0.0.1:${await freePort()}`,
      learner: true,
    };
    // Right after the start a change may still be in progress (503, to retry): as a client would.
    const added = await waitUntil(
      'the learner to be added',
      async () => {
        const r = await request(c.url(leader), 'POST', '/v1/cluster/members', n4);
        return r.status === 503 ? undefined : r;
      },
      15_000,
    );
    t.equal(added.status, 201, JSON.stringify(added.body));
    for (const i of [0, 1, 2]) t.ok((await names(i)).includes('n4'), `n${i + 1} lists n4 at once`);

    // A member cut off from the leader gives no list it cannot vouch for...
    const cutId = c.nodes[cut]!.node.statusSync().id;
    for (const f of c.filters) f.isolate(cutId);
    const removed = await request(
      c.url(leader),
      'DELETE',
      `/v1/cluster/members/${added.body.id as string}`,
    );
    t.equal(removed.status, 200, JSON.stringify(removed.body));
    const stale = await request(c.url(cut), 'GET', '/v1/cluster/members');
    t.not(stale.status, 200, `refused while cut off (${stale.status} ${stale.body?.error?.code})`);
    t.ok([503, 504].includes(stale.status), 'unavailable or timed out');
    // ...but its own view when asked for one: the removal has not reached it.
    t.ok((await names(cut, '?consistency=serializable')).includes('n4'), 'its own, older view');
    t.equal(
      (await request(c.url(cut), 'GET', '/v1/cluster/members?consistency=sometimes')).status,
      400,
    );

    for (const f of c.filters) f.heal();
    await waitUntil(
      'the healed member lists the removal',
      async () => {
        const r = await request(c.url(cut), 'GET', '/v1/cluster/members');
        return r.status === 200 && !JSON.stringify(r.body).includes('"n4"') ? true : undefined;
      },
      15_000,
    );
    t.pass('after healing, its list is the cluster’s');
  },
);
