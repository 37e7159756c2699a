/** ReadIndex: linearizable reads without log writes (dissertation §6.4). */
import t from 'tap';
import { ELECTION_TICKS as E, Network } from './helpers.js';

t.test(
  'a new leader serves no read index before it commits an entry of its term (§6.4 step 1)',
  (t) => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a');
    net.stabilize();
    // n2 takes over, but its no-op cannot be replicated yet.
    const rule = net.drop((m) => m.type === 'app' && m.from === 'n2');
    net.node('n1').transferLeadership('n2');
    net.stabilize();
    t.equal(net.leader(), 'n2');
    t.equal(net.commit('n2'), 3, 'n2 commit is behind its no-op (4)');

    t.same(net.node('n2').readIndex('r1'), { ok: true });
    net.process('n2');
    net.tickAll(3); // heartbeats are answered by a quorum, but that is not enough
    t.same(net.get('n2').readStates, [], 'no read index while nothing of term is committed');

    net.removeRule(rule);
    net.tickAll(2);
    t.equal(net.commit('n2'), 4, 'the no-op committed');
    t.same(
      net.get('n2').readStates,
      [{ index: 4, ctx: 'r1' }],
      'the read is served at the new commit index',
    );
    t.end();
  },
);

t.test(
  'a read is answered only after a quorum acknowledges a heartbeat round (§6.4 steps 2-3)',
  (t) => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a');
    net.stabilize();
    const commit = net.commit('n1');

    net.node('n1').readIndex('r');
    net.process('n1');
    t.same(net.get('n1').readStates, [], 'not answered from local state');
    const beats = net.queue.filter((m) => m.type === 'heartbeat');
    t.same(
      beats.map((m) => `${m.to} round ${m.readRound}`),
      ['n2 round 1', 'n3 round 1'],
      'a confirmation round starts at once',
    );

    net.deliverWhere((m) => m.to === 'n2' && m.type === 'heartbeat');
    t.same(net.get('n1').readStates, [], 'n2 has the heartbeat but has not answered yet');
    net.deliverWhere((m) => m.from === 'n2' && m.type === 'heartbeatResp');
    t.same(
      net.get('n1').readStates,
      [{ index: commit, ctx: 'r' }],
      'n1 + n2 are a quorum of three',
    );
    net.deliverAll();
    t.equal(net.get('n1').readStates.length, 1, 'answered once');
    t.end();
  },
);

t.test('a read is not answered while no quorum answers the heartbeats', (t) => {
  const net = new Network(5);
  net.elect('n1');
  net.isolate('n3');
  net.isolate('n4');
  net.isolate('n5');
  net.node('n1').readIndex('r');
  net.process('n1');
  net.tickAll(E - 2);
  t.same(net.get('n1').readStates, [], 'two of five acknowledged: no answer');
  net.recover();
  net.tickAll(1);
  t.match(net.get('n1').readStates, [{ ctx: 'r' }], 'answered once a quorum acknowledges');
  t.end();
});

t.test('reads issued while a round is in flight are confirmed by at most two rounds', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.stabilize();
  const mark = net.mark();
  net.node('n1').readIndex('r0');
  net.process('n1');
  for (let i = 1; i < 10; i++) {
    net.node('n1').readIndex(`r${i}`);
    net.process('n1');
  }
  net.deliverAll();
  const reads = net.get('n1').readStates;
  t.same(
    reads.map((r) => r.ctx),
    ['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9'],
    'every read answered, in order',
  );
  const commit = net.commit('n1');
  t.ok(
    reads.every((r) => r.index === commit),
    'at the commit index',
  );
  const beats = net.since(mark, (m) => m.type === 'heartbeat');
  const rounds = new Set(beats.map((m) => m.readRound));
  t.ok(rounds.size <= 2, `${rounds.size} rounds`);
  t.ok(beats.length <= 4, `${beats.length} heartbeats for 10 reads`);
  t.end();
});

t.test('a read that arrives during a round waits for a round that started after it', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.stabilize();
  net.node('n1').readIndex('early');
  net.process('n1');
  // The round-1 heartbeats reach the followers; then a write commits and a second read arrives.
  net.deliverWhere((m) => m.type === 'heartbeat');
  net.propose('n1', 'w');
  net.deliverWhere((m) => m.type === 'app' || m.type === 'appResp');
  net.node('n1').readIndex('late');
  net.process('n1');
  net.deliverAll();
  const reads = net.get('n1').readStates;
  t.match(
    reads,
    [
      { ctx: 'early', index: 2 },
      { ctx: 'late', index: 3 },
    ],
    'the late read sees the write',
  );
  t.end();
});

t.test('a follower obtains a read index from the leader (§6.4)', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.propose('n1', 'a');
  net.stabilize();
  const mark = net.mark();
  t.same(net.node('n2').readIndex('f'), { ok: true });
  net.stabilize();
  t.same(
    net.get('n2').readStates,
    [{ index: net.commit('n1'), ctx: 'f' }],
    'the follower has the read state',
  );
  t.same(net.get('n1').readStates, [], 'the leader keeps none for itself');
  const kinds = net.since(mark, (m) => m.type === 'readIndex' || m.type === 'readIndexResp');
  t.same(
    kinds.map((m) => `${m.from}->${m.to} ${m.type}`),
    ['n2->n1 readIndex', 'n1->n2 readIndexResp'],
  );
  t.ok(
    net.get('n2').appliedIndex >= net.get('n2').readStates[0]!.index,
    'n2 can serve it once applied',
  );

  net.crash('n1');
  net.tick('n2', 1);
  t.match(
    net.node('n3').readIndex('g'),
    { ok: true },
    'with the leader down, the request just goes unanswered',
  );
  t.end();
});

t.test('a partitioned leader never answers a read', (t) => {
  for (const checkQuorum of [true, false]) {
    const net = new Network(3, { checkQuorum });
    net.elect('n1');
    net.propose('n1', 'a');
    net.stabilize();
    net.isolate('n1');
    t.equal(net.role('n1'), 'leader');
    net.node('n1').readIndex('stale');
    net.process('n1');
    net.tickUntil(['n2', 'n3'], () => ['n2', 'n3'].includes(net.leader() ?? ''));
    const leader = net.leader()!;
    net.propose(leader, 'b');
    net.stabilize();
    net.tickAll(5 * E);
    t.same(
      net.get('n1').readStates,
      [],
      `checkQuorum=${checkQuorum}: no answer from the old leader`,
    );
    t.equal(
      net.role('n1') === 'leader',
      !checkQuorum,
      checkQuorum ? 'n1 stepped down (CheckQuorum)' : 'n1 still believes it leads',
    );
    net.recover();
    net.tickAll(3);
    t.same(
      net.get('n1').readStates,
      [],
      `checkQuorum=${checkQuorum}: nor after the partition heals`,
    );
    t.same(net.get('n1').state, ['a', 'b']);
  }
  t.end();
});

t.test('a single-voter leader answers reads at once', (t) => {
  const net = new Network(1);
  net.elect('n1');
  net.node('n1').readIndex('solo');
  net.process('n1');
  t.same(net.get('n1').readStates, [{ index: 2, ctx: 'solo' }]);
  t.end();
});
