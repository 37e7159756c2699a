import { Violation } from '../invariants.js';

/** Why a lease went away: its TTL ran out (the lease keeper), or a client revoked it. */
export type RevokeCause = 'expired' | 'client';

export interface LeaseSafetyOptions {
  /**
   * The slowest honest clock's rate relative to true time (e.g. 0.99 for a
   * ±1 % bound). A lease must outlive its TTL as measured by every honest
   * clock, so the true time elapsed is scaled down by the slowest rate.
   */
  minClockRate: number;
}

export interface LeaseSafetyStats {
  grants: number;
  keepalives: number;
  expiredRevokes: number;
  clientRevokes: number;
  /** Expiry revokes that had an acknowledged grant or keepalive to measure from. */
  checkedRevokes: number;
  /** Smallest (R − A) × minClockRate − TTL over the checked revokes, in ms; Infinity if none. */
  minSlackMs: number;
}

interface LeaseTrack {
  ttlMs: number;
  /** True time of the last acknowledged grant or keepalive. */
  lastAckAt: number;
  /** True time the first expiry revoke was applied, if any. */
  expiredAt?: number;
}

/**
 * The lease promise (DESIGN.md: leases never expire early): a lease whose last
 * keepalive (or grant) was acknowledged at true time A with TTL T may be revoked
 * for expiry at true time R only if (R − A) × minClockRate ≥ T. Times are the
 * simulator's true (global) clock in ms; revokes are fed when first applied
 * anywhere. A client's own revoke is allowed at any time.
 */
export class LeaseSafetyChecker {
  private readonly minClockRate: number;
  private readonly leases = new Map<string, LeaseTrack>();
  readonly stats: LeaseSafetyStats = {
    grants: 0,
    keepalives: 0,
    expiredRevokes: 0,
    clientRevokes: 0,
    checkedRevokes: 0,
    minSlackMs: Number.POSITIVE_INFINITY,
  };

  constructor(options: LeaseSafetyOptions) {
    if (!(options.minClockRate > 0 && options.minClockRate <= 1)) {
      throw new RangeError(`minClockRate must be in (0, 1], got ${options.minClockRate}`);
    }
    this.minClockRate = options.minClockRate;
  }

  /** The client got the answer to its grant of `leaseId` with `ttlMs` at true time `atMs`. */
  granted(leaseId: string | number, ttlMs: number, atMs: number): void {
    this.stats.grants++;
    const id = String(leaseId);
    const track = this.leases.get(id);
    if (track) {
      track.ttlMs = ttlMs;
      this.acked(id, track, atMs);
    } else {
      this.leases.set(id, { ttlMs, lastAckAt: atMs });
    }
  }

  /** The client got a keepalive answer at true time `atMs` (with the TTL it names, if any). */
  keepaliveAcked(leaseId: string | number, atMs: number, ttlMs?: number): void {
    this.stats.keepalives++;
    const id = String(leaseId);
    const track = this.leases.get(id);
    if (!track) {
      // A keepalive answer for a lease whose grant answer was lost: it starts the clock too.
      if (ttlMs === undefined) {
        throw new TypeError(
          `keepaliveAcked: lease ${id} has no known TTL (no grant seen, none given)`,
        );
      }
      this.leases.set(id, { ttlMs, lastAckAt: atMs });
      return;
    }
    if (ttlMs !== undefined) track.ttlMs = ttlMs;
    this.acked(id, track, atMs);
  }

  /** A revoke of `leaseId` was applied at true time `atMs`. */
  revoked(leaseId: string | number, atMs: number, cause: RevokeCause): void {
    const id = String(leaseId);
    if (cause === 'client') {
      this.stats.clientRevokes++;
      return;
    }
    this.stats.expiredRevokes++;
    const track = this.leases.get(id);
    if (!track) return; // nobody was ever told the lease lived
    if (track.expiredAt !== undefined && track.expiredAt <= atMs) return; // a later replica's apply
    track.expiredAt = atMs;
    this.stats.checkedRevokes++;
    this.check(id, track);
  }

  private acked(id: string, track: LeaseTrack, atMs: number): void {
    track.lastAckAt = Math.max(track.lastAckAt, atMs);
    // An acknowledgement after the lease expired is a promise already broken.
    if (track.expiredAt !== undefined) this.check(id, track);
  }

  private check(id: string, track: LeaseTrack): void {
    const revokedAt = track.expiredAt!;
    const slack = (revokedAt - track.lastAckAt) * this.minClockRate - track.ttlMs;
    this.stats.minSlackMs = Math.min(this.stats.minSlackMs, slack);
    if (slack < 0) {
      throw new Violation(
        'lease-safety',
        `lease ${id} (TTL ${track.ttlMs} ms) was revoked for expiry at t=${revokedAt} ms, ` +
          `${revokedAt - track.lastAckAt} ms after its last acknowledged keepalive at t=${track.lastAckAt} ms; ` +
          `a clock at rate ${this.minClockRate} measured only ${((revokedAt - track.lastAckAt) * this.minClockRate).toFixed(1)} ms`,
      );
    }
  }
}
