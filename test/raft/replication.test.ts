import t from 'tap';
import { entriesSizeBytes, type Message } from '../../src/raft/index.js';
import { ELECTION_TICKS as E, enc, ent, msg, Network } from './helpers.js';

/** Steps `m` into its receiver and returns what the receiver sent in response. */
function exchange(net: Network, m: Message): Message[] {
  net.node(m.to).step(m);
  net.process(m.to);
  return net.discard((x) => x.from === m.to);
}

const app = (fields: Partial<Message>) =>
  msg({ type: 'app', from: 'n1', to: 'n2', term: 2, ...fields });

t.test('a follower rejects AppendEntries whose previous entry does not match (§5.3)', (t) => {
  const net = new Network(3);
  let out = exchange(net, app({ index: 5, logTerm: 2, entries: [ent(6, 2)] }));
  t.match(
    out,
    [{ type: 'appResp', reject: true, index: 5, rejectHint: 1, logTerm: 1 }],
    'missing previous entry',
  );
  out = exchange(net, app({ index: 1, logTerm: 3, entries: [ent(2, 3)] }));
  t.match(out, [{ type: 'appResp', reject: true, index: 1 }], 'previous entry of another term');
  t.same(net.storedLog('n2'), [], 'nothing was appended');
  t.equal(net.lastIndex('n2'), 1);

  out = exchange(net, app({ index: 1, logTerm: 1, entries: [ent(2, 2)] }));
  t.match(
    out,
    [{ type: 'appResp', reject: false, index: 2 }],
    'a matching previous entry is accepted',
  );
  t.same(net.storedLog('n2'), ['2:2']);
  t.end();
});

t.test('a follower truncates conflicting entries and appends the leader ones (§5.3)', (t) => {
  const net = new Network(3);
  exchange(net, app({ index: 1, logTerm: 1, entries: [ent(2, 2), ent(3, 2), ent(4, 2)] }));
  t.same(net.storedLog('n2'), ['2:2', '3:2', '4:2']);
  const out = exchange(
    net,
    msg({ type: 'app', from: 'n3', to: 'n2', term: 3, index: 2, logTerm: 2, entries: [ent(3, 3)] }),
  );
  t.match(out, [{ type: 'appResp', reject: false, index: 3 }]);
  t.same(
    net.storedLog('n2'),
    ['2:2', '3:3'],
    'the conflicting entry and all that follow it are gone',
  );
  t.equal(net.lastIndex('n2'), 3);
  t.end();
});

t.test('an AppendEntries that matches does not truncate the entries after it (§5.3)', (t) => {
  const net = new Network(3);
  exchange(net, app({ index: 1, logTerm: 1, entries: [ent(2, 2), ent(3, 2), ent(4, 2)] }));
  // A delayed, shorter append of the same leader.
  const out = exchange(net, app({ index: 1, logTerm: 1, entries: [ent(2, 2)] }));
  t.match(out, [{ type: 'appResp', reject: false, index: 2 }]);
  t.same(net.storedLog('n2'), ['2:2', '3:2', '4:2'], 'entries 3 and 4 are kept');
  t.end();
});

t.test('a follower commits min(leaderCommit, index of its last new entry) (§5.3)', (t) => {
  const net = new Network(3);
  exchange(net, app({ index: 1, logTerm: 1, entries: [ent(2, 2)], commit: 4 }));
  t.equal(net.commit('n2'), 2, 'not past what this append proved to match');
  exchange(net, app({ index: 2, logTerm: 2, entries: [ent(3, 2), ent(4, 2)], commit: 3 }));
  t.equal(net.commit('n2'), 3);
  t.same(
    net.get('n2').applied.map((e) => e.index),
    [2, 3],
    'committed entries are applied in order',
  );
  t.end();
});

t.test('a follower does not commit entries an append did not prove to match (§5.3)', (t) => {
  const net = new Network(3);
  // Entries 3 and 4 of term 2, from a leader whose term ended before they committed.
  exchange(
    net,
    app({ index: 1, logTerm: 1, entries: [ent(2, 2), ent(3, 2), ent(4, 2)], commit: 2 }),
  );
  t.equal(net.commit('n2'), 2);
  // The term-3 leader committed its own entries 3 and 4; its probe at 2 matches.
  const out = exchange(
    net,
    msg({ type: 'app', from: 'n3', to: 'n2', term: 3, index: 2, logTerm: 2, commit: 4 }),
  );
  t.match(out, [{ type: 'appResp', reject: false, index: 2 }]);
  t.equal(net.commit('n2'), 2, 'not 4: our entries 3 and 4 are not known to be the leader ones');
  t.same(
    net.get('n2').applied.map((e) => `${e.index}:${e.term}`),
    ['2:2'],
    'the stale entries are not applied',
  );
  t.end();
});

