import {
  applyConfChangeTo,
  confChangeProblem,
  decodeConfChange,
  encodeConfChange,
} from './confchange.js';
import { assert, RaftError } from './errors.js';
import { RaftLog } from './log.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  MessageType,
  NodeId,
  ReadState,
  Snapshot,
} from './messages.js';
import { message, NONE } from './messages.js';
import { Progress } from './progress.js';
import { committedIndex, isQuorum, voteResult } from './quorum.js';
import { ReadOnlyQueue } from './read-only.js';
import type { RandomSource } from './rng.js';
import type { RaftStorage } from './storage.js';

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export interface RaftConfig {
  id: NodeId;
  storage: RaftStorage;
  /** Ticks without hearing from a leader before a follower campaigns; randomized in [n, 2n). */
  electionTicks: number;
  /** Ticks between a leader's heartbeats; must be well below electionTicks. */
  heartbeatTicks: number;
  /** The application's applied index at start (its state already includes entries up to it). */
  applied?: number;
  /** Upper bound on entry bytes in one AppendEntries. */
  maxSizePerMsgBytes?: number;
  /** Bound on unacknowledged appends in flight to one follower (pipelining depth). */
  maxInflightMsgs?: number;
  /** Bound on committed entry bytes handed out in one Ready. */
  maxCommittedSizePerReadyBytes?: number;
  /** A leader that hears from no quorum for an election timeout steps down. Default true. */
  checkQuorum?: boolean;
  /** Elections start with a PreVote round that does not raise terms. Default true. */
  preVote?: boolean;
  random: RandomSource;
}

export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; code: 'not_leader'; leader: NodeId }
  | { ok: false; code: 'proposal_dropped'; reason: string };

type CampaignKind = 'preElection' | 'election' | 'transfer';

