import t from 'tap';
import { type Message, NONE } from '../../src/raft/index.js';
import { ELECTION_TICKS as E, msg, Network } from './helpers.js';

/** Ticks `id` alone until it sends a (pre)vote request; returns the tick count. */
function ticksUntilCampaign(net: Network, id: string, limit: number): number {
  for (let ticks = 1; ticks <= limit; ticks++) {
    net.tick(id);
    if (net.queue.some((m) => m.from === id && (m.type === 'preVote' || m.type === 'vote')))
      return ticks;
  }
  return -1;
}

/** Steps `m` into its receiver and returns what the receiver sent in response. */
function exchange(net: Network, m: Message): Message[] {
  net.node(m.to).step(m);
  net.process(m.to);
  return net.discard((x) => x.from === m.to);
}

t.test('a follower that hears nothing for its election timeout campaigns (§5.2)', (t) => {
  const net = new Network(3);
  const ticks = ticksUntilCampaign(net, 'n1', 2 * E);
  t.ok(ticks >= E && ticks < 2 * E, `campaigned after ${ticks} ticks`);
  const reqs = net.queue.filter((m) => m.from === 'n1');
  t.same(
    reqs.map((m) => `${m.type}->${m.to}`),
    ['preVote->n2', 'preVote->n3'],
    'asks every other voter (PreVote first)',
  );
  t.equal(net.role('n1'), 'preCandidate');

  // Without PreVote the same timeout starts a real election in a new term.
  const plain = new Network(3, { preVote: false });
  const ticks2 = ticksUntilCampaign(plain, 'n1', 2 * E);
  t.ok(ticks2 >= E && ticks2 < 2 * E);
  t.equal(plain.role('n1'), 'candidate');
  t.equal(plain.term('n1'), 2, 'the candidate increments its term');
  t.equal(plain.node('n1').raft.vote, 'n1', 'and votes for itself');
  t.end();
});

t.test('the randomized election timeout lies in [electionTicks, 2*electionTicks) (§5.2)', (t) => {
  const seen = new Set<number>();
  for (let seed = 1; seed <= 60; seed++) {
    const net = new Network(3, { seed });
    const ticks = ticksUntilCampaign(net, 'n1', 2 * E);
    if (!(ticks >= E && ticks < 2 * E)) t.fail(`seed ${seed}: campaigned after ${ticks} ticks`);
    seen.add(ticks);
  }
  t.ok(
    seen.size >= E / 2,
    `timeouts are spread out (${[...seen].sort((a, b) => a - b).join(',')})`,
  );
  t.end();
});

t.test('a follower that keeps hearing from its leader never campaigns', (t) => {
  const net = new Network(3);
  net.elect('n1');
  const term = net.term('n1');
  const mark = net.mark();
  net.tickAll(10 * E);
  t.equal(net.leader(), 'n1');
  t.equal(net.term('n2'), term);
  t.equal(net.since(mark, (m) => m.type === 'preVote' || m.type === 'vote').length, 0);
  t.end();
});

t.test('a fresh cluster left to its timers elects exactly one leader', (t) => {
  for (let seed = 1; seed <= 10; seed++) {
    const net = new Network(5, { seed });
    net.tickUntil(net.ids(), () => net.leader() !== undefined);
    net.tickAll(3 * E);
    const leaders = net.ids().filter((id) => net.role(id) === 'leader');
    t.equal(leaders.length, 1, `seed ${seed}: one leader`);
    const lead = leaders[0]!;
    for (const id of net.ids())
      t.equal(net.node(id).raft.lead, lead, `seed ${seed}: ${id} follows ${lead}`);
  }
  t.end();
});

t.test(
  'a candidate with votes from a majority becomes leader and appends a no-op of its term (§5.2, §8)',
  (t) => {
    const net = new Network(3);
    net.elect('n1');
    t.equal(net.role('n1'), 'leader');
    t.equal(net.term('n1'), 2);
    const last = net.node('n1').raft.log.slice(2, 3)[0]!;
    t.match(last, { index: 2, term: 2, type: 'normal' }, 'an entry of the new term at lastIndex');
    t.equal(last.data.byteLength, 0, 'the entry is a no-op');
    t.equal(net.commit('n1'), 2, 'the no-op commits');
    for (const id of ['n2', 'n3']) {
      t.same(net.storedLog(id), ['2:2'], `${id} persisted the no-op`);
      t.equal(net.node(id).raft.lead, 'n1');
    }
    t.end();
  },
);

t.test('a candidate without a majority of votes does not become leader (§5.2)', (t) => {
  const net = new Network(5, { preVote: false });
  net.isolate('n4');
  net.isolate('n5');
  net.drop((m) => m.from === 'n3' && m.type === 'voteResp');
  net.node('n1').campaign();
  net.stabilize();
  t.equal(net.role('n1'), 'candidate', 'two votes of five (its own and n2) do not make a leader');
  net.recover();
  net.node('n1').campaign();
  net.stabilize();
  t.equal(net.role('n1'), 'leader', 'three of five do');
  t.end();
});

