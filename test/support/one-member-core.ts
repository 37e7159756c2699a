import pino from 'pino';
import { encodeCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { MemberTable } from '../../src/server/members.js';
import { NodeCore } from '../../src/server/node-core.js';
import type { CoreClock, CoreStorage } from '../../src/server/ports.js';

/** Time a test moves by hand: ticks on demand, `soon` on the real event loop. */
export function manualClock(): { clock: CoreClock; tick(): void } {
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

/**
 * A single-member NodeCore ('n1') over `storage`, with a silent log and no
 * peers, not yet started; `fatal` collects what stopped it.
 */
export function oneMemberCore(storage: CoreStorage, clock: CoreClock) {
  const core = new NodeCore({
    id: 'n1',
    storage,
    transport: { sendNow: () => {}, addPeer: () => {}, removePeer: () => {} },
    clock,
    randomSeed: 7,
    kv: KvStateMachine.load([], storage.appliedIndex()),
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
  return { core, fatal };
}

/** A put command's bytes, as the server proposes them. */
export function putCommand(key: string, value: string): Uint8Array {
  return encodeCommand({ v: 1, atMs: 1_700_000_000_000, cmd: { type: 'put', key, value } });
}
