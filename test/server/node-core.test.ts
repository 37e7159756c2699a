/**
 * The node core's promises about its disk, pinned with a storage whose writes
 * the test holds, fails or lets through: a write is acknowledged only after
 * the log entry holding it was synced; a failed write stops the core
 * (fail-stop) without acknowledging anything that depended on it.
 */
import t from 'tap';
import { MemoryRaftStorage } from '../../src/raft/index.js';
import type { NodeCore } from '../../src/server/node-core.js';
import type { CoreStorage } from '../../src/server/ports.js';
import type { PersistableReady } from '../../src/storage/index.js';
import { manualClock, oneMemberCore, putCommand } from '../support/one-member-core.js';

/** A held disk write: the test decides when (and whether) it completes. */
interface HeldWrite {
  rd: PersistableReady;
  sync: boolean;
  finish(): void;
  fail(err: Error): void;
}

/** MemoryRaftStorage behind the core's storage port, with every write held until released. */
function heldStorage() {
  const memory = MemoryRaftStorage.bootstrap(['n1']);
  const held: HeldWrite[] = [];
  let applied = 1;
  const storage: CoreStorage = {
    initialState: () => memory.initialState(),
    entries: (lo, hi, max) => memory.entries(lo, hi, max),
    term: (i) => memory.term(i),
    firstIndex: () => memory.firstIndex(),
    lastIndex: () => memory.lastIndex(),
    snapshot: () => memory.snapshot(),
    appliedIndex: () => applied,
    persistReady: (rd, sync, extra) =>
      new Promise<void>((resolve, reject) => {
        held.push({
          rd,
          sync,
          finish() {
            if (rd.entries.length > 0) memory.append(rd.entries);
            if (rd.hardState) memory.setHardState(rd.hardState);
            if (extra?.applied) applied = extra.applied.appliedIndex;
            resolve();
          },
          fail: reject,
        });
      }),
    compact: async () => undefined,
    members: () => [],
    removedMembers: () => [],
    saveMembers: async () => {},
    sizeBytes: async () => 0,
    close: async () => {},
  };
  return { storage, held };
}

const turn = () => new Promise((r) => setImmediate(r));

/** The value of `key` in the core's state machine, or null. */
function storedValue(core: NodeCore, key: string): string | null {
  const r = core.kv.get(key);
  return r.ok ? (r.kv?.value ?? null) : null;
}

async function startedCore() {
  const { storage, held } = heldStorage();
  const { clock, tick } = manualClock();
  const { core, fatal } = oneMemberCore(storage, clock);
  core.start();
  // Elect itself: ticks until it campaigns, then let each held write through.
  for (let i = 0; i < 40 && !core.isLeader; i++) {
    tick();
    await turn();
    while (held.length > 0) held.shift()!.finish();
    await turn();
  }
  return { core, held, fatal };
}

const put = putCommand;

t.test('a write is acknowledged only after its log entry was synced', async (t) => {
  const { core, held } = await startedCore();
  t.ok(core.isLeader, 'the single member leads');
  while (held.length > 0) held.shift()!.finish();
  let acked = false;
  const write = core.propose(put('k', 'v')).then((r) => {
    acked = true;
    return r;
  });
  for (let i = 0; i < 5; i++) await turn();
  const append = held.find((w) => w.rd.entries.some((e) => e.data.byteLength > 0));
  t.ok(append, 'the entry went to the disk');
  t.equal(append?.sync, true, 'as a synced write');
  t.notOk(acked, 'not acknowledged while the write is in flight');
  t.equal(storedValue(core, 'k'), null, 'nor applied');
  while (held.length > 0) held.shift()!.finish();
  const result = await write;
  t.ok(result.ok, 'acknowledged once synced');
  t.equal(storedValue(core, 'k'), 'v');
  await core.stop();
});

