import { getHeapStatistics } from 'node:v8';
import type { Logger } from 'pino';
import type { Alarm } from '../kv/alarms.js';
import type { AlarmCommand } from '../kv/commands.js';
import type { CommandResult } from '../kv/results.js';
import type { NodeCore } from './node-core.js';

/**
 * The default quota's share of the V8 heap limit (README "Space quota"): the
 * state lives in the heap, and besides it the heap must hold a snapshot being
 * encoded (every record's JSON text at once: measured up to 1.5 × the state
 * live with `npm run bench:quota`, plus its garbage), the proposals
 * and replication queues in flight, and Node's and fastify's own few tens of
 * MB. 0.3 leaves 70 % of the heap for those: heap ≥ 3.3 × quota.
 */
export const DEFAULT_QUOTA_HEAP_FRACTION = 0.3;

/** The alarm clears once the state is back under this share of the quota (hysteresis). */
export const CLEAR_BELOW_FRACTION = 0.9;

/** Ticks to wait after a failed alarm proposal before trying again. */
const RETRY_TICKS = 10;

/** The quota a node runs with when none is configured: a share of the heap it runs with. */
export function defaultQuotaBytes(heapLimitBytes = getHeapStatistics().heap_size_limit): number {
  return Math.floor(heapLimitBytes * DEFAULT_QUOTA_HEAP_FRACTION);
}

export interface QuotaKeeperDeps {
  selfId: string;
  /** The state machine's size estimate (KvStateMachine.sizeBytes). */
  sizeBytes(): number;
  /** The active alarms as applied here. */
  alarms(): readonly Alarm[];
  /** Proposes through Raft (forwarded to the leader by a follower); resolves once applied here. */
  propose(cmd: AlarmCommand): Promise<CommandResult>;
  /** A member name for log lines. */
  nameOf(id: string): string | undefined;
  log: Logger;
}

/**
 * Each member watches its own state size against its quota (etcd's NOSPACE):
 * over it, the member raises its `nospace` alarm through the log, so every
 * replica refuses the commands that grow the state from the same entry on;
 * once the state is back under CLEAR_BELOW_FRACTION of the quota, the member
 * that raised it clears it. An operator's disarm (kvctl alarm disarm) clears
 * it at once; if the state is still over, the member raises it again at the
 * next tick. One proposal at a time; a failed one is retried after RETRY_TICKS.
 */
export class QuotaKeeper {
  private pending = false;
  private waitTicks = 0;

  constructor(
    private readonly deps: QuotaKeeperDeps,
    readonly quotaBytes: number,
  ) {
    if (!Number.isSafeInteger(quotaBytes) || quotaBytes <= 0)
      throw new Error(`the space quota must be a positive number of bytes, got ${quotaBytes}`);
  }

  /** Called on every tick of the node. */
  tick(): void {
    if (this.pending) return;
    if (this.waitTicks > 0) {
      this.waitTicks--;
      return;
    }
    const size = this.deps.sizeBytes();
    const raised = this.deps
      .alarms()
      .some((a) => a.memberId === this.deps.selfId && a.alarm === 'nospace');
    if (!raised && size > this.quotaBytes) this.propose('raise', size);
    else if (raised && size < this.quotaBytes * CLEAR_BELOW_FRACTION) this.propose('clear', size);
  }

  /** Every applied alarm command, on every member: the event log's alarm_raised / alarm_cleared. */
  onApplied(result: CommandResult): void {
    if (!result.ok || result.op !== 'alarm') return;
    for (const alarm of result.changed) {
      const member = this.deps.nameOf(alarm.memberId) ?? alarm.memberId;
      const raised = result.alarms.some(
        (a) => a.memberId === alarm.memberId && a.alarm === alarm.alarm,
      );
      if (raised)
        this.deps.log.warn(
          { event: 'alarm_raised', alarm: alarm.alarm, member, memberId: alarm.memberId },
          `alarm ${alarm.alarm} raised by member ${member}: its state outgrew its space quota; ` +
            'writes that grow the state get 507 quota_exceeded until space is freed ' +
            '(delete keys, compact, revoke leases) and the alarm clears (kvctl alarm list|disarm)',
        );
      else
        this.deps.log.info(
          { event: 'alarm_cleared', alarm: alarm.alarm, member, memberId: alarm.memberId },
          `alarm ${alarm.alarm} of member ${member} cleared: writes are accepted again`,
        );
    }
  }

  private propose(action: 'raise' | 'clear', size: number): void {
    this.pending = true;
    const cmd: AlarmCommand = {
      type: 'alarm',
      action,
      alarm: 'nospace',
      memberId: this.deps.selfId,
    };
    this.deps.log.debug(
      { sizeBytes: size, quotaBytes: this.quotaBytes, action },
      `state ${size} bytes against a quota of ${this.quotaBytes}: proposing to ${action} alarm nospace`,
    );
    this.deps
      .propose(cmd)
      .then((result) => {
        if (!result.ok) throw new Error(`${result.code}: ${result.message}`);
      })
      .catch((err: unknown) => {
        this.waitTicks = RETRY_TICKS;
        this.deps.log.debug({ err, action }, 'proposing the nospace alarm failed; will retry');
      })
      .finally(() => {
        this.pending = false;
      });
  }
}

/**
 * Plugs the quota keeper into a core: every tick checks this member's state
 * against `quotaBytes` (0: defaultQuotaBytes()), every applied alarm command
 * is logged; proposals go through `propose` (production's write path).
 */
export function attachQuotaKeeper(
  core: NodeCore,
  options: {
    quotaBytes: number;
    propose: (cmd: AlarmCommand) => Promise<CommandResult>;
    log: Logger;
  },
): QuotaKeeper {
  const keeper = new QuotaKeeper(
    {
      selfId: core.id,
      sizeBytes: () => core.kv.sizeBytes,
      alarms: () => core.kv.alarms(),
      propose: options.propose,
      nameOf: (id) => core.members.get(id)?.name,
      log: options.log,
    },
    options.quotaBytes > 0 ? options.quotaBytes : defaultQuotaBytes(),
  );
  core.on('tick', () => keeper.tick());
  core.on('result', (result) => keeper.onApplied(result));
  return keeper;
}
