import t from 'tap';
import { type Message, NONE } from '../../src/raft/index.js';
import { ELECTION_TICKS as E, msg, Network } from './helpers.js';

/** Steps `m` into its receiver and returns what the receiver sent in response. */
function exchange(net: Network, m: Message): Message[] {
  net.node(m.to).step(m);
  net.process(m.to);
  return net.discard((x) => x.from === m.to);
}

// ---------------------------------------------------------------- PreVote

t.test(
  'a partitioned node that rejoins neither raises the term nor deposes the leader (PreVote, §9.6)',
  (t) => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a');
    net.stabilize();
    const term = net.term('n1');

    net.isolate('n3');
    net.tickAll(5 * E);
    t.ok(
      net.history.some((d) => d.m.from === 'n3' && d.m.type === 'preVote'),
      'n3 tried to campaign',
    );
    t.equal(net.term('n3'), term, 'failed pre-elections do not raise even its own term');
    t.equal(net.get('n3').storage.hardState.term, term);

    net.recover();
    net.tickAll(5 * E);
    t.equal(net.leader(), 'n1', 'the leader keeps its place');
    for (const id of net.ids()) t.equal(net.term(id), term, `${id} is still in term ${term}`);
    t.same(net.get('n3').state, ['a'], 'and n3 caught up');
    t.end();
  },
);

t.test('without PreVote and CheckQuorum the same rejoin raises the cluster term', (t) => {
  // The contrast that shows the previous test depends on PreVote.
  const net = new Network(3, { preVote: false, checkQuorum: false });
  net.elect('n1');
  const term = net.term('n1');
  net.isolate('n3');
  net.tickAll(5 * E);
  t.ok(net.term('n3') > term, 'n3 raised its term while alone');
  net.recover();
  net.tickAll(5 * E);
  t.ok(net.term('n1') > term, 'the cluster term rose');
  t.end();
});

t.test('granting a pre-vote changes neither the voter term nor its vote (§9.6)', (t) => {
  const net = new Network(3);
  const out = exchange(
    net,
    msg({ type: 'preVote', from: 'n1', to: 'n2', term: 2, index: 1, logTerm: 1 }),
  );
  t.match(
    out,
    [{ type: 'preVoteResp', to: 'n1', term: 2, reject: false }],
    'granted for the term asked about',
  );
  const r = net.node('n2').raft;
  t.equal(r.term, 1, 'term unchanged');
  t.equal(r.vote, NONE, 'no vote cast');
  t.same(
    net.get('n2').storage.hardState,
    { term: 1, vote: NONE, commit: 1 },
    'nothing new persisted',
  );
  const rd = net.get('n2').readies.at(-1)!;
  t.equal(rd.hardState, undefined, 'the Ready carries no hard state');
  t.equal(rd.mustSync, false);

  // A real vote afterwards, from another candidate, is still possible: the pre-vote bound nothing.
  const out2 = exchange(
    net,
    msg({ type: 'vote', from: 'n3', to: 'n2', term: 2, index: 1, logTerm: 1 }),
  );
  t.match(out2, [{ type: 'voteResp', to: 'n3', reject: false }]);
  t.end();
});

t.test('a pre-candidate keeps its term and casts no vote (§9.6)', (t) => {
  const net = new Network(3);
  net.isolate('n1');
  net.node('n1').campaign();
  net.stabilize();
  t.equal(net.role('n1'), 'preCandidate');
  t.equal(net.term('n1'), 1);
  t.equal(net.node('n1').raft.vote, NONE);
  t.same(net.get('n1').storage.hardState, { term: 1, vote: NONE, commit: 1 });
  t.end();
});