t.test(
  'a failed disk write stops the core without acknowledging what depended on it',
  async (t) => {
    const { core, held, fatal } = await startedCore();
    while (held.length > 0) held.shift()!.finish();
    const write = core.propose(put('k', 'v'));
    for (let i = 0; i < 5; i++) await turn();
    const append = held.find((w) => w.rd.entries.some((e) => e.data.byteLength > 0));
    t.ok(append, 'the entry went to the disk');
    append!.fail(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }));
    await t.rejects(
      write,
      { code: 'timeout' },
      'the write is answered "outcome unknown", never 200',
    );
    t.ok(core.failed, 'the core stopped (fail-stop)');
    t.equal(fatal.length, 1, 'and said why');
    t.match(core.failureReason, /ENOSPC/, 'the failure is kept for /livez');
    t.equal(storedValue(core, 'k'), null, 'nothing was applied');
    await t.rejects(core.readIndex(), { code: 'unavailable' }, 'reads are refused from then on');
    await core.stop();
  },
);

t.test(
  'a membership change is applied only once the commit index covering it is synced',
  async (t) => {
    const { core, held } = await startedCore();
    while (held.length > 0) held.shift()!.finish();
    // What a power loss would keep: every write up to the last synced one.
    const finished: HeldWrite[] = [];
    const durableCommit = () => {
      let commit = 0;
      let durable = 0;
      for (const w of finished) {
        commit = Math.max(commit, w.rd.hardState?.commit ?? 0);
        if (w.sync) durable = commit;
      }
      return durable;
    };
    let appliedAt: { index: number; durableCommit: number } | undefined;
    core.on('confChangeApplied', (e) => {
      appliedAt = { index: e.index, durableCommit: durableCommit() };
    });
    const member = { id: 'n2', name: 'n2', peerUrls: ['http://127.0.0.1:1'], clientUrls: [] };
    const change = core.proposeConfChange({
      type: 'addLearner',
      nodeId: 'n2',
      context: JSON.stringify(member),
    });
    for (let i = 0; i < 50 && !appliedAt; i++) {
      await turn();
      const w = held.shift();
      if (!w) continue;
      finished.push(w);
      w.finish();
    }
    await change;
    t.ok(appliedAt, 'the change was applied');
    t.ok(
      appliedAt!.durableCommit >= appliedAt!.index,
      `commit ${appliedAt!.durableCommit} on disk when entry ${appliedAt!.index} was applied`,
    );
    await core.stop();
  },
);

t.test(
  'the wait for membership changes to settle ends once the pending one is applied, and not before',
  async (t) => {
    const { core, held } = await startedCore();
    while (held.length > 0) held.shift()!.finish();
    const learner = (id: string) => ({
      type: 'addLearner' as const,
      nodeId: id,
      context: JSON.stringify({ id, name: id, peerUrls: ['http://127.0.0.1:1'], clientUrls: [] }),
    });
    const first = core.proposeConfChange(learner('n2'));
    await t.rejects(
      core.proposeConfChange(learner('n3')),
      { code: 'unavailable', message: /already in progress/ },
      'Raft refuses a second change while the first is pending',
    );
    let settled = false;
    // Proposed the moment the wait ends: Raft must then count the first change as applied.
    const second = core.confChangesSettled().then(() => {
      settled = true;
      return core.proposeConfChange(learner('n3'));
    });
    for (let i = 0; i < 5; i++) await turn();
    t.notOk(settled, 'not settled while the first change is on its way to the disk');
    for (let i = 0; i < 50 && !settled; i++) {
      await turn();
      while (held.length > 0) held.shift()!.finish();
    }
    await first;
    t.ok(settled, 'settled once the first change was applied');
    for (let i = 0; i < 50 && core.confState.learners.length < 2; i++) {
      await turn();
      while (held.length > 0) held.shift()!.finish();
    }
    await t.resolves(second, 'a change proposed as the wait ends is accepted');
    t.same(core.confState.learners, ['n2', 'n3'], 'and applied');
    await core.stop();
  },
);
