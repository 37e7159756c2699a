import t from 'tap';
import { MemoryRaftStorage } from '../../src/raft/index.js';
import { msg, Network } from './helpers.js';

t.test(
  'a follower that was down while the leader compacted gets a snapshot, then entries (§7)',
  (t) => {
    const net = new Network(3);
    net.elect('n1');
    for (let i = 0; i < 5; i++) net.propose('n1', `a${i}`);
    net.stabilize();
    net.crash('n3');
    for (let i = 0; i < 5; i++) net.propose('n1', `b${i}`);
    net.stabilize();
    const snapIndex = net.get('n1').appliedIndex;
    net.compact('n1');
    t.equal(
      net.get('n1').storage.firstIndex(),
      snapIndex + 1,
      'the leader dropped its log up to the snapshot',
    );
    for (let i = 0; i < 3; i++) net.propose('n1', `c${i}`);
    net.stabilize();

    net.restart('n3');
    const mark = net.mark();
    net.tickUntil(net.ids(), () => net.get('n3').appliedIndex === net.get('n1').appliedIndex);
    const toN3 = net.since(
      mark,
      (m) => m.to === 'n3' && (m.type === 'snap' || m.type === 'app'),
      'delivered',
    );
    const snapAt = toN3.findIndex((m) => m.type === 'snap');
    t.ok(snapAt >= 0, 'n3 got a snapshot');
    t.equal(toN3[snapAt]!.snapshot!.metadata.index, snapIndex, 'the one the leader took');
    t.ok(
      toN3.slice(snapAt + 1).some((m) => m.type === 'app' && m.entries.length > 0),
      'and then appends with the entries after it',
    );
    const n3 = net.get('n3');
    t.equal(n3.storage.snapshot().metadata.index, snapIndex, 'n3 persisted the snapshot');
    t.equal(n3.storage.firstIndex(), snapIndex + 1, 'n3 log restarts after the snapshot');
    t.same(n3.state, net.get('n1').state, 'n3 has the whole state: snapshot and entries');
    t.same(n3.state.slice(-3), ['c0', 'c1', 'c2']);
    t.same(net.storedLog('n3'), net.storedLog('n1'));
    t.end();
  },
);

t.test('a learner added with empty storage gets a snapshot, then the log (§7, §4.2.1)', (t) => {
  for (const compacted of [false, true]) {
    const label = compacted ? 'after compaction' : 'from the bootstrap snapshot';
    const net = new Network(3);
    net.elect('n1');
    for (let i = 0; i < 4; i++) net.propose('n1', `v${i}`);
    net.stabilize();
    if (compacted) net.compact('n1');
    const n4 = net.addNode('n4', new MemoryRaftStorage());
    const mark = net.mark();
    t.match(net.node('n1').proposeConfChange({ type: 'addLearner', nodeId: 'n4' }), { ok: true });
    net.stabilize();
    net.tickAll(3);
    const toN4 = net.since(
      mark,
      (m) => m.to === 'n4' && (m.type === 'snap' || m.type === 'app'),
      'delivered',
    );
    const snapAt = toN4.findIndex((m) => m.type === 'snap');
    t.ok(snapAt >= 0, `${label}: a snapshot first`);
    t.ok(
      toN4.slice(0, snapAt).every((m) => m.type === 'app' && m.entries.length === 0),
      `${label}: nothing but empty probes before it`,
    );
    t.ok(
      toN4.slice(snapAt + 1).some((m) => m.type === 'app' && m.entries.length > 0),
      `${label}: then the log`,
    );
    t.same(n4.state, net.get('n1').state, `${label}: n4 has the state`);
    t.equal(n4.appliedIndex, net.get('n1').appliedIndex);
    t.same(net.node('n4').raft.learners, ['n4'], `${label}: n4 knows it is a learner`);
    t.same(net.node('n4').raft.voters, ['n1', 'n2', 'n3']);
    t.same(
      n4.storage.confState,
      { voters: ['n1', 'n2', 'n3'], learners: ['n4'] },
      `${label}: and persisted it`,
    );
  }
  t.end();
});

t.test('a follower ignores a snapshot that is not newer than its commit', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.propose('n1', 'a');
  net.stabilize();
  net.tickAll(1);
  const commit = net.commit('n2');
  const snapshot = {
    metadata: { index: 2, term: 2, confState: { voters: ['n1', 'n2', 'n3'], learners: [] } },
    data: new Uint8Array(),
  };
  net.node('n2').step(msg({ type: 'snap', from: 'n1', to: 'n2', term: 2, snapshot }));
  const rds = net.process('n2');
  t.ok(
    rds.every((rd) => rd.snapshot === undefined),
    'not installed',
  );
  t.match(
    net.discard((m) => m.from === 'n2'),
    [{ type: 'appResp', index: commit, reject: false }],
  );
  t.equal(net.get('n2').storage.snapshot().metadata.index, 1);
  t.same(net.get('n2').state, ['a']);
  t.end();
});

t.test('a snapshot is retried when the first one is lost', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.crash('n3');
  net.propose('n1', 'a');
  net.stabilize();
  net.compact('n1');
  net.restart('n3');
  let lost = 0;
  const rule = net.drop((m) => m.type === 'snap' && lost++ === 0);
  net.tickUntil(net.ids(), () => net.get('n3').state.length === 1, 100);
  net.removeRule(rule);
  t.equal(lost, 2, 'the first snapshot was dropped and a second one sent');
  t.same(net.get('n3').state, ['a']);
  t.end();
});

t.test('nodes restart from compacted storage and from an installed snapshot', (t) => {
  const net = new Network(3);
  net.elect('n1');
  for (let i = 0; i < 4; i++) net.propose('n1', `a${i}`);
  net.stabilize();
  net.crash('n3');
  net.propose('n1', 'b');
  net.stabilize();
  net.compact('n1');
  net.compact('n2');
  net.restart('n3');
  net.tickUntil(net.ids(), () => net.get('n3').state.length === 5);
  t.ok(net.get('n3').storage.snapshot().metadata.index > 1, 'n3 installed a snapshot');

  for (const id of ['n1', 'n2', 'n3']) {
    const before = net.node(id).status();
    net.crash(id);
    net.restart(id);
    const after = net.node(id).status();
    t.equal(after.term, before.term, `${id}: term survives`);
    t.equal(after.lastIndex, before.lastIndex, `${id}: log survives`);
    t.same(after.voters, ['n1', 'n2', 'n3'], `${id}: membership survives`);
  }
  net.tickUntil(net.ids(), () => net.leader() !== undefined);
  net.propose(net.leader()!, 'c');
  net.stabilize();
  net.tickAll(2);
  for (const id of net.ids()) {
    t.same(net.get(id).state, ['a0', 'a1', 'a2', 'a3', 'b', 'c'], `${id} state after restarts`);
  }
  t.end();
});
