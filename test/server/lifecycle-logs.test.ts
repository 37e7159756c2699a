/**
 * The log lines that explain what happened to a cluster (event-log.ts), read
 * from in-process 3-member clusters through raftkv's own logger with a
 * capturing destination: leaders lost and elected (why, names, term, time
 * without a leader), members added, promoted and removed, snapshots taken,
 * sent and installed, MVCC compaction, slow disk syncs, and peers becoming
 * unreachable and reachable again once per transition.
 */
import t from 'tap';
import { put, request, startCluster } from '../integration/helpers.js';
import { LogCapture, type LogLine } from '../support/log-capture.js';

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

t.test(
  'a cut-off leader: followers log "leader lost" and "leader elected" with names, term and time without a leader; the old leader says it stepped down; a transfer says so',
  async (t) => {
    const logs = new LogCapture();
    const c = await startCluster(3, {}, (name) => ({ logger: logs.logger(name) }));
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    const old = c.names[leader]!;
    const oldId = c.nodes[leader]!.node.id;
    const firstTerm = c.nodes[leader]!.node.statusSync().term;
    for (const name of c.names) {
      const elected = await logs.waitFor('leader_elected', name, (l) => l.leaderId === oldId);
      t.equal(elected.leader, old, `${name} names the first leader`);
      t.equal(elected.term, firstTerm);
      t.type(elected.leaderlessMs, 'number');
    }

    // Cut the leader off both ways: the others hear nothing, it hears from no majority.
    for (const f of c.filters) f.isolate(oldId);
    const followers = c.names.filter((n) => n !== old);
    const reasons: unknown[] = [];
    for (const name of followers) {
      const lost = await logs.waitFor('leader_lost', name, (l) => l.leaderId === oldId);
      t.equal(lost.level, 'warn');
      t.equal(lost.leader, old, `${name} names the lost leader`);
      t.equal(lost.term, firstTerm);
      t.match(lost.msg, new RegExp(`^leader lost: ${old} no longer leads term ${firstTerm}: `));
      reasons.push(lost.reason);
      const elected = await logs.waitFor(
        'leader_elected',
        name,
        (l) => (l.term as number) > firstTerm,
      );
      t.ok(followers.includes(elected.leader as string), `${name}: ${elected.msg}`);
      t.ok((elected.leaderlessMs as number) >= 0, 'with the time it had no leader');
    }
    // The first to campaign timed out; the other timed out too, or learned of the election.
    t.ok(reasons.includes('timeout'), `reasons ${reasons.join(', ')}`);
    for (const r of reasons) t.ok(['timeout', 'higher_term', 'new_leader'].includes(r as string));
    const stepped = await logs.waitFor('leader_lost', old, (l) => l.self === true);
    t.equal(stepped.reason, 'check_quorum', stepped.msg);
    t.match(stepped.msg, /stepped down/);

    for (const f of c.filters) f.heal();
    const newLeader = await c.waitForLeader();
    const newId = c.nodes[newLeader]!.node.id;
    await logs.waitFor('leader_elected', old, (l) => l.leaderId === newId);

    // A transfer, asked for over HTTP: the leader and the followers give it as the reason.
    const target = (newLeader + 1) % 3;
    const targetId = c.nodes[target]!.node.id;
    // Bounded by an election timeout (400 ms here): on a loaded machine it may take a retry.
    let moved = await request(c.url(newLeader), 'POST', '/v1/cluster/leader', { to: targetId });
    for (let i = 0; i < 5 && moved.status === 503; i++)
      moved = await request(c.url(newLeader), 'POST', '/v1/cluster/leader', { to: targetId });
    t.equal(moved.status, 200, JSON.stringify(moved.body));
    for (const name of c.names) {
      const lost = await logs.waitFor('leader_lost', name, (l) => l.leaderId === newId);
      t.equal(lost.reason, 'transfer', `${name}: ${lost.msg}`);
      await logs.waitFor('leader_elected', name, (l) => l.leaderId === targetId);
    }

    // Every line: the level by name, an ISO time, the member's name.
    t.ok(logs.lines.length > 10);
    for (const line of logs.lines) {
      if (
        typeof line.level !== 'string' ||
        !ISO_TIME.test(line.time) ||
        !c.names.includes(line.member)
      )
        t.fail(`line without a string level, ISO time or member name: ${JSON.stringify(line)}`);
    }
  },
);

