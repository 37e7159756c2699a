import type { Logger } from 'pino';
import { CommandNotUnderstoodError } from '../kv/errors.js';
import type { CommandResult } from '../kv/results.js';
import { isSkipped } from '../kv/results.js';
import { KvStateMachine, type KvStateMachineOptions } from '../kv/state-machine.js';
import {
  type ConfChange,
  type ConfState,
  decodeConfChange,
  type Entry,
  type Message,
  NONE,
  type Raft,
  RawNode,
  type Ready,
  SeededRandom,
  type Snapshot,
  type Status,
} from '../raft/index.js';
import type { MemberRecord } from '../storage/index.js';
import { UpgradeNeededError, understandsServerCommand } from './cluster-version.js';
import { DeferredState } from './deferred-state.js';
import { ServerError } from './errors.js';
import { IndexWaiter } from './index-waiter.js';
import type { Member, MemberTable } from './members.js';
import type { CoreClock, CoreStorage, CoreTiming, CoreTransport } from './ports.js';
import { ProposalWaits } from './proposal-waits.js';
import { ReadBatcher } from './read-batcher.js';
import {
  decodeNodeSnapshot,
  decodeServerCommand,
  encodeNodeSnapshot,
  isServerCommand,
} from './server-commands.js';
import { VERSION } from './version.js';
import type { WriteStamps } from './write-accounting.js';

export interface NodeCoreConfig {
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** Writes proposed but not applied, and their bytes, beyond which proposals are refused (429). */
  maxPendingProposals: number;
  maxPendingProposalBytes: number;
  maxSizePerMsgBytes?: number;
  maxInflightMsgs?: number;
}

export interface NodeCoreDeps {
  id: string;
  storage: CoreStorage;
  transport: CoreTransport;
  clock: CoreClock;
  /** Seeds the randomized election timeouts. */
  randomSeed: number;
  /** The state machine as loaded from storage (applied index = storage.appliedIndex()). */
  kv: KvStateMachine;
  /** How to build a state machine from an installed snapshot. */
  kvOptions: KvStateMachineOptions;
  members: MemberTable;
  log: Logger;
  config: NodeCoreConfig;
  /** Latency accounting of the proposals made here (write-accounting.ts); none in the simulator. */
  timing?: CoreTiming;
}

/** What the core tells the modules around it. Listeners run synchronously, in order. */
export interface CoreEvents {
  tick: [];
  softState: [lead: string, role: string, term: number];
  /** Every applied entry, no-ops and conf changes included (the simulator's checkers watch these). */
  entryApplied: [entry: Entry];
  /** The result of an applied KV command. */
  result: [result: CommandResult, entry: Entry];
  /** A batch of committed entries was applied, in `ms`. */
  entriesApplied: [ms: number, count: number];
  confChangeApplied: [
    entry: Entry,
    cc: ConfChange,
    before: Member | undefined,
    confState: ConfState,
  ];
  /** The member table changed (conf change, attributes, snapshot). */
  membersChanged: [];
  snapshotInstalled: [info: { from: string; index: number; sizeBytes: number; ms: number }];
  snapshotSending: [to: string, index: number, sizeBytes: number];
  diskSynced: [ms: number, entries: readonly Entry[]];
  proposed: [count: number];
  proposalsRefused: [count: number];
  /** Proposals whose outcome could not be told (superseded, skipped by a snapshot, stopped). */
  proposalsFailed: [count: number];
  removed: [reason: string];
  fatal: [err: unknown];
}

type Listener<K extends keyof CoreEvents> = (...args: CoreEvents[K]) => void;

interface QueuedProposal {
  data: Uint8Array;
  resolve: (r: CommandResult) => void;
  reject: (e: unknown) => void;
  /** When propose() was called (clock ms), for the latency accounting. */
  proposedMs: number;
  stamps: WriteStamps | undefined;
}

/** Most Readys handled in one go: a node under constant load yields to the event loop between batches. */
const READY_ROUNDS_MAX = 64;
/** How many pending membership changes one wait for them to settle sees out. */
const CONF_CHANGE_WAITS_MAX = 8;

