import { ServerError } from './errors.js';

/** What a transfer needs of the Raft node on the leader. */
export interface TransferTarget {
  readonly selfId: string;
  isLeader(): boolean;
  term(): number;
  voters(): readonly string[];
  isMember(id: string): boolean;
  /** Replication progress of a voter (its match index). */
  matchOf(id: string): number;
  /** Starts the transfer in the Raft core (catch up, then TimeoutNow). */
  start(to: string): { ok: true } | { ok: false; reason?: string };
}

export interface TransferResult {
  leader: string;
  term: number;
}

interface Waiter {
  /** With the new leader, or without one when the wait ends otherwise. */
  end(result: TransferResult | undefined): void;
}

/**
 * `POST /v1/cluster/leader` on the leader: hands leadership to a voter and
 * answers once this node hears from the new leader. Without a target it picks
 * the voter whose log is furthest along, so the handover needs the least
 * catching up. The Raft core abandons a transfer the target does not win
 * within one election timeout; this waits a little longer than that and then
 * says which happened: still leading (503, nothing moved) or no leader known
 * (504, it may yet move).
 */
export class LeaderTransfers {
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly raft: TransferTarget,
    private readonly electionTimeoutMs: number,
  ) {}

  /** Soft-state changes of the node: a new leader other than us ends every wait. */
  leaderChanged(lead: string, term: number): void {
    if (lead === '' || lead === this.raft.selfId) return;
    for (const w of [...this.waiters]) w.end({ leader: lead, term });
  }

  async transfer(to: string | undefined, signal: AbortSignal): Promise<TransferResult> {
    const raft = this.raft;
    if (!raft.isLeader()) throw new ServerError('not_leader', 'not the leader');
    const target = to ?? this.pickTarget();
    if (target === raft.selfId) return { leader: raft.selfId, term: raft.term() };
    if (!raft.isMember(target)) {
      throw new ServerError('member_not_found', `no member with id ${target}`);
    }
    if (!raft.voters().includes(target)) {
      throw new ServerError(
        'invalid_request',
        `member ${target} is a learner; only voters can lead`,
      );
    }
    const started = raft.start(target);
    if (!started.ok) {
      throw new ServerError('unavailable', started.reason ?? 'the transfer could not start', {
        retryAfterSeconds: 1,
      });
    }
    const result = await this.waitForNewLeader(signal);
    if (result) return result;
    if (raft.isLeader()) {
      throw new ServerError(
        'unavailable',
        `leadership did not move to ${target} within ${this.limitMs()} ms (is it reachable and caught up?); this node still leads`,
        { retryAfterSeconds: 1 },
      );
    }
    throw new ServerError(
      'timeout',
      `no new leader was seen within ${this.limitMs()} ms; leadership may still move to ${target}`,
    );
  }

  /** Ends every wait (the node stops). */
  close(): void {
    for (const w of [...this.waiters]) w.end(undefined);
  }

  private pickTarget(): string {
    let best: string | undefined;
    for (const id of this.raft.voters()) {
      if (id === this.raft.selfId) continue;
      if (best === undefined || this.raft.matchOf(id) > this.raft.matchOf(best)) best = id;
    }
    if (best === undefined) {
      throw new ServerError(
        'invalid_request',
        'this cluster has no other voter to hand leadership to',
      );
    }
    return best;
  }

  private limitMs(): number {
    return 2 * this.electionTimeoutMs;
  }

  /** The new leader, or undefined when the limit or the request's deadline came first. */
  private waitForNewLeader(signal: AbortSignal): Promise<TransferResult | undefined> {
    return new Promise((resolve) => {
      const done = (result: TransferResult | undefined) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.waiters.delete(waiter);
        resolve(result);
      };
      const waiter: Waiter = { end: done };
      const onAbort = () => done(undefined);
      const timer = setTimeout(onAbort, this.limitMs());
      this.waiters.add(waiter);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
