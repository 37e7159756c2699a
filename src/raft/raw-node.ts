import { applyConfChangeTo, decodeConfChange } from './confchange.js';
import { assert } from './errors.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  ReadState,
  Snapshot,
} from './messages.js';
import { hardStateEqual, isLocalMessage, message } from './messages.js';
import { type ProposeResult, Raft, type RaftConfig, type Role } from './raft.js';

export interface SoftState {
  lead: NodeId;
  role: Role;
}

/**
 * Everything the core wants done, collected since the last advance().
 *
 * The caller's duty, in this order:
 * 0. `eagerMessages` may be sent at once, before or while persisting: they
 *    promise nothing about this node's disk (a leader's appends, heartbeats,
 *    snapshots; the leader counts its own copy only after advance()).
 * 1. Persist `hardState`, `entries` (appending, truncating any conflicting
 *    suffix) and `snapshot` — with fsync when `mustSync` — BEFORE sending any
 *    of `messages`: a vote or an append acknowledgement promises the data is durable.
 * 2. Send `messages`.
 * 3. Apply `snapshot` (if any) to the state machine, then `committedEntries` in
 *    order; persist `confState` with the applied index when it is given.
 * 4. Serve reads of `readStates` once their index is applied.
 * 5. Call advance(ready).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  /** Membership once `snapshot` and `committedEntries` are applied; only when it changes. */
  confState?: ConfState;
  readStates: ReadState[];
  /** Messages that may leave before this Ready is persisted (step 0). */
  eagerMessages: Message[];
  /** Messages that must wait until this Ready is persisted (step 2). */
  messages: Message[];
  /** Whether the hard state's term or vote changed or entries were added: persist with fsync. */
  mustSync: boolean;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lead: NodeId;
  role: Role;
  voters: NodeId[];
  learners: NodeId[];
  lastIndex: number;
  /** Leader only: what each member is known to hold. */
  progress?: Record<NodeId, { match: number; next: number; state: string; recentActive: boolean }>;
}

/**
 * A leader's replication traffic depends on no state of its own that is not
 * yet durable: appends carry entries the leader does not count until they are
 * persisted, and heartbeats, snapshots, TimeoutNow and read-index answers
 * carry only what a quorum already acknowledged.
 */
function isEager(m: Message): boolean {
  return (
    m.type === 'app' ||
    m.type === 'heartbeat' ||
    m.type === 'snap' ||
    m.type === 'timeoutNow' ||
    m.type === 'readIndexResp'
  );
}