/**
 * The node core: one Raft member's Ready loop over its ports (storage,
 * transport, clock). It owns the ordering the Ready contract demands —
 * start the synced write, let the leader's appends leave, apply what is
 * committed, finish the write, send what depends on it, serve reads, advance —
 * the state machine it applies to, proposal and read waits, and membership as
 * the log says it. Everything else (HTTP, forwarding, lease expiry, compaction
 * policy, status) plugs into its events. Production and the simulator run this
 * same class; only the ports differ.
 */
export class NodeCore {
  readonly id: string;
  readonly log: Logger;
  readonly clock: CoreClock;
  readonly members: MemberTable;
  private readonly storage: CoreStorage;
  private readonly transport: CoreTransport;
  private readonly config: NodeCoreConfig;
  private readonly kvOptions: KvStateMachineOptions;
  private readonly raw: RawNode;
  private kvState: KvStateMachine;
  private confStateNow: ConfState;
  private readonly proposals: ProposalWaits<CommandResult>;
  private readonly timing: CoreTiming | undefined;
  /** The commit index as of the last look: proposals up to it have their commit stamped. */
  private commitSeen = 0;
  private readonly appliedWaits: IndexWaiter;
  /** Raft's own applied index, which moves only once a Ready is advanced (after appliedWaits). */
  private readonly raftAppliedWaits: IndexWaiter;
  private readonly revisionWaits: IndexWaiter;
  private readonly reads: ReadBatcher;
  /** The commit-only hard state and applied state that ride with the next write. */
  private readonly deferred = new DeferredState();
  private readonly listeners = new Map<keyof CoreEvents, Listener<never>[]>();
  private readonly readyHooks: (() => Promise<void> | void)[] = [];
  private queued: QueuedProposal[] = [];
  private queuedBytes = 0;
  private proposeScheduled = false;
  private readyScheduled = false;
  private readyRunning = false;
  private stopTicks: (() => void) | undefined;
  private stoppingNow = false;
  private failedNow = false;
  private failure: unknown;
  private removedReason: string | undefined;
  /** Applied its own removal as leader: removed once Raft has handed over. */
  private removedWhileLeading: string | undefined;

  constructor(deps: NodeCoreDeps) {
    this.id = deps.id;
    this.log = deps.log;
    this.clock = deps.clock;
    this.members = deps.members;
    this.storage = deps.storage;
    this.transport = deps.transport;
    this.config = deps.config;
    this.kvOptions = deps.kvOptions;
    this.timing = deps.timing;
    this.proposals = new ProposalWaits<CommandResult>(
      (count) => this.emit('proposalsFailed', count),
      () => this.clock.now(),
      deps.timing,
    );
    this.kvState = deps.kv;
    this.confStateNow = deps.storage.initialState().confState;
    this.appliedWaits = new IndexWaiter(deps.kv.appliedIndex);
    this.revisionWaits = new IndexWaiter(deps.kv.revision);
    this.raw = new RawNode({
      id: deps.id,
      storage: deps.storage,
      applied: deps.storage.appliedIndex(),
      electionTicks: deps.config.electionTicks,
      heartbeatTicks: deps.config.heartbeatTicks,
      random: new SeededRandom(deps.randomSeed),
      maxSizePerMsgBytes: deps.config.maxSizePerMsgBytes ?? 1024 * 1024,
      maxInflightMsgs: deps.config.maxInflightMsgs ?? 256,
    });
    this.raftAppliedWaits = new IndexWaiter(this.raw.raft.log.applied);
    this.reads = new ReadBatcher(
      deps.id,
      (ctx) => {
        const ok = this.raw.readIndex(ctx).ok;
        this.scheduleReady();
        return ok;
      },
      (index) => this.appliedWaits.waitFor(index),
      deps.config.electionTicks,
      (fn) => deps.clock.soon(fn),
    );
  }

  // ------------------------------------------------------------------ events

  on<K extends keyof CoreEvents>(event: K, listener: Listener<K>): () => void {
    const list = this.listeners.get(event) ?? [];
    list.push(listener as Listener<never>);
    this.listeners.set(event, list);
    return () => {
      const i = list.indexOf(listener as Listener<never>);
      if (i >= 0) list.splice(i, 1);
    };
  }

  private emit<K extends keyof CoreEvents>(event: K, ...args: CoreEvents[K]): void {
    const list = this.listeners.get(event);
    if (!list) return;
    for (const listener of [...list]) (listener as Listener<K>)(...args);
  }