t.test('stopping the leader: the others log "leader lost" and who was elected', async (t) => {
  const logs = new LogCapture();
  const c = await startCluster(3, {}, (name) => ({ logger: logs.logger(name) }));
  t.teardown(() => c.close());
  const leader = await c.waitForLeader();
  const oldId = c.nodes[leader]!.node.id;
  const term = c.nodes[leader]!.node.statusSync().term;
  await c.stopNode(leader);
  for (const name of c.names.filter((n) => n !== c.names[leader])) {
    const lost = await logs.waitFor('leader_lost', name, (l) => l.leaderId === oldId);
    t.equal(lost.leader, c.names[leader]);
    t.equal(lost.term, term);
    t.ok(['timeout', 'higher_term', 'new_leader', 'transfer'].includes(lost.reason as string));
    const elected = await logs.waitFor('leader_elected', name, (l) => (l.term as number) > term);
    t.not(elected.leader, c.names[leader]);
    t.type(elected.leaderlessMs, 'number');
  }
});

t.test(
  'a member added, promoted and removed is logged on the leader and the followers',
  async (t) => {
    const logs = new LogCapture();
    const c = await startCluster(3, {}, (name) => ({ logger: logs.logger(name) }));
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    const follower = (leader + 1) % 3;
    // n4 never starts: membership changes do not need it to (3 of 4 voters are a quorum).
    const added = await request(c.url(follower), 'POST', '/v1/cluster/members', {
      name: 'n4',
      peerUrl: 'http://127.0.0.1:9',
      clientUrl: 'http://127.0.0.1:10',
      learner: true,
    });
    t.equal(added.status, 201, JSON.stringify(added.body));
    const id = added.body.id as string;
    const promoted = await request(c.url(leader), 'POST', `/v1/cluster/members/${id}/promote`);
    t.equal(promoted.status, 200, JSON.stringify(promoted.body));
    const removed = await request(c.url(follower), 'DELETE', `/v1/cluster/members/${id}`);
    t.equal(removed.status, 200, JSON.stringify(removed.body));

    for (const i of [leader, follower]) {
      const name = c.names[i]!;
      const isN4 = (l: LogLine) => l.id === id;
      const add = await logs.waitFor('member_added', name, isN4);
      t.equal(add.name, 'n4', `${name}: ${add.msg}`);
      t.equal(add.role, 'learner');
      t.equal(add.peerUrl, 'http://127.0.0.1:9');
      t.type(add.entryIndex, 'number');
      const promote = await logs.waitFor('member_promoted', name, isN4);
      t.equal(promote.name, 'n4', promote.msg);
      t.ok((promote.entryIndex as number) > (add.entryIndex as number));
      const remove = await logs.waitFor('member_removed', name, isN4);
      t.equal(remove.name, 'n4', remove.msg);
      t.equal(remove.level, 'warn');
      t.match(
        remove.msg,
        new RegExp(`^member removed: n4 \\(id ${id}\\) by entry ${remove.entryIndex}$`),
      );
    }
  },
);

t.test(
  'snapshots taken, sent and installed, and MVCC compaction, are logged with sizes and times',
  async (t) => {
    const logs = new LogCapture();
    const c = await startCluster(
      3,
      { snapshotCount: 20, snapshotCatchUpEntries: 5, autoCompactionRevisions: 10 },
      (name) => ({ logger: logs.logger(name) }),
    );
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    const lagging = (leader + 1) % 3;
    await c.stopNode(lagging);
    for (let i = 0; i < 60; i++) {
      const w = await put(c.url(leader), `key-${i % 10}`, `value-${i}`);
      if (w.status !== 200) t.fail(`write ${i}: ${w.status}`);
    }
    const taken = await logs.waitFor('snapshot_taken', c.names[leader]);
    t.ok((taken.index as number) >= 20, taken.msg);
    t.ok((taken.logEntriesRemoved as number) > 0, 'says how much log went');
    t.type(taken.ms, 'number');
    t.ok((taken.dataDirBytes as number) > 0, 'and the size on disk');

    // The first compaction (to revision 10) finds only each key's first version; later ones
    // drop the versions that rewrites replaced.
    const compacted = await logs.waitFor(
      'mvcc_compacted',
      c.names[leader],
      (l) => (l.versionsRemoved as number) > 0,
    );
    t.ok((compacted.toRevision as number) > (compacted.fromRevision as number), compacted.msg);
    t.type(compacted.keysRemoved, 'number');
    t.type(compacted.entryIndex, 'number');

    await c.restartNode(lagging);
    const installed = await logs.waitFor('snapshot_installed', c.names[lagging]);
    t.ok((installed.sizeBytes as number) > 0, installed.msg);
    t.ok((installed.index as number) >= 20);
    t.type(installed.ms, 'number');
    const sent = await logs.waitFor('snapshot_sent', undefined, (l) => l.to === c.names[lagging]);
    t.equal(installed.from, sent.member, 'the install names the leader that sent it');
    t.equal(sent.index, installed.index, sent.msg);
    t.equal(sent.sizeBytes, installed.sizeBytes, 'the size sent is the size installed');
    t.type(sent.ms, 'number');
  },
);