t.test(
  'fast backtracking repairs a long divergent tail in far fewer round trips than entries',
  (t) => {
    const net = new Network(3);
    net.elect('n1');
    // n1 leads term 2 alone and appends 50 entries nobody else gets.
    net.isolate('n1');
    for (let i = 0; i < 50; i++) net.propose('n1', `stale${i}`);
    net.deliverAll();
    // n2 and n3 elect a leader of term 3, commit 50 entries, then hand over to a
    // leader of term 4, whose first probe to n1 starts at its own lastIndex.
    net.tickUntil(['n2', 'n3'], () => ['n2', 'n3'].includes(net.leader() ?? ''));
    const first = net.leader()!;
    for (let i = 0; i < 50; i++) net.propose(first, `v${i}`);
    net.stabilize();
    const second = first === 'n2' ? 'n3' : 'n2';
    net.node(first).transferLeadership(second);
    net.stabilize();
    t.equal(net.leader(), second);
    t.equal(net.lastIndex('n1'), 52, 'n1: 50 divergent entries of term 2 after index 2');
    t.equal(net.lastIndex(second), 54);

    net.recover();
    const mark = net.mark();
    net.tickUntil([second], () => net.storedLog('n1').join() === net.storedLog(second).join());
    const apps = net.since(mark, (m) => m.type === 'app' && m.to === 'n1');
    const rejects = net.since(mark, (m) => m.type === 'appResp' && m.from === 'n1' && m.reject);
    t.ok(rejects.length <= 2, `${rejects.length} rejections`);
    t.ok(apps.length <= 4, `${apps.length} appends to repair a 50-entry divergence`);
    t.same(net.get('n1').state, net.get(second).state, 'n1 applied what the leader applied');
    t.notOk(
      net.get('n1').state.some((s) => s.startsWith('stale')),
      'none of the divergent entries was applied',
    );
    t.end();
  },
);

t.test('heartbeats carry commit = min(match, commit) for each follower', (t) => {
  const net = new Network(3);
  net.elect('n1');
  net.drop((m) => m.type === 'app' && m.to === 'n3');
  for (const v of ['a', 'b', 'c']) net.propose('n1', v);
  net.stabilize();
  t.equal(net.commit('n1'), 5);
  net.tick('n1');
  const beats = net.queue.filter((m) => m.type === 'heartbeat');
  t.match(
    beats,
    [
      { to: 'n2', commit: 5 },
      { to: 'n3', commit: 2 },
    ],
    'n3, which holds only up to 2, is not told to commit past it',
  );
  t.end();
});

t.test(
  'at most maxInflightMsgs appends are unacknowledged to a follower that does not answer',
  (t) => {
    const net = new Network(3, { maxInflightMsgs: 2 });
    net.elect('n1');
    net.propose('n1', 'warmup');
    net.stabilize();
    t.equal(net.node('n1').status().progress?.n3?.state, 'replicate');

    // Slow: n3 messages stay queued (nothing is lost).
    const slow = (m: Message) => m.to !== 'n3' && m.from !== 'n3';
    for (let i = 0; i < 10; i++) {
      net.propose('n1', `s${i}`);
      net.deliverWhere(slow);
    }
    const queued = net.queue.filter(
      (m) => m.type === 'app' && m.to === 'n3' && m.entries.length > 0,
    );
    t.equal(queued.length, 2, 'two appends with entries are in flight, not ten');
    t.equal(net.commit('n1'), 13, 'n1 and n2 commit meanwhile');
    net.deliverAll();
    net.tickAll(2);
    t.same(net.get('n3').state, net.get('n1').state, 'n3 catches up once it answers');

    // Silent: everything to and from n3 is lost.
    net.isolate('n3');
    const mark = net.mark();
    for (let i = 0; i < 10; i++) {
      net.propose('n1', `q${i}`);
      net.deliverAll();
    }
    net.tickAll(3);
    const sent = net.since(mark, (m) => m.type === 'app' && m.to === 'n3' && m.entries.length > 0);
    t.equal(sent.length, 2, 'only two appends with entries were sent into the void');
    net.recover();
    net.tickAll(3);
    t.same(net.get('n3').state, net.get('n1').state, 'n3 catches up after the partition');
    t.end();
  },
);

