import type { Logger } from 'pino';
import type { Command } from '../kv/commands.js';
import type { LeaseState } from '../kv/leases.js';
import type { CommandResult } from '../kv/results.js';

export interface LeaseKeeperDeps {
  /** A monotonic clock in ms (never wall time: it may jump). */
  now(): number;
  leases(): LeaseState[];
  /** The applied state of one lease (to learn the renewal a deadline comes from). */
  lease(id: string): LeaseState | undefined;
  /** Resolves once a quorum confirmed this node still leads (a ReadIndex round). */
  confirmLeadership(): Promise<void>;
  isLeader(): boolean;
  propose(cmd: Command): Promise<CommandResult>;
  log: Logger;
}

/**
 * The clock-rate bound leases are kept under: every member's monotonic clock
 * runs at a rate within ±1 % of true time (quartz is specified at ±0.01 %;
 * the simulator draws rates across this whole range). A lease's TTL is
 * promised on any honest clock: from the acknowledged keepalive, a client
 * whose clock runs slow by the bound still measures at least the TTL before
 * the revoke. So the leader, whose own clock may run fast by the bound, waits
 * TTL × (1 + b) / (1 − b) on its clock (about 2 % more) before revoking.
 */
export const CLOCK_RATE_BOUND = 0.01;

export interface LeaseKeeperOptions {
  /** Defaults to CLOCK_RATE_BOUND; 0 for tests that model perfect clocks. */
  clockRateBound?: number;
}

/** Most leases per revoke or checkpoint round, so one round stays a small proposal. */
const MAX_LEASES_PER_ROUND = 1000;

/**
 * Lease expiry, decided by the leader alone (as etcd's lessor): it holds a
 * deadline per lease on its monotonic clock and proposes a revoke through Raft
 * when one passes. Rules that keep a lease from ending early or living forever:
 * 1. A new leader restarts every deadline at its election: the TTL left at the
 *    last checkpoint, or the full TTL.
 * 2. Before revoking, the leader confirms with a quorum that it still leads;
 *    a leader that was paused or cut off learns it was deposed instead.
 * 3. The leader checkpoints every lease's remaining TTL through the log every
 *    `checkpointIntervalMs`, so each leader change extends a lease by at most
 *    about that interval plus the election time.
 * 4. Deadlines are stretched for clock-rate differences (CLOCK_RATE_BOUND):
 *    `stretch` local ms per TTL ms. What is reported or checkpointed is in
 *    TTL ms (divided back), so every leader applies the stretch once.
 */
export class LeaseKeeper {
  private deadlines = new Map<string, number>();
  /** For each lease: the renewal (its renewedAtIndex) its deadline was computed from. */
  private renewals = new Map<string, number>();
  private leading = false;
  private revoking = false;
  private checkpointing = false;
  private lastCheckpointAt = 0;
  /** Local ms the leader waits per ms of TTL. */
  private readonly stretch: number;

  constructor(
    private readonly deps: LeaseKeeperDeps,
    private readonly checkpointIntervalMs: number,
    options: LeaseKeeperOptions = {},
  ) {
    const bound = options.clockRateBound ?? CLOCK_RATE_BOUND;
    if (!(bound >= 0 && bound < 0.5))
      throw new RangeError(`clock rate bound ${bound} out of range`);
    this.stretch = (1 + bound) / (1 - bound);
  }

  /** Rule 1: deadlines restart at the election. */
  becomeLeader(): void {
    const now = this.deps.now();
    this.leading = true;
    this.lastCheckpointAt = now;
    this.deadlines = new Map();
    this.renewals = new Map();
    for (const lease of this.deps.leases()) {
      this.deadlines.set(lease.id, now + (lease.remainingMs ?? lease.ttlMs) * this.stretch);
      this.renewals.set(lease.id, lease.renewedAtIndex);
    }
  }

  loseLeadership(): void {
    this.leading = false;
    this.deadlines.clear();
    this.renewals.clear();
  }

