/**
 * The node core's promises about its disk, pinned with a storage whose writes
 * the test holds, fails or lets through: a write is acknowledged only after
 * the log entry holding it was synced; a failed write stops the core
 * (fail-stop) without acknowledging anything that depended on it.
 */
import pino from 'pino';
import t from 'tap';
import { encodeCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { MemoryRaftStorage, type Message } from '../../src/raft/index.js';
import { MemberTable } from '../../src/server/members.js';
import { NodeCore } from '../../src/server/node-core.js';
import type { CoreClock, CoreStorage } from '../../src/server/ports.js';
import type { PersistableReady } from '../../src/storage/index.js';

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

/** Time the test moves by hand: ticks on demand, `soon` on the real event loop. */
function manualClock() {
  const ticks: (() => void)[] = [];
  const clock: CoreClock = {
    now: () => 0,
    wallNow: () => 1_700_000_000_000,
    every: (_ms, fn) => {
      ticks.push(fn);
      return () => ticks.splice(ticks.indexOf(fn), 1);
    },
    after: () => () => {},
    soon: (fn) => setImmediate(fn),
  };
  return {
    clock,
    tick: () => {
      for (const fn of ticks) fn();
    },
  };
}

const turn = () => new Promise((r) => setImmediate(r));

/** The value of `key` in the core's state machine, or null. */
function storedValue(core: NodeCore, key: string): string | null {
  const r = core.kv.get(key);
  return r.ok ? (r.kv?.value ?? null) : null;
}

async function oneMemberCore() {
  const { storage, held } = heldStorage();
  const { clock, tick } = manualClock();
  const sent: Message[] = [];
  const core = new NodeCore({
    id: 'n1',
    storage,
    transport: { sendNow: (ms) => sent.push(...ms), addPeer: () => {}, removePeer: () => {} },
    clock,
    randomSeed: 7,
    kv: KvStateMachine.load([], 1),
    kvOptions: {},
    members: new MemberTable(),
    log: pino({ level: 'silent' }),
    config: {
      tickMs: 10,
      electionTicks: 10,
      heartbeatTicks: 1,
      maxPendingProposals: 100,
      maxPendingProposalBytes: 1 << 20,
    },
  });
  const fatal: unknown[] = [];
  core.on('fatal', (err) => fatal.push(err));
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

const put = (key: string, value: string) =>
  encodeCommand({ v: 1, atMs: 1_700_000_000_000, cmd: { type: 'put', key, value } });

t.test('a write is acknowledged only after its log entry was synced', async (t) => {
  const { core, held } = await oneMemberCore();
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
    const { core, held, fatal } = await oneMemberCore();
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
