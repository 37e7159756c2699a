/**
 * Single-server membership changes (dissertation §4.1, §4.2.1), applied when
 * committed (as etcd does): learners, promotion, removal, one change at a time.
 */
import t, { type Test } from 'tap';
import { type ConfChange, MemoryRaftStorage } from '../../src/raft/index.js';
import { ELECTION_TICKS as E, msg, Network } from './helpers.js';

function change(net: Network, leader: string, cc: ConfChange): void {
  const res = net.node(leader).proposeConfChange(cc);
  if (!res.ok) throw new Error(`${cc.type} ${cc.nodeId} refused: ${JSON.stringify(res)}`);
  net.stabilize();
  net.tickAll(2);
}

/** A 3-voter cluster led by n1 with n4 added as a caught-up learner. */
function withLearner(): Network {
  const net = new Network(3);
  net.elect('n1');
  net.propose('n1', 'a');
  net.stabilize();
  net.addNode('n4', new MemoryRaftStorage());
  change(net, 'n1', { type: 'addLearner', nodeId: 'n4' });
  return net;
}

t.test('a learner receives entries but does not count toward commit (§4.2.1)', (t) => {
  const net = withLearner();
  t.same(net.node('n1').status().learners, ['n4']);
  t.same(net.get('n4').state, ['a'], 'the learner applied the log');

  net.isolate('n2');
  net.isolate('n3');
  const res = net.propose('n1', 'b');
  net.deliverAll();
  t.ok(res.ok && net.lastIndex('n4') === res.index, 'the learner holds the new entry');
  t.ok(res.ok && net.commit('n1') < res.index, 'leader + learner are not a quorum of three voters');
  net.recover();
  net.tickAll(2);
  t.ok(res.ok && net.commit('n1') >= res.index, 'committed once voters answer');
  t.same(net.get('n4').state, ['a', 'b']);

  // Nor is the learner needed: two of the three voters commit without it.
  net.isolate('n3');
  net.isolate('n4');
  const res2 = net.propose('n1', 'c');
  net.deliverAll();
  t.ok(
    res2.ok && net.commit('n1') >= res2.index,
    'n1 + n2 commit while n3 and the learner are away',
  );
  t.end();
});

t.test('a learner never campaigns and is not asked for votes', (t) => {
  const net = withLearner();
  net.crash('n1');
  const mark = net.mark();
  net.tick('n4', 5 * E);
  t.equal(net.role('n4'), 'follower', 'the learner stays a follower');
  t.equal(net.since(mark).length + net.queue.length, 0, 'and sends nothing');

  net.tickUntil(['n2', 'n3', 'n4'], () => net.leader() !== undefined);
  const asked = net.since(
    mark,
    (m) => (m.type === 'vote' || m.type === 'preVote') && m.to === 'n4',
  );
  t.equal(asked.length, 0, 'candidates ask only voters');
  t.ok(['n2', 'n3'].includes(net.leader()!), 'a voter leads');
  t.end();
});

t.test('promoting a learner (addNode) makes it a voter that counts toward commit (§4.1)', (t) => {
  const net = withLearner();
  change(net, 'n1', { type: 'addNode', nodeId: 'n4' });
  t.same(net.node('n1').status().voters, ['n1', 'n2', 'n3', 'n4']);
  t.same(net.node('n4').status().learners, []);

  // Four voters: a quorum is three. With n3 away, n4's acknowledgement decides.
  net.isolate('n3');
  const rule = net.dropTo('n4');
  const res = net.propose('n1', 'b');
  net.deliverAll();
  t.ok(res.ok && net.commit('n1') < res.index, 'n1 + n2 are two of four: not committed');
  net.removeRule(rule);
  net.tickAll(2);
  t.ok(res.ok && net.commit('n1') >= res.index, 'n4 acknowledgement completes the quorum');

  // And n4 can now lead.
  net.recover();
  net.tickAll(2);
  net.node('n1').transferLeadership('n4');
  net.stabilize();
  t.equal(net.leader(), 'n4', 'the promoted member can be elected');
  t.end();
});

t.test('a removed follower leaves the quorum and stops receiving entries (§4.1)', (t) => {
  const net = new Network(3);
  net.elect('n1');
  change(net, 'n1', { type: 'removeNode', nodeId: 'n3' });
  t.same(net.node('n1').status().voters, ['n1', 'n2']);
  t.same(net.node('n2').status().voters, ['n1', 'n2']);

  const mark = net.mark();
  net.propose('n1', 'x');
  net.stabilize();
  net.tickAll(5 * E);
  t.equal(
    net.since(mark, (m) => m.to === 'n3' && m.from === 'n1').length,
    0,
    'n1 sends n3 nothing',
  );
  t.same(net.get('n2').state, ['x']);
  t.equal(net.leader(), 'n1', 'the two-voter cluster stays stable');

  net.isolate('n2');
  const res = net.propose('n1', 'y');
  net.deliverAll();
  t.ok(res.ok && net.commit('n1') < res.index, 'with two voters, n1 alone cannot commit');
  t.end();
});