t.test(
  'a pre-vote is refused to a less up-to-date candidate, without a term change (§5.4.1, §9.6)',
  (t) => {
    const net = new Network(3, { checkQuorum: false });
    net.elect('n1');
    net.propose('n1', 'a');
    net.stabilize();
    const term = net.term('n3');
    const out = exchange(
      net,
      msg({ type: 'preVote', from: 'n2', to: 'n3', term: term + 1, index: 2, logTerm: term }),
    );
    t.match(out, [{ type: 'preVoteResp', reject: true, term }], 'refused with the voter term');
    t.equal(net.term('n3'), term);
    t.equal(net.node('n3').raft.lead, 'n1', 'n3 still follows n1');
    t.end();
  },
);

// ---------------------------------------------------------------- CheckQuorum

t.test(
  'a leader that hears from no quorum for an election timeout steps down (CheckQuorum, §6.2)',
  (t) => {
    const net = new Network(3);
    net.elect('n1');
    const term = net.term('n1');
    net.tickAll(3 * E);
    t.equal(net.role('n1'), 'leader', 'a connected leader stays');

    net.isolate('n1');
    net.tick('n1', E - 1);
    t.equal(net.role('n1'), 'leader', 'not before a check');
    net.tick('n1', E + 1);
    t.equal(net.role('n1'), 'follower', 'stepped down within two election timeouts');
    t.equal(net.term('n1'), term, 'without changing term');
    t.equal(net.node('n1').raft.lead, NONE);
    t.end();
  },
);

t.test('followers in lease ignore vote requests from a disruptive node (§4.2.3)', (t) => {
  // n3 runs without PreVote: the real vote requests are what the lease must stop.
  const net = new Network(3, { preVote: false });
  net.elect('n1');
  const term = net.term('n1');
  net.isolate('n3');
  net.tick('n3', 3 * E);
  net.discard();
  t.ok(net.term('n3') > term, `n3 alone raised its term to ${net.term('n3')}`);

  // n3 can reach everyone now, but hears nothing back (so no appResp tells n1 its term).
  net.recover();
  net.dropTo('n3');
  const mark = net.mark();
  net.tickAll(3 * E);
  const votes = net.since(mark, (m) => m.type === 'vote' && m.from === 'n3', 'delivered');
  t.ok(votes.length >= 2, 'n3 vote requests reached the others');
  t.equal(
    net.since(mark, (m) => m.type === 'voteResp' && m.to === 'n3').length,
    0,
    'nobody answered them',
  );
  t.equal(net.term('n1'), term, 'the leader term is unchanged');
  t.equal(net.term('n2'), term, 'the follower term is unchanged');
  t.equal(net.leader(), 'n1');
  t.end();
});

t.test('a vote request is heard once the lease has expired', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.crash('n1');
  net.tick('n2', E); // E ticks without the leader: the lease is over
  net.discard();
  const out = exchange(
    net,
    msg({ type: 'vote', from: 'n3', to: 'n2', term: 5, index: 2, logTerm: 2 }),
  );
  t.match(out, [{ type: 'voteResp', reject: false, term: 5 }]);
  t.end();
});

t.test('a stale leader learns the new term from an appResp and steps down', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.isolate('n1');
  // n1 is not ticked: it still believes it leads term 2. n2 and n3 move on.
  net.tickUntil(['n2', 'n3'], () => net.leader() !== 'n1' && net.leader() !== undefined);
  const newLeader = net.leader()!;
  const newTerm = net.term(newLeader);
  t.ok(newTerm > net.term('n1'));
  t.equal(net.role('n1'), 'leader', 'n1 is a stale leader');

  net.recover();
  const mark = net.mark();
  net.tick('n1'); // its heartbeat, of the old term
  net.deliverAll();
  const answers = net.since(mark, (m) => m.type === 'appResp' && m.to === 'n1', 'delivered');
  t.ok(answers.length > 0, 'the stale heartbeat was answered with an appResp');
  t.ok(
    answers.every((m) => m.term === newTerm),
    'carrying the new term',
  );
  t.equal(net.role('n1'), 'follower');
  t.equal(net.term('n1'), newTerm);
  net.tickAll(2);
  t.equal(net.node('n1').raft.lead, newLeader, 'and then follows the new leader');
  t.end();
});
