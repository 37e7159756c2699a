/**
 * The persistence half of the Ready contract (raw-node.ts): whatever a
 * message promises — a term, a vote, acknowledged entries — is in the same
 * Ready as the state to persist, and mustSync says when it needs an fsync.
 * (The harness checks this on every Ready of every test; these pin it down
 * on the cases that matter.)
 */
import t from 'tap';
import { type Message, NONE, type Ready } from '../../src/raft/index.js';
import { ELECTION_TICKS as E, enc, ent, msg, Network } from './helpers.js';

/** Steps `m` into its receiver and returns the Readies it produced. */
function stepReadies(net: Network, m: Message): Ready[] {
  net.node(m.to).step(m);
  return net.process(m.to);
}

t.test(
  'a Ready granting a vote carries the hard state with that vote, and mustSync (§5.2, Figure 2)',
  (t) => {
    const net = new Network(3);
    const rds = stepReadies(
      net,
      msg({ type: 'vote', from: 'n1', to: 'n2', term: 2, index: 1, logTerm: 1 }),
    );
    t.equal(rds.length, 1, 'one Ready');
    const rd = rds[0]!;
    t.match(rd.messages, [{ type: 'voteResp', to: 'n1', reject: false }]);
    t.same(rd.hardState, { term: 2, vote: 'n1', commit: 1 });
    t.equal(rd.mustSync, true);
    t.end();
  },
);

t.test(
  'a candidate vote requests come in the Ready that persists its new term and self-vote',
  (t) => {
    const net = new Network(3, { preVote: false });
    net.node('n1').campaign();
    const rd = net.process('n1')[0]!;
    t.same(
      rd.messages.map((m) => `${m.type}->${m.to} t${m.term}`),
      ['vote->n2 t2', 'vote->n3 t2'],
    );
    t.same(rd.hardState, { term: 2, vote: 'n1', commit: 1 });
    t.equal(rd.mustSync, true);
    t.end();
  },
);

t.test('an append acknowledgement comes in the Ready holding the entries it acknowledges', (t) => {
  const net = new Network(3);
  const rd = stepReadies(
    net,
    msg({
      type: 'app',
      from: 'n1',
      to: 'n2',
      term: 2,
      index: 1,
      logTerm: 1,
      entries: [ent(2, 2, 'x')],
    }),
  )[0]!;
  t.match(rd.messages, [{ type: 'appResp', index: 2, reject: false }]);
  t.same(
    rd.entries.map((e) => `${e.index}:${e.term}`),
    ['2:2'],
  );
  t.match(rd.hardState, { term: 2 }, 'the new term too');
  t.equal(rd.mustSync, true);
  t.end();
});

t.test('a leader appends leave eagerly, in the Ready holding the proposed entries', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.node('n1').propose(enc('p'));
  const rd = net.process('n1')[0]!;
  t.same(
    rd.entries.map((e) => `${e.index}:${e.term}`),
    ['3:2'],
  );
  t.match(rd.eagerMessages, [
    { type: 'app', to: 'n2', entries: [{ index: 3 }] },
    { type: 'app', to: 'n3', entries: [{ index: 3 }] },
  ]);
  t.same(rd.messages, [], 'nothing waits for the disk');
  t.equal(rd.mustSync, true);
  t.end();
});

t.test('a leader counts its own copy of an entry only once it is persisted', (t) => {
  const net = new Network(3);
  net.elect('n1');
  const raw = net.node('n1');
  raw.propose(enc('p'));
  const rd = raw.ready();
  // n2 acknowledges before the leader's own write finished: one durable copy of three.
  raw.step(msg({ type: 'appResp', from: 'n2', to: 'n1', term: 2, index: 3 }));
  t.equal(raw.raft.log.committed, 2, 'not committed while only n2 has it on disk');
  net.get('n1').storage.append(rd.entries);
  raw.advance(rd);
  t.equal(raw.raft.log.committed, 3, 'committed once the leader persisted it too');
  t.end();
});

t.test('a Ready that changes term or vote sends nothing eagerly', (t) => {
  const net = new Network(3);
  net.elect('n1');
  const raw = net.node('n1');
  raw.propose(enc('p'));
  raw.step(msg({ type: 'heartbeat', from: 'n2', to: 'n1', term: 5 }));
  const rd = raw.ready();
  t.match(rd.hardState, { term: 5 });
  t.same(rd.eagerMessages, []);
  t.match(
    rd.messages.map((m) => m.type),
    ['app', 'app', 'heartbeatResp'],
    'the appends wait with the answer in the new term',
  );
  t.end();
});

