import t from 'tap';
import { get, put, startCluster } from '../integration/helpers.js';

t.test(
  'a follower that missed more than snapshot-count entries catches up by snapshot and serves the data',
  async (t) => {
    const c = await startCluster(3, { snapshotCount: 40, snapshotCatchUpEntries: 5 });
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    const lagging = (leader + 1) % 3;
    const other = (leader + 2) % 3;
    await c.stopNode(lagging);
    let lastRevision = 0;
    for (let i = 0; i < 150; i++) {
      const w = await put(c.url(other), `key-${i % 30}`, `value-${i}`);
      if (w.status !== 200) t.fail(`write ${i}: ${w.status}`);
      else lastRevision = w.body.revision as number;
    }
    // The revision of the last acknowledged write, not a status read from the member that led
    // at the start: on a loaded machine leadership may have moved, and a follower applies
    // a step behind.
    t.ok(lastRevision >= 150, `the writes reached revision ${lastRevision}`);
    await c.restartNode(lagging);
    // Bounded wait for the restarted node to catch up.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && c.nodes[lagging]!.node.statusSync().revision < lastRevision) {
      await new Promise((r) => setTimeout(r, 25));
    }
    t.equal(
      c.nodes[lagging]!.node.statusSync().revision,
      lastRevision,
      'caught up to the last write',
    );
    t.comment('150 writes while a follower was down; its 30 keys checked after restart');
    for (let k = 0; k < 30; k++) {
      const r = await get(c.url(lagging), `key-${k}`, '?consistency=serializable');
      if (r.body?.kv?.value !== `value-${120 + k}`)
        t.fail(`key-${k} is ${JSON.stringify(r.body)} on the caught-up node`);
    }
    // The log was compacted, so the follower must have been sent a snapshot rather than replaying from index 1.
    const installed =
      (await c.nodes[lagging]!.node.metrics.snapshotsInstalled.get()).values[0]?.value ?? 0;
    t.ok(installed >= 1, `the restarted follower installed ${installed} snapshot(s)`);
  },
);

t.test(
  'the log stays bounded by snapshot-count plus catch-up entries over a long run',
  async (t) => {
    const c = await startCluster(1, { snapshotCount: 50, snapshotCatchUpEntries: 10 });
    t.teardown(() => c.close());
    await c.waitForLeader();
    for (let i = 0; i < 400; i++) {
      const w = await put(c.url(0), `k${i % 7}`, `v${i}`);
      if (w.status !== 200) t.fail(`write ${i}: ${w.status}`);
    }
    const { firstIndex, lastIndex } = c.nodes[0]!.node.logBounds();
    t.ok(lastIndex > 400, `applied ${lastIndex} entries`);
    t.ok(
      lastIndex - firstIndex + 1 <= 50 + 10 + 1,
      `only ${lastIndex - firstIndex + 1} entries kept on disk`,
    );
  },
);