  /**
   * Work done at the end of every Ready round, awaited before the next one
   * (the snapshot policy compacts the log here, between writes).
   */
  addReadyHook(hook: () => Promise<void> | void): void {
    this.readyHooks.push(hook);
  }

  // ------------------------------------------------------------------ state

  /** The state machine as of now (replaced when a snapshot is installed). */
  get kv(): KvStateMachine {
    return this.kvState;
  }

  /** The Raft state, read-only by convention: role, term, lead, log, progress. */
  get raft(): Raft {
    return this.raw.raft;
  }

  get confState(): ConfState {
    return this.confStateNow;
  }

  get isLeader(): boolean {
    return this.raw.raft.role === 'leader';
  }

  /** The leader this member knows of, or undefined. */
  get leader(): string | undefined {
    const lead = this.raw.raft.lead;
    return lead === NONE ? undefined : lead;
  }

  status(): Status {
    return this.raw.status();
  }

  /** Proposals waiting to be applied or proposed. */
  get pendingProposals(): number {
    return this.proposals.size + this.queued.length;
  }

  /** Stopped: by stop(), a failed disk write or removal. */
  get stopping(): boolean {
    return this.stoppingNow;
  }

  /** A disk write or the Ready loop failed: the core stopped (fail-stop). */
  get failed(): boolean {
    return this.failedNow;
  }

  /** What stopped the core when it failed (a failed disk write, an entry it cannot apply). */
  get failureReason(): string | undefined {
    if (!this.failedNow) return undefined;
    return this.failure instanceof Error ? this.failure.message : String(this.failure);
  }

  /** Why this member knows it was removed from the cluster, or undefined. */
  get removed(): string | undefined {
    return this.removedReason;
  }

  // ------------------------------------------------------------------ inputs

  /** Starts ticking and handles whatever is ready. */
  start(): void {
    this.stopTicks = this.clock.every(this.config.tickMs, () => this.tick());
    this.scheduleReady();
  }

  private tick(): void {
    this.raw.tick();
    this.reads.onTick();
    this.flushDeferred();
    this.emit('tick');
    this.scheduleReady();
  }

  /** A message from a peer. */
  step(m: Message): void {
    if (this.stoppingNow) return;
    this.raw.step(m);
    this.noteCommit();
    this.scheduleReady();
  }

  reportUnreachable(to: string): void {
    this.raw.reportUnreachable(to);
  }

  reportSnapshot(to: string, ok: boolean): void {
    this.raw.reportSnapshot(to, ok);
    this.scheduleReady();
  }

  transferLeadership(to: string): { ok: boolean; reason?: string | undefined } {
    const r = this.raw.transferLeadership(to);
    this.scheduleReady();
    return r.ok ? r : { ok: false, reason: 'reason' in r ? r.reason : undefined };
  }

  /**
   * Proposes a command's bytes (this member must lead) and resolves with its
   * applied result. All proposals of one turn of the event loop go into one
   * log append. Refused at once (429) beyond the pending limits.
   */
  propose(data: Uint8Array, stamps?: WriteStamps): Promise<CommandResult> {
    if (
      this.proposals.size + this.queued.length >= this.config.maxPendingProposals ||
      this.queuedBytes + data.byteLength > this.config.maxPendingProposalBytes
    ) {
      this.emit('proposalsRefused', 1);
      return Promise.reject(
        new ServerError('too_many_requests', 'too many writes in flight', { retryAfterSeconds: 1 }),
      );
    }
    return new Promise((resolve, reject) => {
      this.queued.push({ data, resolve, reject, proposedMs: this.clock.now(), stamps });
      this.queuedBytes += data.byteLength;
      if (!this.proposeScheduled) {
        this.proposeScheduled = true;
        this.clock.soon(() => this.flushProposals());
      }
    });
  }

