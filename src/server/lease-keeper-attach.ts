import type { Logger } from 'pino';
import type { Command } from '../kv/commands.js';
import type { CommandResult } from '../kv/results.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { NodeCore } from './node-core.js';

/**
 * Plugs the lease keeper into a core: ticks, leadership and applied lease
 * commands drive it; it confirms leadership with a ReadIndex round and
 * proposes revokes and checkpoints through `propose` (production passes its
 * write path, the simulator the core's own propose).
 */
export function attachLeaseKeeper(
  core: NodeCore,
  options: {
    propose: (cmd: Command) => Promise<CommandResult>;
    log: Logger;
    checkpointIntervalMs: number;
    /** Resolves once a quorum confirmed this member leads; by default a ReadIndex round bounded by `confirmTimeoutMs`. */
    confirmLeadership?: () => Promise<void>;
    confirmTimeoutMs?: number;
  },
): LeaseKeeper {
  const keeper = new LeaseKeeper(
    {
      now: () => core.clock.now(),
      leases: () => core.kv.leases(),
      lease: (id) => core.kv.lease(id),
      confirmLeadership:
        options.confirmLeadership ??
        (() => boundedReadIndex(core, options.confirmTimeoutMs ?? options.checkpointIntervalMs)),
      isLeader: () => core.isLeader,
      propose: options.propose,
      log: options.log,
    },
    options.checkpointIntervalMs,
  );
  core.on('tick', () => keeper.tick());
  core.on('softState', (_lead, role) => {
    if (role === 'leader') keeper.becomeLeader();
    else if (keeper.isLeading()) keeper.loseLeadership();
  });
  core.on('result', (result) => keeper.onApplied(result));
  return keeper;
}

/** A ReadIndex round that gives up after `ms` (a deposed leader may never hear back). */
function boundedReadIndex(core: NodeCore, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const cancel = core.clock.after(ms, () =>
      reject(new Error(`leadership not confirmed within ${ms} ms`)),
    );
    core.readIndex().then(
      () => {
        cancel();
        resolve();
      },
      (err: unknown) => {
        cancel();
        reject(err);
      },
    );
  });
}