t.test(
  'a stopped follower is logged unreachable once and reachable once by the leader, not once per failed send',
  async (t) => {
    const logs = new LogCapture();
    const c = await startCluster(3, {}, (name) => ({
      logger: logs.logger(name, 'debug'),
      eventLog: { minLineIntervalMs: 300 },
    }));
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    const down = (leader + 1) % 3;
    const downId = c.nodes[down]!.node.id;
    const downName = c.names[down]!;
    // Followers send nothing to each other: the leader is the one that notices a follower go.
    const observers = [c.names[leader]!];
    await c.stopNode(down);
    for (const name of observers) {
      const line = await logs.waitFor('peer_unreachable', name, (l) => l.peerId === downId);
      t.equal(line.peer, downName, `${name}: ${line.msg}`);
      t.equal(line.level, 'warn');
    }
    // Many sends fail meanwhile (each failed dial is a debug line of the transport).
    const failedDials = () =>
      logs.lines.filter(
        (l) =>
          l.member === c.names[leader] && l.to === downId && l.msg === 'message stream not opened',
      ).length;
    for (let i = 0; i < 200 && failedDials() < 3; i++) await new Promise((r) => setTimeout(r, 25));
    t.ok(failedDials() >= 3, `${failedDials()} failed dials to the stopped peer`);

    await c.restartNode(down);
    for (const name of observers) {
      const line = await logs.waitFor('peer_reachable', name, (l) => l.peerId === downId);
      t.equal(line.peer, downName, `${name}: ${line.msg}`);
      t.ok((line.unreachableMs as number) > 0, 'with how long it was unreachable');
    }
    // Past the interval: nothing held back is let out late.
    await new Promise((r) => setTimeout(r, 450));
    for (const name of observers) {
      t.equal(logs.events('peer_unreachable', name, (l) => l.peerId === downId).length, 1);
      t.equal(logs.events('peer_reachable', name, (l) => l.peerId === downId).length, 1);
      t.equal(
        logs.events('peer_unreachable', name, (l) => l.peerId !== downId).length,
        0,
        'the members that stayed up were never unreachable',
      );
    }
  },
);

t.test('slow disk syncs and slow applies are logged, one line per interval', async (t) => {
  const logs = new LogCapture();
  // A threshold of 0 makes every synced write and every applied batch "slow".
  const c = await startCluster(1, {}, (name) => ({
    logger: logs.logger(name),
    eventLog: { slowDiskSyncMs: 0, slowApplyMs: 0, minLineIntervalMs: 600_000 },
  }));
  t.teardown(() => c.close());
  await c.waitForLeader();
  for (let i = 0; i < 5; i++) t.equal((await put(c.url(0), `k${i}`, 'v')).status, 200);
  const sync = await logs.waitFor('slow_disk_sync', 'n1');
  t.equal(sync.level, 'warn');
  t.type(sync.ms, 'number');
  t.ok((sync.entries as number) >= 1, sync.msg);
  t.ok((sync.entryBytes as number) > 0);
  t.equal(sync.thresholdMs, 0);
  const apply = await logs.waitFor('slow_apply', 'n1');
  t.ok((apply.entries as number) >= 1, apply.msg);
  t.equal(logs.events('slow_disk_sync').length, 1, 'the other slow syncs wait for the interval');
});
