import type { ConfState, Message, RaftStorage } from '../raft/index.js';
import type { AppliedWrite, MemberRecord, PersistableReady } from '../storage/index.js';

/**
 * The seams of the node core (node-core.ts): what it needs from its disk, its
 * network and its clock. Production passes LevelRaftStorage, HttpTransport and
 * real timers; the simulator (test/sim) passes its disk double, its simulated
 * network and its virtual clock, and so runs the same core.
 */

/**
 * The disk: Raft's read side plus the writes of the Ready contract.
 * Writes run one at a time in call order; a write's promise settles once it is
 * on disk (synced when `sync`), and the read side changes only after that.
 * A write that fails rejects: the core then stops without acknowledging
 * anything that depended on it (fail-stop).
 */
export interface CoreStorage extends RaftStorage {
  /** The index the stored state machine reflects. */
  appliedIndex(): number;
  /**
   * One atomic write: snapshot (replacing the log), entries (truncating a
   * conflicting suffix), hard state; with either the records of an installed
   * snapshot's state machine, or the applied state of entries applied since.
   */
  persistReady(
    rd: PersistableReady,
    sync: boolean,
    extra?: {
      installRecords?: Iterable<readonly [string, Uint8Array]>;
      applied?: AppliedWrite;
    },
  ): Promise<void>;
  /** Records a snapshot at `index` and drops log entries before `index - keepEntries`. */
  compact(index: number, term: number, confState: ConfState, keepEntries: number): Promise<unknown>;
  members(): MemberRecord[];
  removedMembers(): string[];
  saveMembers(records: readonly MemberRecord[], removed?: readonly string[]): Promise<void>;
  sizeBytes(): Promise<number>;
  close(): Promise<void>;
}

/** The network: Raft messages out. What arrives is fed to the core's step(). */
export interface CoreTransport {
  /** Sends at once (a Ready's messages, in order per peer). */
  sendNow(messages: readonly Message[]): void;
  addPeer(id: string, url: string): void;
  removePeer(id: string): void;
}

/**
 * Where the core reports the latency accounting of the proposals made on this
 * member (write-accounting.ts; production passes its metrics, the simulator
 * nothing). Stamps are the clock's milliseconds, NaN where a stamp was not taken.
 */
export interface CoreTiming {
  /** A proposal made here was applied: when it was proposed, stored, committed, its batch started applying, applied. */
  proposalApplied(
    proposedMs: number,
    storedMs: number,
    committedMs: number,
    applyingMs: number,
    appliedMs: number,
  ): void;
  /** A Ready's synced log write holding `count` of the proposals made here took `ms`. */
  proposalsSynced(ms: number, count: number): void;
}

/** Time, as the node sees it. Nothing in the core reads a clock or sets a timer but through this. */
export interface CoreClock {
  /** Monotonic milliseconds (performance.now() in production). */
  now(): number;
  /** Wall-clock milliseconds (Date.now()), stamped into commands. */
  wallNow(): number;
  /** Runs `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
  /** Runs `fn` once after `ms` unless the returned function is called first. */
  after(ms: number, fn: () => void): () => void;
  /** Runs `fn` after the current turn of the event loop (setImmediate). */
  soon(fn: () => void): void;
}

/** The real clock: performance.now, Date.now, timers. */
export const systemClock: CoreClock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    return () => clearInterval(timer);
  },
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
  soon: (fn) => {
    setImmediate(fn);
  },
};