t.test('a Ready that only advances the commit index does not demand a sync', (t) => {
  const net = new Network(3);
  stepReadies(
    net,
    msg({ type: 'app', from: 'n1', to: 'n2', term: 2, index: 1, logTerm: 1, entries: [ent(2, 2)] }),
  );
  const rd = stepReadies(
    net,
    msg({ type: 'heartbeat', from: 'n1', to: 'n2', term: 2, commit: 2 }),
  )[0]!;
  t.same(rd.hardState, { term: 2, vote: NONE, commit: 2 });
  t.equal(rd.entries.length, 0);
  t.equal(rd.mustSync, false);
  t.same(
    rd.committedEntries.map((e) => e.index),
    [2],
  );
  t.end();
});

t.test('a rejected vote at a higher term still persists the new term before answering', (t) => {
  const net = new Network(3, { checkQuorum: false });
  net.elect('n1');
  net.propose('n1', 'a');
  net.stabilize();
  const rd = stepReadies(
    net,
    msg({ type: 'vote', from: 'n3', to: 'n2', term: 7, index: 1, logTerm: 1 }),
  )[0]!;
  t.match(rd.messages, [{ type: 'voteResp', reject: true, term: 7 }]);
  t.same(rd.hardState, { term: 7, vote: NONE, commit: 3 });
  t.equal(rd.mustSync, true);
  t.end();
});

t.test('a restart from storage keeps term, vote and log', (t) => {
  const net = new Network(3);
  net.elect('n1');
  for (const v of ['a', 'b', 'c']) net.propose('n1', v);
  net.stabilize();
  for (const id of ['n1', 'n2']) {
    const before = net.node(id).status();
    const log = net.storedLog(id);
    net.crash(id);
    net.restart(id);
    const after = net.node(id).status();
    t.equal(after.term, before.term, `${id}: term`);
    t.equal(after.vote, before.vote, `${id}: vote`);
    t.equal(after.lastIndex, before.lastIndex, `${id}: last index`);
    t.ok(after.commit >= net.get(id).appliedIndex, `${id}: commit covers what was applied`);
    t.same(net.storedLog(id), log, `${id}: log`);
    t.equal(after.role, 'follower', `${id} restarts as a follower`);
  }
  net.tickUntil(net.ids(), () => net.leader() !== undefined);
  const leader = net.leader()!;
  net.propose(leader, 'd');
  net.stabilize();
  for (const id of net.ids())
    t.same(net.get(id).state, ['a', 'b', 'c', 'd'], `${id} applied each entry once`);
  t.end();
});

t.test('a restarted node does not lose entries it acknowledged (no double apply, no gap)', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.propose('n1', 'a');
  // n3 acknowledges, then crashes before it learns the commit.
  net.deliverWhere((m) => m.type === 'app' || m.type === 'appResp');
  net.crash('n3');
  net.deliverAll();
  t.equal(net.commit('n1'), 3);
  net.restart('n3');
  t.equal(net.lastIndex('n3'), 3, 'the acknowledged entry survived the crash');
  net.tickAll(3);
  t.same(net.get('n3').state, ['a']);
  t.end();
});

t.test('every Ready keeps the contract through elections, partitions and crashes', (t) => {
  // The harness throws on a violation; this run just gives it many chances.
  for (let seed = 1; seed <= 4; seed++) {
    const net = new Network(5, { seed });
    let k = 0;
    for (let step = 0; step < 40; step++) {
      const victim = `n${1 + ((seed + step) % 5)}`;
      if (step % 7 === 0) net.isolate(victim);
      if (step % 7 === 3) net.recover();
      if (step % 11 === 5 && net.get(victim).up && net.upIds().length > 3) net.crash(victim);
      if (step % 11 === 9) for (const id of net.ids()) if (!net.get(id).up) net.restart(id);
      const leader = net.leader();
      if (leader) net.propose(leader, `s${seed}.${k++}`);
      net.tickAll(E / 2);
    }
    net.recover();
    for (const id of net.ids()) if (!net.get(id).up) net.restart(id);
    net.tickUntil(net.ids(), () => net.leader() !== undefined);
    net.tickAll(3 * E);
    const states = net.ids().map((id) => net.get(id).state);
    const longest = states.reduce((a, b) => (b.length > a.length ? b : a));
    for (const [i, s] of states.entries()) {
      t.same(
        s,
        longest.slice(0, s.length),
        `seed ${seed}: n${i + 1} applied a prefix of one history`,
      );
    }
    t.ok(longest.length > 0, `seed ${seed}: something was committed (${longest.length})`);
  }
  t.end();
});