  /** Proposes what is queued now (normally done once per turn). */
  flushProposals(): void {
    this.proposeScheduled = false;
    const batch = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    if (batch.length === 0) return;
    if (this.stoppingNow) {
      const err = this.unavailableError();
      for (const p of batch) p.reject(err);
      return;
    }
    const result = this.raw.proposeBatch(batch.map((p) => p.data));
    if (!result.ok) {
      // Never proposed: a definite "not applied".
      const err =
        result.code === 'not_leader'
          ? new ServerError('unavailable', 'leadership changed before the write was proposed', {
              retryAfterSeconds: 1,
            })
          : new ServerError('unavailable', result.reason, { retryAfterSeconds: 1 });
      for (const p of batch) p.reject(err);
      return;
    }
    const first = result.index - batch.length + 1;
    batch.forEach((p, i) => {
      this.proposals
        .register(first + i, result.term, p.proposedMs, p.stamps)
        .then(p.resolve, p.reject);
    });
    this.emit('proposed', batch.length);
    // This is already a turn of its own (proposals batch per turn): the append
    // starts now rather than one more turn of the event loop later.
    void this.runReady();
  }

  /** Proposes one membership change; resolves once it is applied here. */
  proposeConfChange(cc: ConfChange): Promise<void> {
    const r = this.raw.proposeConfChange(cc);
    if (!r.ok) {
      return Promise.reject(
        new ServerError('unavailable', r.code === 'not_leader' ? 'leadership changed' : r.reason, {
          retryAfterSeconds: 1,
        }),
      );
    }
    const applied = this.proposals.register(r.index, r.term, this.clock.now());
    this.scheduleReady();
    return applied.then(() => undefined);
  }

  /**
   * Resolves once no membership change is pending here: the last one this
   * leader proposed or found in its log, and its term's first entry, are
   * applied as Raft counts it. Raft takes one change at a time; a caller that
   * waits for this first is not refused for asking while another is in flight.
   * (A new term in the meantime sets a new pending index: hence the loop.)
   */
  async confChangesSettled(): Promise<void> {
    for (let i = 0; i < CONF_CHANGE_WAITS_MAX && !this.stoppingNow; i++) {
      const pending = this.raw.raft.pendingConfIndex;
      if (pending <= this.raw.raft.log.applied) return;
      await this.raftAppliedWaits.waitFor(pending);
    }
  }

  /** Resolves when a read started now may be served from this member's state (ReadIndex). */
  readIndex(): Promise<void> {
    if (this.stoppingNow) return Promise.reject(this.unavailableError());
    return this.reads.read();
  }

  waitApplied(index: number): Promise<void> {
    return this.appliedWaits.waitFor(index);
  }

  waitRevision(revision: number): Promise<void> {
    return this.revisionWaits.waitFor(revision);
  }

  // ------------------------------------------------------------------ Ready loop

  scheduleReady(): void {
    if (this.readyScheduled || this.stoppingNow) return;
    this.readyScheduled = true;
    this.clock.soon(() => {
      this.readyScheduled = false;
      void this.runReady();
    });
  }