/** The whole surface of the Raft core, in the Ready/advance style of etcd-io/raft. */
export class RawNode {
  readonly raft: Raft;
  private prevHardState: HardState;
  private prevSoftState: SoftState;
  private readyInFlight = false;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevHardState = this.raft.hardState();
    this.prevSoftState = this.softState();
  }

  tick(): void {
    this.raft.tick();
  }

  /** Feeds a message from a peer. Local message types are refused. */
  step(m: Message): void {
    if (isLocalMessage(m.type)) return;
    // Messages from non-members are still processed for votes and leadership
    // (a new member must hear from the leader before it knows the config).
    this.raft.step(m);
  }

  campaign(): void {
    this.raft.step(message({ type: 'hup', from: this.raft.id, to: this.raft.id }));
  }

  propose(data: Uint8Array): ProposeResult {
    return this.raft.propose([data]);
  }

  /** Many proposals in one log append (group commit). */
  proposeBatch(payloads: Uint8Array[]): ProposeResult {
    return this.raft.propose(payloads);
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    return this.raft.proposeConfChange(cc);
  }

  readIndex(ctx: string) {
    return this.raft.readIndex(ctx);
  }

  transferLeadership(to: NodeId) {
    return this.raft.transferLeadership(to);
  }

  /** The transport reports the fate of a snapshot sent to `to`. */
  reportSnapshot(to: NodeId, ok: boolean): void {
    this.raft.step(message({ type: 'snapStatus', from: to, to: this.raft.id, reject: !ok }));
  }

  /** The transport could not reach `to`: stop pipelining to it. */
  reportUnreachable(to: NodeId): void {
    this.raft.step(message({ type: 'unreachable', from: to, to: this.raft.id }));
  }

  private softState(): SoftState {
    return { lead: this.raft.lead, role: this.raft.role };
  }

  hasReady(): boolean {
    const r = this.raft;
    const ss = this.softState();
    return (
      ss.lead !== this.prevSoftState.lead ||
      ss.role !== this.prevSoftState.role ||
      !hardStateEqual(r.hardState(), this.prevHardState) ||
      r.log.unstable.snapshot !== undefined ||
      r.log.unstable.entries.length > 0 ||
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      r.log.hasNextCommittedEntries()
    );
  }

  /** Collects the work to do; call advance(ready) once it is done, before the next ready(). */
  ready(): Ready {
    assert(!this.readyInFlight, 'ready() called again before advance()');
    this.readyInFlight = true;
    const r = this.raft;
    const hs = r.hardState();
    const ss = this.softState();
    const committedEntries = r.log.nextCommittedEntries(r.maxCommittedSizePerReadyBytes);
    const snapshot = r.log.unstable.snapshot;
    const termOrVoteChanged =
      hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
    const rd: Ready = {
      entries: [...r.log.unstable.entries],
      committedEntries,
      readStates: r.readStates,
      eagerMessages: [],
      messages: r.msgs,
      mustSync: r.log.unstable.entries.length > 0 || snapshot !== undefined || termOrVoteChanged,
    };
    // With a new term or vote on its way to disk, every message waits for it.
    if (!termOrVoteChanged) {
      rd.eagerMessages = r.msgs.filter(isEager);
      if (rd.eagerMessages.length > 0) rd.messages = r.msgs.filter((m) => !isEager(m));
    }
    r.readStates = [];
    r.msgs = [];
    if (ss.lead !== this.prevSoftState.lead || ss.role !== this.prevSoftState.role)
      rd.softState = ss;
    if (!hardStateEqual(hs, this.prevHardState)) rd.hardState = hs;
    if (snapshot) rd.snapshot = snapshot;
    // The membership the application will be in after applying this Ready.
    let cs: ConfState | undefined = snapshot ? snapshot.metadata.confState : undefined;
    for (const e of committedEntries) {
      if (e.type === 'confChange')
        cs = applyConfChangeTo(cs ?? r.confState(), decodeConfChange(e.data));
    }
    if (cs) rd.confState = cs;
    return rd;
  }

  /** The caller did everything `rd` asked for. */
  advance(rd: Ready): void {
    assert(this.readyInFlight, 'advance() without ready()');
    this.readyInFlight = false;
    const r = this.raft;
    if (rd.softState) this.prevSoftState = rd.softState;
    if (rd.hardState) this.prevHardState = rd.hardState;
    if (rd.snapshot) {
      r.log.stableSnapTo(rd.snapshot.metadata.index);
      r.log.appliedTo(rd.snapshot.metadata.index);
    }
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) {
      r.log.stableTo(lastEntry.index, lastEntry.term);
      r.entriesPersisted(lastEntry.index, lastEntry.term);
    }
    for (const e of rd.committedEntries) {
      if (e.type === 'confChange') r.applyConfChangeEntry(e);
    }
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted) r.log.appliedTo(lastCommitted.index);
  }

  status(): Status {
    const r = this.raft;
    const status: Status = {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lead: r.lead,
      role: r.role,
      voters: [...r.voters],
      learners: [...r.learners],
      lastIndex: r.log.lastIndex(),
    };
    if (r.role === 'leader') {
      status.progress = {};
      for (const [id, pr] of r.progress) {
        status.progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
        };
      }
    }
    return status;
  }
}
