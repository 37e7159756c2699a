import { Inflights } from './inflights.js';

/**
 * How the leader replicates to a follower:
 * - probe: one append at a time until we learn where the logs agree;
 * - replicate: optimistic pipelining, nextIndex advances on send, bounded by inflights;
 * - snapshot: the follower needs a snapshot; appends pause until it is acknowledged.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** The leader's view of one member. Invariant: match < next. */
export class Progress {
  /** Highest index known to be replicated on the member. */
  match = 0;
  /** Index of the next entry to send. */
  next: number;
  state: ProgressState = 'probe';
  /** probe: an append was sent and we wait for the answer or the next heartbeat. */
  probeSent = false;
  /** snapshot: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** snapshot: ticks since the snapshot was sent, to retry a lost one. */
  snapshotElapsedTicks = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Highest ReadIndex confirmation round this member acknowledged. */
  ackedReadRound = 0;
  isLearner: boolean;
  readonly inflights: Inflights;

  constructor(next: number, maxInflightMsgs: number, isLearner: boolean) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflightMsgs);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotElapsedTicks = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** An acknowledgement up to `index`; returns false if it was stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** Records that entries up to `lastIndex` were sent (count = number of entries). */
  sentEntries(lastIndex: number, count: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /**
   * A rejection of the append at `rejected`, with the follower's hint of where
   * the logs may match. Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      // A rejection of something already matched is stale.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // probe: only the rejection of the append we sent last counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether appends to this member must wait. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
