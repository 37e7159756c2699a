/**
 * Raft §5.4.2 and Figure 8: a leader never commits an entry of an earlier term
 * by counting replicas; such an entry is committed only indirectly, by
 * committing an entry of the leader's own term after it.
 *
 * Here index 1 is the bootstrap entry, so the paper's "index 2" is our index 2
 * and every leader's first entry is its no-op. PreVote and CheckQuorum are off
 * to follow the paper; one entry per append lets the scenario pick exactly
 * which entries reach whom.
 */
import t, { type Test } from 'tap';
import { Network } from './helpers.js';

const termAt = (net: Network, id: string, index: number) => net.node(id).raft.log.term(index);

/** Figure 8 (a)–(c): returns the network with n1 leading term 4 and its term-2 entry on a majority. */
function figure8abc(t: Test): Network {
  const net = new Network(5, { preVote: false, checkQuorum: false, maxSizePerMsgBytes: 1 });

  // (a) n1 leads term 2; its entry 2 reaches only n2.
  let rule = net.drop((m) => m.type === 'app' && m.from === 'n1' && m.to !== 'n2');
  net.elect('n1');
  net.removeRule(rule);
  t.equal(net.term('n1'), 2);
  t.same(net.storedLog('n1'), ['2:2']);
  t.same(net.storedLog('n2'), ['2:2']);
  t.equal(net.commit('n1'), 1, '(a) entry 2 is on 2 of 5: not committed');

  // (b) n1 crashes; n5 wins term 3 with n3 and n4 and writes its own entry 2, alone.
  net.crash('n1');
  rule = net.drop((m) => m.type === 'app' && m.from === 'n5');
  net.elect('n5');
  net.removeRule(rule);
  t.equal(net.term('n5'), 3);
  t.same(net.storedLog('n5'), ['2:3'], '(b) n5 has entry 2 of term 3');
  net.crash('n5');

  // (c) n1 restarts and wins term 4 (n2, n3, n4). It replicates its term-2
  // entry to n3, but its term-4 entry 3 reaches only n2, and n4 gets nothing.
  net.restart('n1');
  rule = net.drop(
    (m) =>
      m.type === 'app' &&
      (m.to === 'n4' ||
        (m.to === 'n3' &&
          m.entries.some((e) => e.term === 4) &&
          net.get('n3').storage.lastIndex() >= 2)),
  );
  net.elect('n1');
  t.equal(net.term('n1'), 4);
  t.same(net.storedLog('n1'), ['2:2', '3:4']);
  t.same(net.storedLog('n2'), ['2:2', '3:4']);
  t.same(net.storedLog('n3'), ['2:2'], '(c) entry 2 of term 2 is now on n1, n2, n3: a majority');
  t.same(net.storedLog('n4'), []);
  t.match(
    net.node('n1').status().progress,
    { n2: { match: 3 }, n3: { match: 2 } },
    'and the leader knows it',
  );
  return net;
}

t.test(
  'a leader does not commit an entry of an earlier term by counting replicas (§5.4.2, Figure 8 c–d)',
  (t) => {
    const net = figure8abc(t);
    net.tickAll(20); // heartbeats, probes: the term-4 entry still reaches nobody
    t.equal(net.commit('n1'), 1, 'entry 2 is on a majority yet not committed');
    for (const id of net.upIds()) t.equal(net.get(id).appliedIndex, 1, `${id} applied nothing`);

    // (d) Rightly so: n1 crashes, n5 returns and wins term 5 with n3 and n4
    // (its last entry, of term 3, is more up to date than their term-2 entry),
    // then overwrites entry 2 everywhere.
    net.crash('n1');
    net.recover();
    net.restart('n5');
    net.elect('n5');
    t.equal(net.term('n5'), 5);
    t.equal(
      net.history.filter(
        (d) => d.m.type === 'voteResp' && d.m.to === 'n5' && d.m.from === 'n2' && d.m.term === 5,
      )[0]?.m.reject,
      true,
      'n2, which holds the term-4 entry, refused',
    );
    net.tickAll(5);
    for (const id of ['n2', 'n3', 'n4', 'n5']) {
      t.equal(termAt(net, id, 2), 3, `${id}: entry 2 is n5's, of term 3`);
      t.ok(
        net.get(id).applied.every((e) => e.index !== 2 || e.term === 3),
        `${id} never applied the overwritten entry`,
      );
      t.ok(net.get(id).appliedIndex >= 3, `${id} applied the new leader's entries`);
      t.equal(termAt(net, id, 3), 5, `${id}: entry 3 is n5's no-op`);
    }
    // Had n1 counted replicas at (c), entry 2 of term 2 would have been reported committed, then lost.
    t.end();
  },
);

t.test(
  'an earlier-term entry commits together with an entry of the leader term (§5.4.2, Figure 8 e)',
  (t) => {
    const net = figure8abc(t);
    net.recover();
    net.tickAll(2);
    t.equal(
      net.commit('n1'),
      3,
      'once its term-4 entry 3 is on a majority, entries 2 and 3 commit',
    );
    t.same(
      net.get('n1').applied.map((e) => `${e.index}:${e.term}`),
      ['2:2', '3:4'],
      'and apply in order',
    );
    for (const id of ['n2', 'n3']) t.equal(net.commit(id), 3, `${id} learns the commit`);

    // Now n5 can no longer win: a majority holds a more up-to-date log than its own.
    net.crash('n1');
    net.restart('n5');
    for (let i = 0; i < 3; i++) {
      net.node('n5').campaign();
      net.stabilize();
    }
    t.not(net.role('n5'), 'leader', 'n5 cannot be elected');
    net.tickUntil(net.upIds(), () => net.leader() !== undefined);
    net.tickAll(5);
    for (const id of net.upIds()) {
      t.equal(termAt(net, id, 2), 2, `${id}: the committed entry 2 of term 2 survives`);
      t.equal(termAt(net, id, 3), 4, `${id}: the committed entry 3 of term 4 survives`);
    }
    t.end();
  },
);