  /** Every applied lease command moves a deadline (on every node; only the leader's are used). */
  onApplied(result: CommandResult): void {
    if (!result.ok || !this.leading) return;
    const now = this.deps.now();
    if (result.op === 'leaseGrant' || result.op === 'leaseKeepAlive') {
      this.deadlines.set(result.id, now + result.ttlMs * this.stretch);
      const renewedAtIndex = this.deps.lease(result.id)?.renewedAtIndex;
      if (renewedAtIndex !== undefined) this.renewals.set(result.id, renewedAtIndex);
    } else if (result.op === 'leaseRevoke') {
      this.deadlines.delete(result.id);
      this.renewals.delete(result.id);
    }
  }

  /** The TTL left (in TTL ms), for lookups; undefined if not leading or unknown. */
  remainingMs(id: string): number | undefined {
    if (!this.leading) return undefined;
    const deadline = this.deadlines.get(id);
    return deadline === undefined ? undefined : this.ttlLeft(deadline, this.deps.now());
  }

  /** Local ms to a deadline, back in TTL ms (rounded to µs, so 100 stays 100). */
  private ttlLeft(deadline: number, now: number): number {
    return Math.max(0, Math.round(((deadline - now) / this.stretch) * 1000) / 1000);
  }

  isLeading(): boolean {
    return this.leading;
  }

  /** Called every tick. */
  tick(): void {
    if (!this.leading) return;
    const now = this.deps.now();
    if (!this.revoking) {
      const expired = [...this.deadlines].filter(([, d]) => d <= now).map(([id]) => id);
      if (expired.length > 0) void this.revoke(expired.slice(0, MAX_LEASES_PER_ROUND));
    }
    if (!this.checkpointing && now - this.lastCheckpointAt >= this.checkpointIntervalMs) {
      this.lastCheckpointAt = now;
      void this.checkpoint();
    }
  }

  private async revoke(ids: string[]): Promise<void> {
    this.revoking = true;
    try {
      // Rule 2: a deposed leader must not revoke what the new leader kept alive.
      await this.deps.confirmLeadership();
      if (!this.deps.isLeader() || !this.leading) return;
      const now = this.deps.now();
      for (const id of ids) {
        const deadline = this.deadlines.get(id);
        if (deadline === undefined || deadline > now) continue; // renewed meanwhile
        const renewedAtIndex = this.renewals.get(id);
        try {
          // Conditional: a keepalive committed before this entry (even if not yet applied here) wins.
          await this.deps.propose({
            type: 'leaseRevoke',
            id,
            ...(renewedAtIndex !== undefined ? { ifRenewedAtIndex: renewedAtIndex } : {}),
          });
        } catch (err) {
          this.deps.log.warn({ err, lease: id }, 'revoking an expired lease failed; will retry');
          return;
        }
      }
    } catch (err) {
      this.deps.log.debug({ err }, 'could not confirm leadership before revoking leases');
    } finally {
      this.revoking = false;
    }
  }

  private async checkpoint(): Promise<void> {
    const now = this.deps.now();
    const leases = [...this.deadlines]
      .map(([id, d]) => {
        const renewedAtIndex = this.renewals.get(id);
        return {
          id,
          remainingMs: Math.ceil(this.ttlLeft(d, now)),
          ...(renewedAtIndex !== undefined ? { renewedAtIndex } : {}),
        };
      })
      .slice(0, MAX_LEASES_PER_ROUND * 10);
    if (leases.length === 0) return;
    this.checkpointing = true;
    try {
      for (let i = 0; i < leases.length; i += MAX_LEASES_PER_ROUND) {
        await this.deps.propose({
          type: 'leaseCheckpoint',
          leases: leases.slice(i, i + MAX_LEASES_PER_ROUND),
        });
      }
    } catch (err) {
      this.deps.log.debug({ err }, 'lease checkpoint failed; the next one will catch up');
    } finally {
      this.checkpointing = false;
    }
  }
}
