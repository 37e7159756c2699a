import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { TransferResult } from './leader-transfer.js';

/** What the graceful stop needs of its member (RaftKvNode wires it). */
export interface ShutdownHost {
  readonly log: Logger;
  isLeader(): boolean;
  /** Another voter exists that could take leadership over. */
  hasOtherVoter(): boolean;
  /** Hands leadership to the voter whose log is furthest along (LeaderTransfers, no target). */
  handOver(signal: AbortSignal): Promise<TransferResult>;
  /** Writes waiting to be proposed or applied here (queued or proposed by this member). */
  pendingProposals(): number;
  /** Proposes the writes queued in this turn of the event loop now, before a handoff starts. */
  flushProposals(): void;
  /** A member's name for the log (the id when unknown). */
  nameOf(id: string): string;
  readonly electionTimeoutMs: number;
  readonly heartbeatMs: number;
  /** Bound on draining what the member holds: the request timeout (every held request ends by then). */
  readonly drainLimitMs: number;
}

/** How a graceful stop went, for the log and for tests. */
export interface ShutdownOutcome {
  /** Leadership went to this member (id) before stopping; undefined when this member did not lead or no voter took over. */
  handedOverTo: string | undefined;
  handoffMs: number;
  /** Requests and proposals still held when the drain limit passed (answered as at a hard stop). */
  leftOver: number;
  drainMs: number;
}

type Phase = 'running' | 'handing-over' | 'draining';

/**
 * The graceful stop of one member (SIGTERM, StartedNode.stop(), RaftKvNode.stop()):
 *
 * 1. From its first step the member is shutting down (`shuttingDown`, which /health and
 *    /readyz report): the client port takes no new requests (503 `unavailable` with
 *    Retry-After and `Connection: close`, see api/client-connections.ts) and no new
 *    watches; requests already taken go on.
 * 2. A leader hands leadership to the voter whose log is furthest along (highest match
 *    index), bounded by one election timeout (the Raft core abandons a transfer then).
 *    The writes queued in this turn are proposed first. Writes that reach it during the
 *    handoff (forwarded by followers, or taken before step 1) are held, not proposed —
 *    the Raft core refuses proposals during a transfer — and go to the new leader once it
 *    is known. When no voter takes over in time the member goes on stopping as leader.
 * 3. Drain: everything the member holds is finished. Writes it proposed are answered when
 *    applied here: the new leader commits them (the transfer only completes once the
 *    target has every entry), so their clients get the real answer, not a 504. Forwarded
 *    writes get the leader's answer; reads waiting on ReadIndex or a revision are served.
 *    Bounded by the request timeout, which ends every held request anyway.
 * 4. A member that handed leadership over then waits two heartbeat intervals, in which
 *    followers that forwarded a write before they heard of the new leader have it
 *    arrive here (it is passed on to the new leader), and drains again.
 * 5. The caller then closes the Raft loop, the peer port and the data dir; what is still
 *    held is answered as at a hard stop (504 for a proposed write, 503 otherwise).
 */
export class GracefulShutdown {
  private phase: Phase = 'running';
  private started = false;
  private readonly begun = new AbortController();
  /** Requests in progress in the member's write/read paths (see track). */
  private inFlight = 0;
  private handoffDone: Promise<void> = Promise.resolve();
  private endHandoff: () => void = () => {};
  /** Aborts the handoff's wait (its target became unreachable). */
  private giveUpHandoff: AbortController | undefined;

  constructor(private readonly host: ShutdownHost) {}

  /** True from the first step of a graceful stop on. */
  get shuttingDown(): boolean {
    return this.started;
  }

  /** Aborted when the stop begins: long waits (a lock's line) end then and go on elsewhere. */
  get signal(): AbortSignal {
    return this.begun.signal;
  }

  /** A leader is handing leadership over: new writes wait for afterHandoff(). */
  get handingOver(): boolean {
    return this.phase === 'handing-over';
  }

  /** Resolves when the handoff is over (at once when there is none). */
  afterHandoff(): Promise<void> {
    return this.handoffDone;
  }

