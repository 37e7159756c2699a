import type { NodeId } from './messages.js';

/** A linearizable read registered at the leader, waiting for leadership to be confirmed. */
export interface PendingRead {
  /** The leader's commit index when the read arrived: the read is served once this is applied. */
  index: number;
  ctx: string;
  /** Who asked: the leader itself or a follower to answer with readIndexResp. */
  from: NodeId;
  /** The heartbeat round that confirms it; 0 until a round starts after the read arrived. */
  round: number;
}

/**
 * ReadIndex (Raft §6.4) with batching: reads that arrive while a heartbeat round
 * is in flight wait for the next round, so one round confirms many reads. A
 * round is confirmed when a quorum of voters acknowledged it (or a later one).
 */
export class ReadOnlyQueue {
  /** Reads waiting for the leader's first commit in its term (§6.4 step 1). */
  beforeCommit: { ctx: string; from: NodeId }[] = [];
  pending: PendingRead[] = [];
  /** The latest round started; heartbeats carry it. */
  startedRound = 0;
  /** The latest round a quorum acknowledged. */
  confirmedRound = 0;

  hasUnassigned(): boolean {
    return this.pending.some((r) => r.round === 0);
  }

  roundInFlight(): boolean {
    return this.startedRound > this.confirmedRound;
  }

  /** Starts a round covering every read not yet in one; returns its number. */
  startRound(): number {
    this.startedRound++;
    for (const r of this.pending) if (r.round === 0) r.round = this.startedRound;
    return this.startedRound;
  }

  /** Marks rounds up to `round` confirmed and returns the reads they release, in arrival order. */
  confirm(round: number): PendingRead[] {
    if (round <= this.confirmedRound) return [];
    this.confirmedRound = round;
    const released: PendingRead[] = [];
    const still: PendingRead[] = [];
    for (const r of this.pending) {
      if (r.round !== 0 && r.round <= round) released.push(r);
      else still.push(r);
    }
    this.pending = still;
    return released;
  }
}