t.test('a removed leader steps down and the others elect a new leader (§4.2.2)', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.propose('n1', 'a');
  net.stabilize();
  change(net, 'n1', { type: 'removeNode', nodeId: 'n1' });
  t.equal(net.role('n1'), 'leader', 'n1 lingers as leader after applying its removal');
  t.match(
    net.propose('n1', 'late'),
    { ok: false, code: 'proposal_dropped' },
    'but takes no proposals',
  );
  net.tickUntil(['n1'], () => net.role('n1') !== 'leader', 2 * E);
  t.not(net.role('n1'), 'leader', 'n1 stepped down within an election timeout');
  net.tickUntil(net.ids(), () => net.leader() !== undefined);
  const leader = net.leader()!;
  t.ok(['n2', 'n3'].includes(leader), `${leader} leads`);
  t.same(net.node(leader).status().voters, ['n2', 'n3']);
  net.propose(leader, 'b');
  net.stabilize();
  t.same(net.get('n2').state, ['a', 'b']);
  t.same(net.get('n3').state, ['a', 'b']);

  const mark = net.mark();
  net.crash(leader); // even without a leader, n1 (no longer a voter) stays quiet
  net.tick('n1', 5 * E);
  t.equal(
    net.since(mark, (m) => m.from === 'n1').length +
      net.queue.filter((m) => m.from === 'n1').length,
    0,
  );
  t.equal(net.role('n1'), 'follower');
  t.end();
});

/**
 * Voters n1..n4 led by n1, n2 down for good; n1 proposes its own removal,
 * which reaches n3 and n4, then one more entry that reaches only n4, so n4
 * holds the longest log. Nothing is acknowledged yet.
 */
function leaderRemovesItselfWhileN4HoldsTheLongestLog(t: Test) {
  const net = new Network(4);
  net.elect('n1');
  net.propose('n1', 'a');
  net.stabilize();
  net.crash('n2');
  const removal = net.node('n1').proposeConfChange({ type: 'removeNode', nodeId: 'n1' });
  t.ok(removal.ok);
  net.process('n1');
  net.deliverWhere((m) => m.type === 'app' && m.from === 'n1');
  const x = net.propose('n1', 'x');
  t.ok(x.ok);
  net.discard((m) => m.to === 'n3');
  net.deliverWhere((m) => m.type === 'app' && m.to === 'n4');
  return { net, removal, x };
}

t.test(
  'a removed leader lingers until its heartbeats told every voter the removal committed, so the most caught-up voter can win',
  (t) => {
    const { net, removal } = leaderRemovesItselfWhileN4HoldsTheLongestLog(t);
    // The acknowledgements commit the removal; what tells n4 so is lost, n3 hears it.
    const lostToN4 = net.drop((m) => m.from === 'n1' && m.to === 'n4' && m.type === 'app');
    net.deliverAll();
    t.ok(removal.ok && net.commit('n3') >= removal.index, 'n3 knows the removal committed');
    t.ok(removal.ok && net.commit('n4') < removal.index, 'n4 does not');
    net.removeRule(lostToN4);
    // n1 has applied its own removal. Its heartbeats over the next election timeout reach n4.
    net.tickUntil(['n1'], () => net.role('n1') !== 'leader', 2 * E);
    t.ok(removal.ok && net.commit('n4') >= removal.index, 'the heartbeats told n4');
    net.crash('n1'); // a removed member's process stops
    net.tickUntil(['n3', 'n4'], () => net.leader() !== undefined);
    const leader = net.leader()!;
    t.ok(['n3', 'n4'].includes(leader), `${leader} leads the new configuration`);
    t.same(net.node(leader).status().voters, ['n2', 'n3', 'n4']);
    t.end();
  },
);

t.test(
  'a voter that missed the commit of a removal learns it from a candidate whose last entry it holds, so the cluster elects a leader',
  (t) => {
    // As above, but every message from the removed leader to n4, and its hand-over, is lost.
    const { net, removal, x } = leaderRemovesItselfWhileN4HoldsTheLongestLog(t);
    net.drop((m) => m.from === 'n1' && (m.to === 'n4' || m.type === 'timeoutNow'));
    net.drop((m) => m.to === 'n3' && m.entries.some((e) => x.ok && e.index >= x.index));
    net.deliverAll();
    net.tickUntil(['n1'], () => net.role('n1') !== 'leader', 2 * E);
    net.crash('n1');
    t.ok(removal.ok && net.commit('n3') >= removal.index, 'n3 knows the removal committed');
    t.ok(removal.ok && net.commit('n4') < removal.index, 'n4, with the longest log, does not');
    t.same(net.node('n4').status().voters, ['n1', 'n2', 'n3', 'n4'], 'n4 still counts n1');
    t.ok(net.lastIndex('n4') > net.lastIndex('n3'), 'n3 cannot win n4 over');
    net.recover();

    // n3 cannot win n4's vote (n4's log is longer) and n4 cannot win 3 of the 4 it counts,
    // unless n3's campaign tells n4 what it knows committed.
    net.tickUntil(['n3', 'n4'], () => net.leader() !== undefined);
    t.equal(net.leader(), 'n4', 'the voter with the longest log leads');
    t.same(net.node('n4').status().voters, ['n2', 'n3', 'n4']);
    t.ok(x.ok && net.commit('n4') >= x.index, 'and commits what it held');
    t.end();
  },
);

