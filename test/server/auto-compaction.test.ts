import t from 'tap';
import { get, put, startCluster } from '../integration/helpers.js';

t.test(
  'with --auto-compaction-revisions N the leader keeps between N and 2N revisions of history',
  async (t) => {
    const keep = 20;
    const c = await startCluster(3, { autoCompactionRevisions: keep });
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    let revision = 0;
    for (let i = 0; i < 120; i++) {
      const w = await put(c.url(i % 3), `k${i % 7}`, `v${i}`);
      if (w.status !== 200) t.fail(`write ${i}: ${w.status}`);
      revision = Math.max(revision, w.body.revision as number);
    }
    // The leader checks every tick: wait (bounded) until it caught up with the writes.
    const status = () => c.nodes[leader]!.node.statusSync();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && revision - status().compactRevision >= 2 * keep) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const { compactRevision } = status();
    t.ok(compactRevision > 0, `history was compacted (to ${compactRevision} of ${revision})`);
    t.ok(revision - compactRevision >= keep, 'at least N revisions are kept');
    t.ok(revision - compactRevision < 2 * keep, 'at most 2N revisions are kept');
    const old = await get(c.url(leader), 'k0', `?revision=${compactRevision - 1}`);
    t.equal(old.status, 410, 'a read before the compaction revision is refused');
    const kept = await get(c.url(leader), 'k0', `?revision=${revision - keep + 1}`);
    t.equal(kept.status, 200, 'a read within the kept history works');
  },
);

t.test('--auto-compaction-revisions 0 never compacts', async (t) => {
  const c = await startCluster(1, { autoCompactionRevisions: 0 });
  t.teardown(() => c.close());
  await c.waitForLeader();
  for (let i = 0; i < 60; i++) await put(c.url(0), 'k', `v${i}`);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(c.nodes[0]!.node.statusSync().compactRevision, 0);
});