  /**
   * How long steps 1–4 may take at most: the handoff's bound, the drain's, and the
   * heartbeats in between. Closing after them takes a moment more (a disk flush).
   */
  get limitMs(): number {
    const h = this.host;
    return h.electionTimeoutMs + h.drainLimitMs + 5 * h.heartbeatMs + 20;
  }

  /**
   * The member that leadership is being handed to became unreachable (it stops too,
   * or is cut off): the handoff cannot succeed, so the stop goes on without waiting
   * out the election timeout.
   */
  transferTargetUnreachable(): void {
    this.giveUpHandoff?.abort(new Error('the member taking over became unreachable'));
  }

  /** Counts `fn` as held by this member until it settles, so the drain waits for it. */
  async track<T>(fn: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await fn();
    } finally {
      this.inFlight--;
    }
  }

  /** What the member still holds: requests in progress and proposals not yet applied. */
  held(): number {
    return this.inFlight + this.host.pendingProposals();
  }

  /** Steps 1–4 (once; later calls get the same outcome). */
  run(): Promise<ShutdownOutcome> {
    if (!this.running) this.running = this.sequence();
    return this.running;
  }

  private running: Promise<ShutdownOutcome> | undefined;

  private async sequence(): Promise<ShutdownOutcome> {
    const host = this.host;
    this.started = true;
    this.begun.abort(new Error('the member is shutting down'));
    const t0 = performance.now();
    let handedOverTo: string | undefined;
    if (host.isLeader() && host.hasOtherVoter()) {
      host.flushProposals();
      this.phase = 'handing-over';
      this.handoffDone = new Promise((resolve) => {
        this.endHandoff = resolve;
      });
      handedOverTo = await this.handOver();
      this.endHandoff();
    }
    const handoffMs = Math.round(performance.now() - t0);
    this.phase = 'draining';
    const drainStart = performance.now();
    let leftOver = await this.drain(drainStart);
    if (handedOverTo !== undefined && leftOver === 0) {
      // Step 4: writes forwarded by followers that had not yet heard of the new leader.
      await sleep(2 * host.heartbeatMs);
      leftOver = await this.drain(drainStart);
    }
    const drainMs = Math.round(performance.now() - drainStart);
    if (leftOver > 0) {
      host.log.warn(
        { held: leftOver, drainMs },
        'requests still held when the drain limit passed: proposed writes get 504 (outcome unknown), the rest 503',
      );
    } else {
      host.log.info({ drainMs }, 'every request this member held has been answered');
    }
    return { handedOverTo, handoffMs, leftOver, drainMs };
  }

  private async handOver(): Promise<string | undefined> {
    const host = this.host;
    const t0 = performance.now();
    // The Raft core abandons a transfer after one election timeout; a little more lets us see that.
    const limitMs = host.electionTimeoutMs + 2 * host.heartbeatMs;
    this.giveUpHandoff = new AbortController();
    const signal = AbortSignal.any([AbortSignal.timeout(limitMs), this.giveUpHandoff.signal]);
    try {
      const result = await host.handOver(signal);
      host.log.info(
        {
          to: result.leader,
          toName: host.nameOf(result.leader),
          term: result.term,
          handoffMs: Math.round(performance.now() - t0),
        },
        `shutting down: handed leadership to ${host.nameOf(result.leader)}`,
      );
      return result.leader;
    } catch (err) {
      host.log.warn(
        { err: (err as Error).message, handoffMs: Math.round(performance.now() - t0) },
        'shutting down: no voter took leadership over in time; stopping as leader (the others elect one)',
      );
      return undefined;
    } finally {
      this.giveUpHandoff = undefined;
    }
  }

  /** Waits, one heartbeat at a time, until nothing is held or the drain limit passed; returns what is left. */
  private async drain(since: number): Promise<number> {
    const host = this.host;
    const stepMs = Math.max(1, Math.min(host.heartbeatMs, 20));
    const maxSteps = Math.ceil(host.drainLimitMs / stepMs) + 1;
    for (let i = 0; i < maxSteps; i++) {
      if (this.held() === 0) return 0;
      if (performance.now() - since >= host.drainLimitMs) break;
      await sleep(stepMs);
    }
    return this.held();
  }
}