t.test(
  'a voter never takes a commit index from a candidate whose last entry it does not hold',
  (t) => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a');
    net.stabilize();
    const before = net.commit('n3');
    const lastIndex = net.lastIndex('n3');
    // A candidate claims a commit index, but its last entry has a term n3's log does not have there.
    net.node('n3').step(
      msg({
        type: 'preVote',
        from: 'n2',
        to: 'n3',
        term: net.term('n3') + 1,
        index: lastIndex,
        logTerm: net.term('n3') + 1,
        commit: lastIndex,
      }),
    );
    t.equal(net.commit('n3'), before, 'commit unchanged: the logs may differ up to there');
    t.end();
  },
);

t.test('only one membership change may be pending at a time (§4.1)', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.addNode('n4', new MemoryRaftStorage());
  net.addNode('n5', new MemoryRaftStorage());
  const first = net.node('n1').proposeConfChange({ type: 'addLearner', nodeId: 'n4' });
  t.match(first, { ok: true });
  t.match(
    net.node('n1').proposeConfChange({ type: 'addLearner', nodeId: 'n5' }),
    { ok: false, code: 'proposal_dropped' },
    'a second change is refused while the first is not committed',
  );

  // Committed is not enough: feed n1 the acknowledgements without handling its Ready.
  net.process('n1');
  net.deliverWhere((m) => m.type === 'app');
  for (const m of net.discard((x) => x.type === 'appResp' && x.to === 'n1')) net.node('n1').step(m);
  const r = net.node('n1').raft;
  t.ok(
    first.ok && r.log.committed >= first.index && r.log.applied < first.index,
    'committed, not applied',
  );
  t.match(
    net.node('n1').proposeConfChange({ type: 'addLearner', nodeId: 'n5' }),
    { ok: false, code: 'proposal_dropped' },
    'still refused while the first is committed but not applied',
  );
  net.stabilize();
  t.same(net.node('n1').status().learners, ['n4']);
  t.match(
    net.node('n1').proposeConfChange({ type: 'addLearner', nodeId: 'n5' }),
    { ok: true },
    'accepted once the first one is applied',
  );
  net.stabilize();
  net.tickAll(3);
  t.same(net.node('n1').status().learners, ['n4', 'n5']);
  t.same(net.get('n5').storage.confState, { voters: ['n1', 'n2', 'n3'], learners: ['n4', 'n5'] });
  t.end();
});

t.test(
  'a new leader cannot propose a membership change before its no-op is applied (§4.1 fix)',
  (t) => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a');
    net.stabilize();
    net.tickAll(1);
    t.equal(net.get('n2').appliedIndex, 3, 'n2 applied everything before it takes over');

    // n2 becomes leader, but its appends (hence its no-op) reach nobody.
    const rule = net.drop((m) => m.type === 'app' && m.from === 'n2');
    net.node('n1').transferLeadership('n2');
    net.stabilize();
    t.equal(net.leader(), 'n2');
    t.equal(net.lastIndex('n2'), 4, 'n2 appended its no-op at 4');
    t.equal(net.get('n2').appliedIndex, 3);
    t.match(
      net.node('n2').proposeConfChange({ type: 'removeNode', nodeId: 'n3' }),
      { ok: false, code: 'proposal_dropped' },
      'refused while the no-op of its term is not applied',
    );
    t.match(
      net.node('n2').propose(new TextEncoder().encode('ok')),
      { ok: true },
      'normal proposals are fine',
    );

    net.removeRule(rule);
    net.tickAll(2);
    t.ok(net.get('n2').appliedIndex >= 4, 'the no-op is applied');
    t.match(net.node('n2').proposeConfChange({ type: 'removeNode', nodeId: 'n3' }), { ok: true });
    t.end();
  },
);

t.test('an invalid membership change is refused', (t) => {
  const net = new Network(3);
  net.elect('n1');
  t.match(net.node('n1').proposeConfChange({ type: 'addNode', nodeId: 'n2' }), {
    ok: false,
    code: 'proposal_dropped',
  });
  t.match(net.node('n1').proposeConfChange({ type: 'removeNode', nodeId: 'n9' }), {
    ok: false,
    code: 'proposal_dropped',
  });
  t.end();
});
