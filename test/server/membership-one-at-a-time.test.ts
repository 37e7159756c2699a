/**
 * Membership changes on the leader go one at a time: each waits for the ones
 * before it (and for any change still pending in the log) to be applied, and
 * is checked against the members as they are then. Two adds of one name asked
 * together make one member and one refusal; none is refused merely for
 * arriving while another is in flight.
 */
import t from 'tap';
import type { ConfChange } from '../../src/raft/index.js';
import type { Member } from '../../src/server/members.js';
import { Membership } from '../../src/server/membership.js';

const turn = () => new Promise((r) => setImmediate(r));

/** A leader whose changes apply one turn after they are proposed; `settle` opens its gate. */
function leader() {
  const members: Member[] = [
    { id: 'a', name: 'n1', peerUrls: ['http://127.0.0.1:1'], clientUrls: [] },
  ];
  const proposed: ConfChange[] = [];
  let open: () => void = () => {};
  let gate: Promise<void> = Promise.resolve();
  const membership = new Membership({
    isLeader: () => true,
    members: () => members,
    voters: () => ['a'],
    learners: () => members.filter((m) => m.id !== 'a').map((m) => m.id),
    apply: async (cc) => {
      proposed.push(cc);
      await turn();
      if (cc.context) members.push(JSON.parse(cc.context) as Member);
    },
    settled: async (signal) => {
      await gate;
      if (signal.aborted) throw Object.assign(new Error('timed out'), { code: 'timeout' });
    },
  });
  return {
    membership,
    proposed,
    members,
    /** From now on a change waits until `settle()`. */
    hold() {
      gate = new Promise((resolve) => {
        open = resolve;
      });
    },
    settle: () => open(),
  };
}

const add = (name: string, port: number) =>
  ({
    type: 'add',
    name,
    peerUrl: `http://127.0.0.1:${port}`,
    clientUrl: `http://127.0.0.1:${port + 1}`,
    learner: true,
  }) as const;

const deadline = () => AbortSignal.timeout(5000);

t.test('two adds of one name asked together: one member, one refusal', async (t) => {
  const { membership, proposed, members } = leader();
  const [a, b] = await Promise.allSettled([
    membership.change(add('n4', 20), deadline()),
    membership.change(add('n4', 30), deadline()),
  ]);
  t.equal(a.status, 'fulfilled', 'the first is added');
  t.equal(b.status, 'rejected');
  t.match((b as PromiseRejectedResult).reason, {
    code: 'invalid_request',
    message: /a member named "n4" exists/,
  });
  t.equal(proposed.length, 1, 'one conf change proposed');
  t.equal(members.filter((m) => m.name === 'n4').length, 1);
});

t.test('two adds of one peer URL asked together: the second is refused', async (t) => {
  const { membership, proposed } = leader();
  const [a, b] = await Promise.allSettled([
    membership.change(add('n4', 20), deadline()),
    membership.change(add('n5', 20), deadline()),
  ]);
  t.equal(a.status, 'fulfilled');
  t.match((b as PromiseRejectedResult).reason, {
    code: 'invalid_request',
    message: /already has peer URL/,
  });
  t.equal(proposed.length, 1);
});

t.test('a change is checked and proposed only once pending changes settled', async (t) => {
  const { membership, proposed, hold, settle } = leader();
  hold();
  const added = membership.change(add('n4', 20), deadline());
  for (let i = 0; i < 5; i++) await turn();
  t.same(proposed, [], 'nothing proposed while an earlier change is pending');
  settle();
  await added;
  t.equal(proposed.length, 1, 'proposed once it settled');
});

t.test('different changes asked together are all made, in the order asked', async (t) => {
  const { membership, proposed } = leader();
  const results = await Promise.all([
    membership.change(add('n4', 20), deadline()),
    membership.change(add('n5', 30), deadline()),
    membership.change(add('n6', 40), deadline()),
  ]);
  t.same(
    results.map((r) => ('name' in r ? r.name : r)),
    ['n4', 'n5', 'n6'],
  );
  t.equal(proposed.length, 3);
});

t.test('a change whose caller gave up while it waited is not proposed', async (t) => {
  const { membership, proposed, hold, settle } = leader();
  hold();
  const stale = new AbortController();
  const given = membership.change(add('n4', 20), stale.signal);
  stale.abort();
  settle();
  await t.rejects(given, { code: 'timeout' });
  t.same(proposed, []);
  await membership.change(add('n5', 30), deadline());
  t.equal(proposed.length, 1, 'and the change after it is not held up');
});

t.test('a refused change does not hold up the ones after it', async (t) => {
  const { membership, proposed } = leader();
  const refused = membership.change({ type: 'remove', id: 'nobody' }, deadline());
  const added = membership.change(add('n4', 20), deadline());
  await t.rejects(refused, { code: 'member_not_found' });
  await added;
  t.equal(proposed.length, 1);
});
