/** Leadership transfer (dissertation §3.10). */
import t from 'tap';
import { ELECTION_TICKS as E, enc, Network } from './helpers.js';

t.test('a transfer to an up-to-date follower moves leadership in one round (§3.10)', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.propose('n1', 'a');
  net.stabilize();
  const term = net.term('n1');
  const mark = net.mark();
  t.same(net.node('n1').transferLeadership('n2'), { ok: true });
  net.stabilize();
  t.equal(net.leader(), 'n2');
  t.equal(net.role('n1'), 'follower');
  t.equal(net.term('n2'), term + 1, 'one new term: no PreVote round, no failed election');
  const seen = net.since(mark).map((m) => `${m.from}->${m.to} ${m.type}`);
  t.equal(seen[0], 'n1->n2 timeoutNow', 'the leader sends TimeoutNow at once');
  t.same(
    seen.slice(1, 5),
    ['n2->n1 vote', 'n2->n3 vote', 'n1->n2 voteResp', 'n3->n2 voteResp'],
    'the target campaigns at once and wins',
  );
  t.notOk(seen.includes('n2->n1 preVote'), 'without a PreVote round');
  t.end();
});

t.test('a transfer to a lagging follower first brings it up to date (§3.10)', (t) => {
  const net = new Network(3);
  net.elect('n1');
  const rule = net.drop((m) => m.type === 'app' && m.to === 'n3');
  for (const v of ['a', 'b', 'c']) net.propose('n1', v);
  net.stabilize();
  net.removeRule(rule);
  t.ok(net.lastIndex('n3') < net.lastIndex('n1'), 'n3 lags');

  const mark = net.mark();
  net.node('n1').transferLeadership('n3');
  net.stabilize();
  const seen = net.since(mark);
  const timeoutNow = seen.findIndex((m) => m.type === 'timeoutNow');
  let lastApp = -1;
  seen.forEach((m, i) => {
    if (m.type === 'app' && m.to === 'n3' && m.entries.length > 0) lastApp = i;
  });
  t.ok(lastApp >= 0 && timeoutNow > lastApp, 'TimeoutNow only after the missing entries were sent');
  t.ok(
    seen
      .slice(lastApp, timeoutNow)
      .some((m) => m.type === 'appResp' && m.from === 'n3' && !m.reject),
    'and acknowledged',
  );
  t.equal(net.leader(), 'n3');
  net.tickAll(2);
  t.same(net.get('n3').state, ['a', 'b', 'c']);
  t.end();
});

t.test('proposals are refused while a transfer is in progress (§3.10)', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.isolate('n3');
  t.same(net.node('n1').transferLeadership('n3'), { ok: true });
  t.match(net.node('n1').propose(enc('x')), { ok: false, code: 'proposal_dropped' });
  t.match(net.node('n1').proposeConfChange({ type: 'removeNode', nodeId: 'n2' }), {
    ok: false,
    code: 'proposal_dropped',
  });
  t.equal(net.role('n1'), 'leader', 'n1 still leads meanwhile');
  t.end();
});

t.test('a transfer that does not complete within an election timeout is abandoned (§3.10)', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.isolate('n3');
  net.node('n1').transferLeadership('n3');
  net.tickAll(E - 1);
  t.match(
    net.node('n1').propose(enc('x')),
    { ok: false, code: 'proposal_dropped' },
    'still transferring',
  );
  net.tickAll(1);
  t.equal(net.leader(), 'n1', 'n1 kept the lead');
  t.match(net.node('n1').propose(enc('x')), { ok: true }, 'proposals are accepted again');
  net.recover();
  net.tickAll(3);
  t.equal(net.leader(), 'n1', 'the abandoned transfer does not fire later');
  t.same(net.get('n3').state, ['x']);
  t.end();
});

t.test('a transfer to a non-voter is refused, and to itself is a no-op', (t) => {
  const net = new Network(3);
  net.elect('n1');
  t.match(net.node('n1').transferLeadership('n9'), { ok: false, code: 'proposal_dropped' });
  t.same(net.node('n1').transferLeadership('n1'), { ok: true });
  t.match(net.node('n1').propose(enc('x')), { ok: true });
  t.match(net.node('n2').transferLeadership('n3'), { ok: false, code: 'not_leader', leader: 'n1' });
  t.end();
});