/**
 * One Raft peer as a pure state machine: inputs are ticks, messages and
 * proposals; outputs accumulate in `msgs`, `readStates` and the log, and are
 * collected by RawNode as a Ready. No I/O, no clock, no randomness of its own.
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  /** Who we voted for in `term`. Invariant: persisted before any message that depends on it. */
  vote: NodeId = NONE;
  /** The leader of `term` as far as we know. */
  lead: NodeId = NONE;
  role: Role = 'follower';
  readonly log: RaftLog;

  voters: NodeId[] = [];
  learners: NodeId[] = [];
  /** Leader only: replication state of every member, including itself. */
  progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();

  msgs: Message[] = [];
  readStates: ReadState[] = [];
  private reads = new ReadOnlyQueue();

  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private randomizedElectionTicks = 0;
  /** follower/candidate: ticks since the last valid leader message or election start; leader: since last CheckQuorum. */
  electionElapsed = 0;
  private heartbeatElapsed = 0;

  private readonly checkQuorum: boolean;
  private readonly preVote: boolean;
  private readonly maxSizePerMsgBytes: number;
  private readonly maxInflightMsgs: number;
  readonly maxCommittedSizePerReadyBytes: number;
  private readonly random: RandomSource;

  /** Leader: the member leadership is being handed to, or NONE. */
  leadTransferee: NodeId = NONE;
  /**
   * Ticks left before a leader that applied its own removal hands over (0:
   * not removed). Until then it keeps sending heartbeats, which carry the
   * commit index of its removal, and takes no proposals.
   */
  private removedHandOverTicks = 0;
  /**
   * Leader: index of the latest conf change proposed; none may be proposed while
   * it is not applied. Set to lastIndex at election so that a conf change waits
   * for the leader's first entry of its term to be applied (dissertation §4.1 bug fix).
   */
  pendingConfIndex = 0;

  constructor(config: RaftConfig) {
    assert(config.id !== NONE, 'a node id is required');
    assert(
      config.heartbeatTicks > 0 && config.electionTicks > config.heartbeatTicks,
      'need electionTicks > heartbeatTicks > 0',
    );
    this.id = config.id;
    this.electionTicks = config.electionTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    this.checkQuorum = config.checkQuorum ?? true;
    this.preVote = config.preVote ?? true;
    this.maxSizePerMsgBytes = config.maxSizePerMsgBytes ?? 1024 * 1024;
    this.maxInflightMsgs = config.maxInflightMsgs ?? 256;
    this.maxCommittedSizePerReadyBytes = config.maxCommittedSizePerReadyBytes ?? 16 * 1024 * 1024;
    this.random = config.random;
    this.log = new RaftLog(config.storage);

    const { hardState, confState } = config.storage.initialState();
    this.setConfState(confState);
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0)
      this.loadHardState(hardState);
    if (config.applied !== undefined && config.applied > 0) {
      this.log.appliedTo(Math.max(config.applied, this.log.applied));
    }
    this.becomeFollower(this.term, NONE);
  }

  private loadHardState(hs: HardState): void {
    assert(
      hs.commit <= this.log.lastIndex(),
      `persisted commit ${hs.commit} past lastIndex ${this.log.lastIndex()}`,
    );
    // A snapshot newer than the persisted commit already implies its index is committed.
    this.log.committed = Math.max(hs.commit, this.log.committed);
    this.term = hs.term;
    this.vote = hs.vote;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  confState(): ConfState {
    return { voters: [...this.voters], learners: [...this.learners] };
  }

  isVoter(id: NodeId): boolean {
    return this.voters.includes(id);
  }

  /** Whether this node may become leader: a voter without a pending snapshot. */
  promotable(): boolean {
    return this.isVoter(this.id) && !this.log.hasPendingSnapshot();
  }

  // ---------------------------------------------------------------- roles

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTicks = this.electionTicks + this.random.nextInt(this.electionTicks);
    this.leadTransferee = NONE;
    this.removedHandOverTicks = 0;
    this.votes.clear();
    this.pendingConfIndex = 0;
    this.reads = new ReadOnlyQueue();
    const last = this.log.lastIndex();
    this.progress = new Map();
    for (const id of [...this.voters, ...this.learners]) {
      const pr = new Progress(last + 1, this.maxInflightMsgs, this.learners.includes(id));
      if (id === this.id) pr.match = this.log.lastStableIndex();
      this.progress.set(id, pr);
    }
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become pre-candidate');
    // PreVote (dissertation §9.6): no term change and no vote, so a node that
    // cannot win does not disrupt the cluster.
    this.votes.clear();
    this.lead = NONE;
    this.role = 'preCandidate';
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    this.progress.get(this.id)?.becomeReplicate();
    // Raft §8: a no-op entry of the new term lets the leader commit (and learn
    // the commit index of) everything before it.
    this.appendEntries([{ term: 0, index: 0, type: 'normal', data: new Uint8Array() }]);
    // Set after the no-op, so that no conf change is proposed before the
    // leader's first entry of its term is applied (dissertation §4.1 bug fix).
    this.pendingConfIndex = this.log.lastIndex();
  }

  // ---------------------------------------------------------------- ticks

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTicks) {
      this.electionElapsed = 0;
      this.step(message({ type: 'hup', from: this.id, to: this.id }));
    }
  }

  private tickHeartbeat(): void {
    if (this.removedHandOverTicks > 0 && --this.removedHandOverTicks === 0) {
      this.handOverAndStepDown();
      return;
    }
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(message({ type: 'checkQuorum', from: this.id, to: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.role === 'leader' && this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.role !== 'leader') return;
    for (const [id, pr] of this.progress) {
      // A snapshot lost on the way is retried after two election timeouts.
      if (pr.state === 'snapshot' && ++pr.snapshotElapsedTicks > 2 * this.electionTicks) {
        pr.becomeProbe();
        this.sendAppend(id);
      }
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.step(message({ type: 'beat', from: this.id, to: this.id }));
    }
  }

  // ---------------------------------------------------------------- elections

  /** Starts an election now (e.g. the application wants this node to lead). */
  campaign(kind: CampaignKind): void {
    if (!this.promotable()) return;
    if (this.hasUnappliedConfChange()) return;
    let voteType: MessageType;
    let voteTerm: number;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteType = 'preVote';
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = 'vote';
      voteTerm = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      if (kind === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    for (const id of this.voters) {
      if (id === this.id) continue;
      this.send(
        message({
          type: voteType,
          from: this.id,
          to: id,
          term: voteTerm,
          index: this.log.lastIndex(),
          logTerm: this.log.lastTerm(),
          commit: this.log.committed,
          ...(kind === 'transfer' ? { transfer: true } : {}),
        }),
      );
    }
  }

  private poll(id: NodeId, granted: boolean) {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    return voteResult(this.voters, this.votes);
  }

  /** A node with a committed but unapplied conf change may not be a voter once it applies it. */
  private hasUnappliedConfChange(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    let ents: Entry[];
    try {
      ents = this.log.slice(this.log.applied + 1, this.log.committed + 1);
    } catch {
      return true;
    }
    return ents.some((e) => e.type === 'confChange');
  }

  // ---------------------------------------------------------------- step

  step(m: Message): void {
    if ((m.type === 'vote' || m.type === 'preVote') && m.commit > this.log.committed) {
      this.learnCommitFromCandidate(m);
    }
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        // Leader lease (§4.2.3 with CheckQuorum): while we hear from a leader,
        // ignore candidates, so a rejoining node cannot depose a healthy leader.
        const inLease =
          this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTicks;
        if (inLease && !m.transfer) return;
      }
      if (m.type === 'preVote') {
        // Never change term on a PreVote.
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // The granted term is the one we will campaign in; our term moves when we do.
      } else if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === 'heartbeat' || m.type === 'app')) {
        // A stale leader (e.g. after a partition) learns our term and steps down;
        // without this it could keep the cluster from making progress under PreVote.
        this.send(message({ type: 'appResp', from: this.id, to: m.from }));
      } else if (m.type === 'preVote') {
        this.send(
          message({
            type: 'preVoteResp',
            from: this.id,
            to: m.from,
            term: this.term,
            reject: true,
          }),
        );
      }
      return;
    }

    switch (m.type) {
      case 'hup':
        if (this.role !== 'leader') this.campaign(this.preVote ? 'preElection' : 'election');
        return;
      case 'vote':
      case 'preVote':
        this.handleVoteRequest(m);
        return;
    }

    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
    }
  }

  /**
   * A candidate's commit index is a fact about the cluster, whatever its term
   * or our vote: if our log holds the candidate's last entry, log matching
   * makes our prefix up to it the candidate's, so what it knows committed is
   * committed here too. Membership changes take effect when applied, so
   * without this a voter whose log is longest but whose commit index is
   * behind (its leader was removed and left before telling it) can keep
   * counting the removed member and never win, while the voter that knows
   * cannot win its vote.
   */
  private learnCommitFromCandidate(m: Message): void {
    if (this.role === 'leader') return;
    if (m.commit > m.index || !this.log.matchTerm(m.index, m.logTerm)) return;
    this.log.commitTo(m.commit);
  }

  private handleVoteRequest(m: Message): void {
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    // Raft §5.2: one vote per term. A PreVote for a future term binds nothing.
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === 'preVote' && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // Reply with the request's term: a PreVote is granted for the term it asks about.
      this.send(message({ type: respType, from: this.id, to: m.from, term: m.term }));
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(
        message({ type: respType, from: this.id, to: m.from, term: this.term, reject: true }),
      );
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'beat':
        this.bcastHeartbeat();
        return;
      case 'checkQuorum': {
        const active = isQuorum(
          this.voters,
          (id) => id === this.id || this.progress.get(id)?.recentActive === true,
        );
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
        if (!active) this.becomeFollower(this.term, NONE);
        return;
      }
      case 'readIndex':
        this.handleReadRequest(m.from, m.readCtx ?? '');
        return;
    }

    const pr = this.progress.get(m.from);
    if (!pr) return; // not a member (any more)
    switch (m.type) {
      case 'appResp':
        pr.recentActive = true;
        this.handleAppendResponse(m, pr);
        return;
      case 'heartbeatResp':
        pr.recentActive = true;
        pr.probeSent = false;
        // A full window whose appends were lost would stall forever: free one
        // slot so the next append reveals the gap and the follower rejects it.
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
        if (m.readRound !== undefined && m.readRound > pr.ackedReadRound) {
          pr.ackedReadRound = m.readRound;
          this.maybeConfirmReads();
        }
        return;
      case 'snapStatus':
        if (pr.state !== 'snapshot') return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for the next heartbeat response before probing again.
        pr.probeSent = true;
        return;
      case 'unreachable':
        if (pr.state === 'replicate') pr.becomeProbe();
        return;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    if (m.reject) {
      // Fast backtracking: skip every entry of the follower's conflicting term at once.
      let nextProbeIndex = m.rejectHint;
      if (m.logTerm > 0)
        nextProbeIndex = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbeIndex)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (oldPaused && !pr.isPaused()) this.sendAppendsWhilePossible(m.from);
      return;
    }
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else {
      this.sendAppendsWhilePossible(m.from);
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.sendTimeoutNow(m.from);
    }
  }

  private stepCandidate(m: Message): void {
    const respType = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    switch (m.type) {
      case 'app':
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'preVoteResp':
      case 'voteResp': {
        if (m.type !== respType) return;
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.role === 'preCandidate') this.campaign('election');
          else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === 'lost') {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        // Leadership transfer: campaign at once, without PreVote, ignoring leases.
        this.campaign('transfer');
        return;
      case 'readIndexResp':
        this.readStates.push({ index: m.index, ctx: m.readCtx ?? '' });
        return;
    }
  }

  // ---------------------------------------------------------------- follower handlers

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(message({ type: 'appResp', from: this.id, to: m.from, index: this.log.committed }));
      return;
    }
    const lastNewIndex = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNewIndex !== undefined) {
      this.send(message({ type: 'appResp', from: this.id, to: m.from, index: lastNewIndex }));
      return;
    }
    // Raft §5.3 consistency check failed. Hint the leader with the last index
    // whose term is ≤ the leader's term at m.index, so it can skip a whole term.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send(
      message({
        type: 'appResp',
        from: this.id,
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(match, commit), so this never exceeds what we hold.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send(
      message({
        type: 'heartbeatResp',
        from: this.id,
        to: m.from,
        ...(m.readRound !== undefined ? { readRound: m.readRound } : {}),
      }),
    );
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap && this.restore(snap)) {
      this.send(
        message({ type: 'appResp', from: this.id, to: m.from, index: this.log.lastIndex() }),
      );
    } else {
      this.send(message({ type: 'appResp', from: this.id, to: m.from, index: this.log.committed }));
    }
  }

  /** Installs a snapshot from the leader; false if we already have what it holds. */
  private restore(snap: Snapshot): boolean {
    const { index, term } = snap.metadata;
    if (index <= this.log.committed) return false;
    if (this.log.matchTerm(index, term)) {
      // We hold the entry already: the snapshot only tells us it is committed.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snap);
    this.setConfState(snap.metadata.confState);
    return true;
  }

  // ---------------------------------------------------------------- leader: replication

  private appendEntries(ents: Entry[]): { index: number; term: number } {
    let index = this.log.lastIndex();
    for (const e of ents) {
      e.term = this.term;
      e.index = ++index;
    }
    this.log.append(ents);
    // The leader's own copy counts towards the quorum only once it is on disk
    // (entriesPersisted), so the appends may leave before the leader's fsync
    // and both disks write in parallel (dissertation §10.2.1).
    return { index: this.log.lastIndex(), term: this.term };
  }

  /**
   * The application made our log durable up to (index, term). The leader's
   * own progress moves only here: an entry is committed when a quorum has it
   * on disk, the leader included.
   */
  entriesPersisted(index: number, term: number): void {
    if (this.role !== 'leader' || this.log.term(index) !== term) return;
    if (!this.progress.get(this.id)?.maybeUpdate(index)) return;
    if (this.maybeCommit()) this.bcastAppend();
  }

  /** Raft §5.4.2: advance commit to the quorum match index, but only if that entry is of our term. */
  private maybeCommit(): boolean {
    const index = committedIndex(this.voters, (id) => this.progress.get(id)?.match ?? 0);
    const wasCommittedInTerm = this.committedEntryInCurrentTerm();
    if (!this.log.maybeCommit(index, this.term)) return false;
    if (!wasCommittedInTerm) this.releaseReadsBeforeCommit();
    return true;
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private bcastAppend(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private sendAppendsWhilePossible(to: NodeId): void {
    // Bounded by inflights: each send in replicate state fills one slot.
    for (let i = 0; i < this.maxInflightMsgs && this.maybeSendAppend(to, false); i++) {}
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Sends the next entries (or a snapshot) to `to`; false if nothing was sent. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    let ents: Entry[] | undefined;
    if (prevTerm !== undefined) {
      try {
        ents = this.log.entriesFrom(pr.next, this.maxSizePerMsgBytes);
      } catch (err) {
        if (!(err instanceof RaftError && err.code === 'compacted')) throw err;
      }
    }
    if (prevTerm === undefined || ents === undefined) {
      // The entries the follower needs are compacted: send a snapshot (§7).
      const snap = this.log.snapshot();
      assert(snap.metadata.index > 0, 'need a snapshot but none exists');
      this.send(message({ type: 'snap', from: this.id, to, snapshot: snap }));
      pr.becomeSnapshot(snap.metadata.index);
      return true;
    }
    if (!sendIfEmpty && ents.length === 0) return false;
    this.send(
      message({
        type: 'app',
        from: this.id,
        to,
        index: prevIndex,
        logTerm: prevTerm,
        entries: ents,
        commit: this.log.committed,
      }),
    );
    pr.sentEntries(prevIndex + ents.length, ents.length);
    return true;
  }

  private bcastHeartbeat(): void {
    const round = this.reads.startedRound;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit past what it is known to hold.
      const commit = Math.min(pr.match, this.log.committed);
      this.send(
        message({
          type: 'heartbeat',
          from: this.id,
          to: id,
          commit,
          ...(round > 0 ? { readRound: round } : {}),
        }),
      );
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(message({ type: 'timeoutNow', from: this.id, to }));
  }

  // ---------------------------------------------------------------- proposals

  /** Appends normal entries with these payloads (one batch). */
  propose(payloads: Uint8Array[]): ProposeResult {
    const refusal = this.proposalRefusal();
    if (refusal) return refusal;
    const ents: Entry[] = payloads.map((data) => ({ term: 0, index: 0, type: 'normal', data }));
    const { index, term } = this.appendEntries(ents);
    this.bcastAppend();
    return { ok: true, index, term };
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    const refusal = this.proposalRefusal();
    if (refusal) return refusal;
    if (this.pendingConfIndex > this.log.applied) {
      return {
        ok: false,
        code: 'proposal_dropped',
        reason: 'a membership change is already in progress',
      };
    }
    const problem = confChangeProblem(this.confState(), cc);
    if (problem) return { ok: false, code: 'proposal_dropped', reason: problem };
    const { index, term } = this.appendEntries([
      { term: 0, index: 0, type: 'confChange', data: encodeConfChange(cc) },
    ]);
    this.pendingConfIndex = index;
    this.bcastAppend();
    return { ok: true, index, term };
  }

  private proposalRefusal(): ProposeResult | undefined {
    if (this.role !== 'leader') return { ok: false, code: 'not_leader', leader: this.lead };
    if (this.leadTransferee !== NONE) {
      return { ok: false, code: 'proposal_dropped', reason: 'leadership transfer in progress' };
    }
    if (this.removedHandOverTicks > 0) {
      return {
        ok: false,
        code: 'proposal_dropped',
        reason: 'this leader was removed from the cluster and is handing over',
      };
    }
    return undefined;
  }

  // ---------------------------------------------------------------- leadership transfer

  transferLeadership(to: NodeId): ProposeResult | { ok: true } {
    if (this.role !== 'leader') return { ok: false, code: 'not_leader', leader: this.lead };
    if (to === this.id) return { ok: true };
    if (!this.isVoter(to))
      return { ok: false, code: 'proposal_dropped', reason: `${to} is not a voter` };
    if (this.leadTransferee === to) return { ok: true };
    this.leadTransferee = to;
    // The transfer must finish within one election timeout or is abandoned.
    this.electionElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to);
    return { ok: true };
  }

  // ---------------------------------------------------------------- ReadIndex

  /** Requests a read index for `ctx`; the answer arrives as a ReadState. False if no leader is known. */
  readIndex(ctx: string): { ok: true } | { ok: false; code: 'not_leader'; leader: NodeId } {
    if (this.role === 'leader') {
      this.handleReadRequest(this.id, ctx);
      return { ok: true };
    }
    if (this.lead === NONE || this.role !== 'follower')
      return { ok: false, code: 'not_leader', leader: this.lead };
    this.send(message({ type: 'readIndex', from: this.id, to: this.lead, readCtx: ctx }));
    return { ok: true };
  }

  private handleReadRequest(from: NodeId, ctx: string): void {
    // §6.4 step 1: until an entry of this term is committed, our commit index may be behind.
    if (!this.committedEntryInCurrentTerm()) {
      this.reads.beforeCommit.push({ ctx, from });
      return;
    }
    const read = { index: this.log.committed, ctx, from, round: 0 };
    if (this.voters.length === 1 && this.isVoter(this.id)) {
      this.releaseRead(read);
      return;
    }
    // §6.4 step 2–3: confirm leadership with a heartbeat round; batch reads per round.
    this.reads.pending.push(read);
    if (!this.reads.roundInFlight()) this.startReadRound();
  }

  private startReadRound(): void {
    this.reads.startRound();
    this.bcastHeartbeat();
  }

  private maybeConfirmReads(): void {
    const started = this.reads.startedRound;
    const confirmed = committedIndex(this.voters, (id) =>
      id === this.id ? started : (this.progress.get(id)?.ackedReadRound ?? 0),
    );
    if (!Number.isFinite(confirmed)) return;
    for (const read of this.reads.confirm(confirmed)) this.releaseRead(read);
    if (!this.reads.roundInFlight() && this.reads.hasUnassigned()) this.startReadRound();
  }

  private releaseReadsBeforeCommit(): void {
    const waiting = this.reads.beforeCommit;
    this.reads.beforeCommit = [];
    for (const { ctx, from } of waiting) this.handleReadRequest(from, ctx);
  }

  private releaseRead(read: { index: number; ctx: string; from: NodeId }): void {
    if (read.from === this.id) this.readStates.push({ index: read.index, ctx: read.ctx });
    else
      this.send(
        message({
          type: 'readIndexResp',
          from: this.id,
          to: read.from,
          index: read.index,
          readCtx: read.ctx,
        }),
      );
  }

  // ---------------------------------------------------------------- membership

  /** Applies a committed conf change (called once the application applied its entry). */
  applyConfChange(cc: ConfChange): ConfState {
    const next = applyConfChangeTo(this.confState(), cc);
    this.setConfState(next);
    if (this.role !== 'leader') return next;
    if (!this.isVoter(this.id)) {
      // A removed (or demoted) leader lingers for an election timeout before it hands over:
      // a voter that never hears that its removal committed keeps counting the old
      // configuration, and if that voter holds the longest log, no one can win an election
      // (it needs the members that left; the others cannot outvote its log). Its heartbeats
      // carry the commit index; the broadcast below tells every voter at once.
      if (this.removedHandOverTicks === 0) {
        this.removedHandOverTicks = this.electionTicks;
        this.bcastAppend();
      }
      return next;
    }
    if (this.leadTransferee !== NONE && !this.isVoter(this.leadTransferee))
      this.leadTransferee = NONE;
    // The quorum changed: something may now be committed, and new members need the log.
    if (this.maybeCommit()) this.bcastAppend();
    else
      for (const [id, pr] of this.progress)
        if (id !== this.id && pr.match === 0) this.sendAppend(id);
    this.maybeConfirmReads();
    return next;
  }

  /** A removed leader hands over to the most caught-up voter and steps down. */
  private handOverAndStepDown(): void {
    let best: NodeId = NONE;
    let bestMatch = -1;
    for (const id of this.voters) {
      const match = this.progress.get(id)?.match ?? 0;
      if (match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    if (best !== NONE && bestMatch === this.log.lastIndex()) this.sendTimeoutNow(best);
    this.becomeFollower(this.term, NONE);
  }

  applyConfChangeEntry(entry: Entry): ConfState {
    return this.applyConfChange(decodeConfChange(entry.data));
  }

  /** Switches to a configuration, keeping progress of members that stay. */
  private setConfState(cs: ConfState): void {
    this.voters = [...cs.voters].sort();
    this.learners = [...cs.learners].sort();
    const last = this.log.lastIndex();
    const next = new Map<NodeId, Progress>();
    for (const id of [...this.voters, ...this.learners]) {
      const isLearner = this.learners.includes(id);
      let pr = this.progress.get(id);
      if (!pr) {
        pr = new Progress(last + 1, this.maxInflightMsgs, isLearner);
        if (id === this.id) pr.match = this.log.lastStableIndex();
      }
      pr.isLearner = isLearner;
      next.set(id, pr);
    }
    this.progress = next;
  }

  // ---------------------------------------------------------------- output

  private send(m: Message): void {
    if (m.term === 0) m.term = this.term;
    this.msgs.push(m);
  }
}