t.test('a node grants at most one vote per term, also after a restart from storage (§5.2)', (t) => {
  const net = new Network(3);
  const vote = (from: string, term: number) =>
    msg({ type: 'vote', from, to: 'n3', term, index: 1, logTerm: 1 });

  let out = exchange(net, vote('n1', 2));
  t.match(
    out,
    [{ type: 'voteResp', to: 'n1', term: 2, reject: false }],
    'first candidate of term 2 gets the vote',
  );
  t.equal(net.get('n3').storage.hardState.vote, 'n1', 'the vote is persisted');

  out = exchange(net, vote('n2', 2));
  t.match(
    out,
    [{ type: 'voteResp', to: 'n2', reject: true }],
    'a second candidate in the same term is refused',
  );

  net.crash('n3');
  net.restart('n3');
  t.equal(net.node('n3').raft.vote, 'n1', 'the vote survives the restart');
  out = exchange(net, vote('n2', 2));
  t.match(out, [{ type: 'voteResp', to: 'n2', reject: true }], 'still refused after the restart');
  out = exchange(net, vote('n1', 2));
  t.match(
    out,
    [{ type: 'voteResp', to: 'n1', reject: false }],
    'a repeated request from the same candidate is granted again',
  );

  out = exchange(net, vote('n2', 3));
  t.match(
    out,
    [{ type: 'voteResp', to: 'n2', term: 3, reject: false }],
    'a new term brings a new vote',
  );
  t.end();
});

t.test('a vote is refused to a candidate whose log is less up to date (§5.4.1)', (t) => {
  // No CheckQuorum: the voter has a leader, and leases are not the subject here.
  const net = new Network(3, { checkQuorum: false });
  net.elect('n1');
  net.propose('n1', 'a');
  net.propose('n1', 'b');
  net.stabilize();
  t.same(net.storedLog('n3'), ['2:2', '3:2', '4:2']);

  const cases: [
    term: number,
    lastIndex: number,
    lastTerm: number,
    granted: boolean,
    why: string,
  ][] = [
    [3, 9, 1, false, 'a longer log with an older last term'],
    [4, 3, 2, false, 'the same last term but shorter'],
    [5, 4, 2, true, 'the same last entry'],
    [6, 5, 2, true, 'the same last term and longer'],
    [7, 2, 3, true, 'a newer last term, even if shorter'],
  ];
  for (const [term, index, logTerm, granted, why] of cases) {
    const out = exchange(net, msg({ type: 'vote', from: 'n2', to: 'n3', term, index, logTerm }));
    t.match(
      out,
      [{ type: 'voteResp', reject: !granted }],
      `${granted ? 'granted' : 'refused'}: ${why}`,
    );
    t.equal(net.term('n3'), term, 'the voter adopts the higher term either way');
    t.equal(net.node('n3').raft.vote, granted ? 'n2' : NONE);
  }
  t.end();
});

t.test('a leader steps down when it sees a higher term (§5.1)', (t) => {
  const net = new Network(3, { checkQuorum: false });
  net.elect('n1');
  // A vote request from a less up-to-date candidate: the vote is refused, but the term is adopted.
  const out = exchange(
    net,
    msg({ type: 'vote', from: 'n3', to: 'n1', term: 9, index: 1, logTerm: 1 }),
  );
  t.equal(net.role('n1'), 'follower');
  t.equal(net.term('n1'), 9);
  t.match(out, [{ type: 'voteResp', reject: true, term: 9 }]);

  const net2 = new Network(3);
  net2.elect('n1');
  exchange(net2, msg({ type: 'heartbeat', from: 'n2', to: 'n1', term: 5 }));
  t.equal(net2.role('n1'), 'follower', 'a heartbeat of a higher term deposes the leader');
  t.equal(net2.term('n1'), 5);
  t.equal(net2.node('n1').raft.lead, 'n2', 'and names the new leader');
  t.end();
});

t.test('a candidate steps down on an AppendEntries of its term or on a higher term (§5.2)', (t) => {
  const net = new Network(3, { preVote: false });
  net.isolate('n1');
  net.node('n1').campaign();
  net.stabilize();
  t.equal(net.role('n1'), 'candidate');
  t.equal(net.term('n1'), 2);
  exchange(net, msg({ type: 'app', from: 'n2', to: 'n1', term: 2, index: 1, logTerm: 1 }));
  t.equal(net.role('n1'), 'follower', 'another leader of the same term is recognized');
  t.equal(net.node('n1').raft.lead, 'n2');

  net.node('n1').campaign();
  net.stabilize();
  t.equal(net.role('n1'), 'candidate');
  t.equal(net.term('n1'), 3);
  exchange(net, msg({ type: 'voteResp', from: 'n3', to: 'n1', term: 7, reject: true }));
  t.equal(net.role('n1'), 'follower', 'a refusal carrying a higher term ends the candidacy');
  t.equal(net.term('n1'), 7);
  t.end();
});
