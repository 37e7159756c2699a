/**
 * Peers becoming unreachable and reachable again, one log line per
 * transition, never one per failed send.
 *
 * The transport reports every failure (`failed`) and every success
 * (`succeeded`: a stream opened, a batch or snapshot delivered); this turns
 * them into states:
 * 1. A peer starts `unknown`. Failures while it is unknown (peers starting at
 *    different moments) are only logged once they have lasted `startupGraceMs`
 *    since this member started: "not reachable since this member started".
 * 2. reachable → unreachable and back are transitions; repeats are not.
 * 3. A flapping peer: at most one line per peer per `minIntervalMs`. A
 *    transition inside the interval is held; when the interval ends, one line
 *    tells the state then and how many transitions were not logged (also when
 *    the peer ended where the last line left it).
 * Time comes from `now` and held lines are let out by `tick`, so tests drive
 * it with a fake clock.
 */
import type { Logger } from 'pino';

export type Reachability = 'unknown' | 'reachable' | 'unreachable';

export interface PeerReachabilityOptions {
  log: Logger;
  /** A member's name for the log, from the member table; undefined if not known. */
  nameOf: (id: string) => string | undefined;
  now: () => number;
  minIntervalMs: number;
  startupGraceMs: number;
}

interface PeerState {
  state: Reachability;
  /** When the current state began. */
  sinceMs: number;
  /** The state the last line told, and when; undefined before the first line. */
  loggedState: Reachability | undefined;
  loggedAtMs: number;
  /** Transitions since the last line. */
  unlogged: number;
  /** When the state before the current one began (for "was unreachable for N ms"). */
  previousSinceMs: number;
}

export class PeerReachabilityLog {
  private readonly peers = new Map<string, PeerState>();
  private readonly startedMs: number;

  constructor(private readonly opts: PeerReachabilityOptions) {
    this.startedMs = opts.now();
  }

  /** Messages to `id` were lost (a send, dial or snapshot failed). */
  failed(id: string): void {
    const p = this.peer(id);
    if (p.state === 'unknown') {
      this.tickPeer(id, p, this.opts.now());
      return;
    }
    this.transition(id, p, 'unreachable');
  }

  /** Something reached `id` (a stream opened, a batch or snapshot was accepted). */
  succeeded(id: string): void {
    const p = this.peer(id);
    if (p.state === 'unknown') {
      // The first contact is not news, unless the peer was already logged unreachable.
      p.state = 'reachable';
      p.sinceMs = this.opts.now();
      return;
    }
    this.transition(id, p, 'reachable');
  }

  /** The peer left the cluster: nothing more to say about it. */
  forget(id: string): void {
    this.peers.delete(id);
  }

  /** Lets out held lines whose interval has ended; call every tick. */
  tick(): void {
    const now = this.opts.now();
    for (const [id, p] of this.peers) this.tickPeer(id, p, now);
  }

  stateOf(id: string): Reachability {
    return this.peers.get(id)?.state ?? 'unknown';
  }

  private peer(id: string): PeerState {
    let p = this.peers.get(id);
    if (!p) {
      const now = this.opts.now();
      p = {
        state: 'unknown',
        sinceMs: now,
        loggedState: undefined,
        loggedAtMs: 0,
        unlogged: 0,
        previousSinceMs: now,
      };
      this.peers.set(id, p);
    }
    return p;
  }

  private tickPeer(id: string, p: PeerState, now: number): void {
    if (p.state === 'unknown') {
      // Only failures create unknown peers here (a success makes them reachable).
      if (now - this.startedMs >= this.opts.startupGraceMs) {
        p.state = 'unreachable';
        p.sinceMs = this.startedMs;
        this.emit(id, p, now, true);
      }
      return;
    }
    if (p.unlogged > 0 && now - p.loggedAtMs >= this.opts.minIntervalMs) this.emit(id, p, now);
  }

  private transition(id: string, p: PeerState, to: 'reachable' | 'unreachable'): void {
    if (p.state === to) return;
    const now = this.opts.now();
    p.previousSinceMs = p.sinceMs;
    p.state = to;
    p.sinceMs = now;
    p.unlogged++;
    if (p.loggedState === undefined || now - p.loggedAtMs >= this.opts.minIntervalMs)
      this.emit(id, p, now);
  }

  private emit(id: string, p: PeerState, now: number, neverReached = false): void {
    const name = this.opts.nameOf(id) ?? id;
    // Transitions folded into this line beyond the one it reports.
    const notLogged = Math.max(0, p.unlogged - 1);
    const flapping =
      notLogged > 0 || p.state === p.loggedState
        ? ` (changed ${p.unlogged} times since the last line about it ${Math.round(now - p.loggedAtMs)} ms ago)`
        : '';
    const fields = {
      peer: name,
      peerId: id,
      ...(p.unlogged > 1 || p.state === p.loggedState ? { transitions: p.unlogged } : {}),
    };
    if (p.state === 'unreachable') {
      this.opts.log.warn(
        { event: 'peer_unreachable', ...fields },
        neverReached
          ? `peer ${name} is unreachable: not reached since this member started ${Math.round(now - this.startedMs)} ms ago`
          : `peer ${name} became unreachable: messages to it are being lost${flapping}`,
      );
    } else {
      const downMs = Math.round(p.sinceMs - p.previousSinceMs);
      this.opts.log.info(
        {
          event: 'peer_reachable',
          ...fields,
          ...(p.unlogged === 1 ? { unreachableMs: downMs } : {}),
        },
        p.unlogged === 1
          ? `peer ${name} is reachable again after ${downMs} ms`
          : `peer ${name} is reachable${flapping}`,
      );
    }
    p.loggedState = p.state;
    p.loggedAtMs = now;
    p.unlogged = 0;
  }
}