t.test('maxSizePerMsgBytes bounds the entries in one append', (t) => {
  const limit = 300; // an entry of 100 bytes counts 124: two fit, three do not
  const net = new Network(3, { maxSizePerMsgBytes: limit });
  net.elect('n1');
  net.crash('n3');
  for (let i = 0; i < 10; i++) net.propose('n1', String(i).padStart(100, '.'));
  net.stabilize();
  net.restart('n3');
  const mark = net.mark();
  net.tickUntil(net.ids(), () => net.get('n3').state.length === 10);
  const apps = net.since(mark, (m) => m.type === 'app' && m.to === 'n3' && m.entries.length > 0);
  t.ok(apps.length >= 5, `${apps.length} appends`);
  for (const m of apps) {
    if (m.entries.length > 1 && entriesSizeBytes(m.entries) > limit) {
      t.fail(`an append of ${m.entries.length} entries, ${entriesSizeBytes(m.entries)} bytes`);
    }
  }
  t.equal(Math.max(...apps.map((m) => m.entries.length)), 2, 'appends are filled up to the bound');

  // A single entry larger than the bound still goes out, alone.
  net.propose('n1', 'x'.repeat(2 * limit));
  net.propose('n1', 'y');
  net.crash('n2');
  const mark2 = net.mark();
  net.stabilize();
  net.restart('n2');
  net.tickUntil(net.ids(), () => net.get('n2').state.length === 12);
  const big = net.since(
    mark2,
    (m) => m.type === 'app' && m.entries.some((e) => e.data.byteLength > limit),
  );
  t.ok(
    big.length > 0 && big.every((m) => m.entries.length === 1),
    'an oversized entry travels alone',
  );
  t.end();
});

t.test('a proposal on a follower returns not_leader with the leader id', (t) => {
  const net = new Network(3);
  t.match(
    net.node('n2').propose(enc('x')),
    { ok: false, code: 'not_leader', leader: '' },
    'no leader known yet',
  );
  net.elect('n1');
  const before = net.lastIndex('n2');
  t.same(net.node('n2').propose(enc('x')), { ok: false, code: 'not_leader', leader: 'n1' });
  t.same(net.node('n2').proposeBatch([enc('x'), enc('y')]), {
    ok: false,
    code: 'not_leader',
    leader: 'n1',
  });
  t.same(net.node('n2').proposeConfChange({ type: 'removeNode', nodeId: 'n3' }), {
    ok: false,
    code: 'not_leader',
    leader: 'n1',
  });
  net.process('n2');
  t.equal(net.lastIndex('n2'), before, 'nothing was appended');
  t.equal(net.queue.length, 0, 'nothing was sent');
  t.end();
});

t.test('a batch proposal appends consecutive entries of the leader term', (t) => {
  const net = new Network(3);
  net.elect('n1');
  const res = net.node('n1').proposeBatch([enc('a'), enc('b'), enc('c')]);
  t.same(res, { ok: true, index: 5, term: 2 }, 'the index of the last entry of the batch');
  net.stabilize();
  for (const id of net.ids())
    t.same(net.get(id).state, ['a', 'b', 'c'], `${id} applied the batch in order`);
  t.end();
});

t.test('a crashed follower catches up after restart and the cluster keeps one history', (t) => {
  const net = new Network(5, { seed: 7 });
  net.elect('n1');
  for (let round = 0; round < 5; round++) {
    const down = `n${2 + (round % 4)}`;
    net.crash(down);
    for (let i = 0; i < 3; i++) net.propose(net.leader()!, `r${round}.${i}`);
    net.stabilize();
    net.restart(down);
    net.tickAll(E);
  }
  const expected = net.get('n1').state;
  t.equal(expected.length, 15);
  for (const id of net.ids())
    t.same(net.get(id).state, expected, `${id} applied the same sequence`);
  t.end();
});