  private async runReady(): Promise<void> {
    if (this.readyRunning) return;
    this.readyRunning = true;
    try {
      for (let i = 0; i < READY_ROUNDS_MAX && !this.stoppingNow && this.raw.hasReady(); i++) {
        const rd = this.raw.ready();
        await this.handleReady(rd);
        this.raw.advance(rd);
        this.raftAppliedWaits.advance(this.raw.raft.log.applied);
        this.noteCommit(); // the leader counts its own copy once it is synced
        // Removed as leader: once Raft handed over (its TimeoutNow is sent above), stop.
        if (this.removedWhileLeading !== undefined && this.raw.raft.role !== 'leader')
          this.markRemoved(this.removedWhileLeading);
        // A background write may have failed meanwhile: nothing more is written then.
        for (const hook of this.readyHooks) if (!this.stoppingNow) await hook();
      }
    } catch (err) {
      this.fail(
        err instanceof CommandNotUnderstoodError ? new UpgradeNeededError(err) : err,
        'the Ready loop failed; stopping this node',
      );
      return;
    } finally {
      this.readyRunning = false;
    }
    if (this.raw.hasReady()) this.scheduleReady();
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState)
      this.emit('softState', rd.softState.lead, rd.softState.role, this.raw.raft.term);
    // 1. Persist before anything that depends on it leaves this node. The applied
    // state of earlier Readys rides along in the same batch.
    let written: Promise<void> | undefined;
    if (rd.snapshot) {
      this.flushDeferred();
      await this.installSnapshot(rd);
    } else if (rd.mustSync) {
      const startMs = this.clock.now();
      const stored = this.proposals.stored(rd.entries, startMs);
      written = this.storage
        .persistReady(
          this.deferred.withHardState(rd),
          true,
          this.deferred.takeApplied(this.kvState),
        )
        .then(() => {
          const ms = this.clock.now() - startMs;
          if (stored > 0) this.timing?.proposalsSynced(ms, stored);
          this.emit('diskSynced', ms, rd.entries);
        });
    } else if (rd.hardState) {
      // Only the commit index moved: nothing sent or applied depends on it being on disk
      // (after a restart the leader tells the commit again), so it waits for the next write.
      this.deferred.commitMoved(rd.hardState);
    }
    // 0. A leader's replication traffic leaves now, while our own write runs
    // (followers write while we do; the leader counts itself only once synced).
    if (rd.eagerMessages.length > 0)
      this.transport.sendNow(rd.eagerMessages.map((m) => this.withSnapshotData(m)));
    // 3 before 2. Committed entries are on the disks of a quorum already, so they are
    // applied (and answered) while our own write is in flight; their applied state
    // goes with the next write.
    if (rd.committedEntries.length > 0) {
      // Except a membership change: it is applied only once this node's commit index
      // covering it is on disk. Members count votes by the configuration they applied;
      // one that forgot in a power loss that a removal committed counts the old voters
      // again, and once the removed member has left, it may never win an election.
      if (rd.committedEntries.some((e) => e.type === 'confChange'))
        await (written ?? this.syncCommit());
      const startMs = this.clock.now();
      this.applyEntries(rd.committedEntries, rd.confState, startMs);
      this.emit('entriesApplied', this.clock.now() - startMs, rd.committedEntries.length);
    }
    if (written) await written;
    // 2. Send what promises our write is durable.
    if (rd.messages.length > 0)
      this.transport.sendNow(rd.messages.map((m) => this.withSnapshotData(m)));
    // 4. Reads whose index is known.
    for (const rs of rd.readStates) this.reads.onReadState(rs);
  }

  /**
   * Stamps the proposals the commit index passed since the last look (latency
   * accounting). Raft moves the commit when it steps an acknowledgement and, for
   * the leader's own copy, in advance(): both are followed by a call here.
   */
  private noteCommit(): void {
    const committed = this.raw.raft.log.committed;
    if (committed <= this.commitSeen) return;
    this.proposals.committed(this.commitSeen, committed, this.clock.now());
    this.commitSeen = committed;
  }

  /** A 'snap' message carries the state machine as of now, with metadata to match. */
  private withSnapshotData(m: Message): Message {
    if (m.type !== 'snap' || !m.snapshot) return m;
    const index = this.kvState.appliedIndex;
    const term = this.raw.raft.log.term(index) ?? m.snapshot.metadata.term;
    const snapshot: Snapshot = {
      metadata: { index, term, confState: this.confStateNow },
      data: encodeNodeSnapshot(
        this.kvState.snapshot(),
        this.members.list(),
        this.members.removedIds(),
      ),
    };
    this.emit('snapshotSending', m.to, index, snapshot.data.byteLength);
    return { ...m, snapshot };
  }

  private async installSnapshot(rd: Ready): Promise<void> {
    const snap = rd.snapshot!;
    const startMs = this.clock.now();
    const { kv: kvData, members, removed } = decodeNodeSnapshot(snap.data);
    const restored = KvStateMachine.restore(kvData, snap.metadata.index, {
      ...this.kvOptions,
      watchHub: this.kvState.watches,
    });
    // One atomic batch: log replaced, hard state, and the state machine with its applied index.
    await this.storage.persistReady(this.deferred.withHardState(rd), true, {
      installRecords: restored.records(),
    });
    this.members.addRemoved(removed);
    await this.storage.saveMembers(members, this.members.removedIds());
    this.kvState = restored;
    this.confStateNow = snap.metadata.confState;
    this.replaceMembers(members);
    this.emit('membersChanged');
    if (this.members.isRemoved(this.id))
      this.markRemoved('the snapshot it installed lists it as removed');
    this.appliedWaits.advance(restored.appliedIndex);
    this.revisionWaits.advance(restored.revision);
    this.proposals.skippedTo(snap.metadata.index);
    this.emit('snapshotInstalled', {
      from: this.raw.raft.lead,
      index: snap.metadata.index,
      sizeBytes: snap.data.byteLength,
      ms: this.clock.now() - startMs,
    });
  }

  /** `applyingMs`: when this batch started applying (latency accounting). */
  private applyEntries(
    entries: Entry[],
    confState: ConfState | undefined,
    applyingMs: number,
  ): void {
    let membersChanged = false;
    for (const e of entries) {
      if (e.type === 'confChange') {
        membersChanged = this.applyConfChange(e) || membersChanged;
        this.applyNoop(e, applyingMs);
        continue;
      }
      if (isServerCommand(e.data)) {
        membersChanged = this.applyServerCommand(e.index, e.data) || membersChanged;
        this.applyNoop(e, applyingMs);
        continue;
      }
      const result = this.kvState.apply(e.index, e.data);
      if (isSkipped(result)) continue;
      this.emit('entryApplied', e);
      this.emit('result', result, e);
      this.proposals.applied(e.index, e.term, result, applyingMs);
    }
    if (confState) this.confStateNow = confState;
    // Reads are served from memory. The applied state is only what a restart
    // resumes from (the log holds the rest), so it waits, unsynced, for the next
    // log write, the next tick, a compaction or the stop.
    this.deferred.entriesApplied(confState);
    this.appliedWaits.advance(this.kvState.appliedIndex);
    this.revisionWaits.advance(this.kvState.revision);
    if (membersChanged) {
      this.inBackground(this.storage.saveMembers(this.members.list(), this.members.removedIds()));
      this.emit('membersChanged');
    }
  }

  /** Entries that are not KV commands still move the state machine's applied index. */
  private applyNoop(e: Entry, applyingMs: number): void {
    const noop = this.kvState.apply(e.index, new Uint8Array());
    if (isSkipped(noop)) return;
    this.emit('entryApplied', e);
    this.proposals.applied(e.index, e.term, noop, applyingMs);
  }

  private applyConfChange(e: Entry): boolean {
    const cc = decodeConfChange(e.data);
    this.emit('confChangeApplied', e, cc, this.members.get(cc.nodeId), this.confStateNow);
    if (cc.type === 'removeNode') {
      this.members.remove(cc.nodeId);
      if (cc.nodeId !== this.id) this.transport.removePeer(cc.nodeId);
      else if (this.raw.raft.role === 'leader')
        // Raft keeps it leading for an election timeout so every voter learns the removal
        // committed (raft.ts, handOverAndStepDown); it is removed once it steps down.
        this.removedWhileLeading = `it applied its own removal (entry ${e.index})`;
      else this.markRemoved(`it applied its own removal (entry ${e.index})`);
      return true;
    }
    if (cc.context) {
      const member = JSON.parse(cc.context) as Member;
      this.members.upsert(member);
      if (member.id !== this.id && member.peerUrls[0])
        this.transport.addPeer(member.id, member.peerUrls[0]);
      return true;
    }
    return false;
  }

  private applyServerCommand(index: number, data: Uint8Array): boolean {
    const decoded = decodeServerCommand(data, (type) => understandsServerCommand(type));
    if (!decoded.ok) {
      if (decoded.newer) throw new CommandNotUnderstoodError(index, decoded.error);
      this.log.error({ index, reason: decoded.error }, 'skipped an unreadable server command');
      return false;
    }
    const { cmd } = decoded;
    this.members.setAttributes(cmd.id, cmd.clientUrls, cmd.version);
    return true;
  }

  private replaceMembers(records: MemberRecord[]): void {
    for (const m of this.members.list()) {
      if (!records.some((r) => r.id === m.id)) {
        this.members.remove(m.id);
        this.transport.removePeer(m.id);
      }
    }
    for (const r of records) {
      this.members.upsert(r);
      if (r.id !== this.id && r.peerUrls[0]) this.transport.addPeer(r.id, r.peerUrls[0]);
    }
  }

  /**
   * Writes what waits for the next log write — the commit-only hard state and
   * the applied state — on its own (storage keeps writes in call order).
   */
  flushDeferred(): void {
    const all = this.deferred.takeAll(this.kvState);
    if (all) this.inBackground(this.storage.persistReady(all.ready, false, all.applied));
  }

  /** Puts the newest commit index handed to the disk on it, synced (storage keeps call order). */
  private async syncCommit(): Promise<void> {
    const rd = this.deferred.commitToSync();
    if (rd) await this.storage.persistReady(rd, true);
  }

  /**
   * Records a snapshot at the applied index and drops the log before
   * `applied - keepEntries` (the snapshot policy calls it between Ready rounds).
   * Returns the snapshot's index and term, or undefined when the term of the
   * applied entry is not known here.
   */
  async compact(keepEntries: number): Promise<{ index: number; term: number } | undefined> {
    if (this.stoppingNow) return undefined;
    const index = this.kvState.appliedIndex;
    const term = this.raw.raft.log.term(index);
    if (term === undefined) return undefined;
    this.flushDeferred(); // compaction drops log entries only below what storage has applied
    await this.storage.compact(index, term, this.confStateNow, keepEntries);
    return { index, term };
  }

  /** A write nobody waits for; its failure stops the node like any failed disk write. */
  private inBackground(write: Promise<unknown>): void {
    write.catch((err) => {
      if (this.stoppingNow) return;
      this.fail(err, 'a background disk write failed; stopping this node');
    });
  }

  /** Fail-stop: nothing more is written, sent, applied or acknowledged. */
  private fail(err: unknown, message: string): void {
    this.stoppingNow = true;
    this.failedNow = true;
    this.failure = err;
    this.stopTicks?.();
    this.stopTicks = undefined;
    if (err instanceof UpgradeNeededError) {
      // Nothing of the entry (or after it) was applied or acknowledged: a newer member must.
      this.log.fatal({ index: err.index, version: VERSION }, err.message);
    } else {
      // errno (ENOSPC, EIO, …) as a field, so log searches find disk-full stops by field.
      const errno = (err as { errno?: unknown } | null)?.errno;
      this.log.fatal({ err, ...(typeof errno === 'string' ? { errno } : {}) }, message);
    }
    const unknown = new ServerError('timeout', 'this member stopped: outcome unknown');
    this.proposals.rejectAll(unknown);
    for (const p of this.queued) p.reject(this.unavailableError());
    this.queued = [];
    this.reads.rejectAll(this.unavailableError());
    this.emit('fatal', err);
  }

  /**
   * This member learned it was removed from the cluster: it stops ticking (a
   * removed member must not campaign) and rejects what it holds.
   */
  markRemoved(reason: string): void {
    if (this.removedReason !== undefined || this.stoppingNow) return;
    this.removedReason = reason;
    this.stopTicks?.();
    this.stopTicks = undefined;
    this.proposals.rejectAll(
      new ServerError(
        'timeout',
        'this member was removed from the cluster before the write was applied here: outcome unknown',
      ),
    );
    const refused = new ServerError(
      'unavailable',
      'this member was removed from the cluster: use another member',
      { retryAfterSeconds: 1 },
    );
    for (const p of this.queued) p.reject(refused);
    this.queued = [];
    this.reads.rejectAll(refused);
    this.emit('removed', reason);
  }

  private unavailableError(): ServerError {
    return new ServerError('unavailable', 'the node is shutting down', { retryAfterSeconds: 1 });
  }

  /**
   * Stops the loop: pending proposals get "outcome unknown", queued ones and
   * reads "unavailable"; waits for a running Ready round and writes what was
   * deferred. The storage stays open until close().
   */
  async stop(): Promise<void> {
    const first = !this.stoppingNow;
    this.stoppingNow = true;
    this.stopTicks?.();
    this.stopTicks = undefined;
    this.proposals.rejectAll(
      new ServerError(
        'timeout',
        'the node shut down before the write was applied: outcome unknown',
      ),
    );
    for (const p of this.queued) p.reject(this.unavailableError());
    this.queued = [];
    this.reads.rejectAll(this.unavailableError());
    for (let i = 0; i < 200 && this.readyRunning; i++)
      await new Promise<void>((r) => this.clock.after(5, r));
    if (first && !this.failedNow) this.flushDeferred();
  }

  /** stop(), then closes the storage (after the caller closed what feeds the core). */
  async close(): Promise<void> {
    await this.stop();
    if (this.closed) return;
    this.closed = true;
    await this.storage.close();
  }

  private closed = false;
}
