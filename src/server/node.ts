import { randomInt } from 'node:crypto';
import type tls from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Command } from '../kv/commands.js';
import { encodeCommand } from '../kv/commands.js';
import { CommandNotUnderstoodError } from '../kv/errors.js';
import type { RevisionChange } from '../kv/mvcc/key-value.js';
import type { CommandResult } from '../kv/results.js';
import { isSkipped } from '../kv/results.js';
import { KvStateMachine } from '../kv/state-machine.js';
import {
  type ConfChange,
  type ConfState,
  decodeConfChange,
  type Entry,
  type Message,
  NONE,
  RawNode,
  type Ready,
  SeededRandom,
  type Snapshot,
} from '../raft/index.js';
import { LevelRaftStorage, type MemberRecord } from '../storage/index.js';
import {
  httpsServerOptions,
  logRefusedHandshakes,
  serveReloads,
  type TlsMaterial,
  undiciConnect,
} from '../tls/index.js';
import { type FaultFilter, HttpTransport } from '../transport/index.js';
import { type BackupHeader, encodeBackup } from './backup.js';
import {
  ClusterVersionGate,
  UpgradeNeededError,
  understandsServerCommand,
} from './cluster-version.js';
import { type NodeConfig, parseHostPort } from './config.js';
import { initializeIfNew, kvOptions, prepareDataDir } from './data-dir-setup.js';
import { Deadlines } from './deadlines.js';
import { DeferredState } from './deferred-state.js';
import { MemberRemovedError, ServerError } from './errors.js';
import { type EventLogOptions, NodeEventLog } from './event-log.js';
import {
  type ForwardedWrite,
  ForwardedWriteReceiver,
  Forwarder,
  FRAME_FORWARD_REPLIES,
  FRAME_FORWARD_WRITES,
  forwardRoutes,
  type LeaderPeer,
} from './forwarder.js';
import { IndexWaiter } from './index-waiter.js';
import { LeaderTransfers, type TransferResult } from './leader-transfer.js';
import { LeaseKeeper } from './lease-keeper.js';
import { createLogger } from './logger.js';
import { type Member, MemberTable } from './members.js';
import { type MemberChange, Membership, type MemberView } from './membership.js';
import { NodeMetrics } from './metrics.js';
import { listenErrorMessage } from './port-check.js';
import { ProposalWaits } from './proposal-waits.js';
import { defaultQuotaBytes, QuotaKeeper } from './quota-keeper.js';
import { ReadBatcher } from './read-batcher.js';
import {
  decodeNodeSnapshot,
  decodeServerCommand,
  encodeNodeSnapshot,
  encodeServerCommand,
  isServerCommand,
  type ServerCommand,
} from './server-commands.js';
import { GracefulShutdown, type ShutdownOutcome } from './shutdown.js';
import { VERSION } from './version.js';
import { Watches } from './watches.js';

export { VERSION };

/** A lease as API.md shows it: seconds, rounded up for what is left. */
export interface LeaseView {
  id: string;
  /** Who granted it; absent when granted while auth was off. */
  owner?: string;
  ttl: number;
  remaining: number;
  keys: string[];
}

export interface NodeOptions {
  /** Fault injection on the peer transport (tests only). */
  faultFilter?: FaultFilter;
  logger?: Logger;
  /**
   * Mutual TLS on every peer link (see tls-config.ts): the peer port serves
   * https and requires a certificate that verifies against the material's CA;
   * message streams, forwarded writes, leader transfer, membership requests
   * and --join dial with it.
   */
  peerTls?: TlsMaterial;
  /** Thresholds of the event log (slow disk syncs and applies, lines per interval); tests lower them. */
  eventLog?: Pick<EventLogOptions, 'slowDiskSyncMs' | 'slowApplyMs' | 'minLineIntervalMs'>;
}

interface QueuedProposal {
  data: Uint8Array;
  resolve: (r: CommandResult) => void;
  reject: (e: unknown) => void;
}

/**
 * One raftkv member: the Raft core, its LevelDB storage, the peer transport
 * and the KV state machine, driven by a tick timer and the Ready loop
 * (send a leader's appends, start the synced write, apply what is committed,
 * finish the write, send the rest, advance). Any node serves any request: writes are
 * proposed here when leading, forwarded to the leader otherwise; linearizable
 * reads are confirmed with ReadIndex and served locally.
 */
export class RaftKvNode {
  readonly config: NodeConfig;
  readonly id: string;
  readonly clusterId: string;
  readonly log: Logger;
  readonly requestTimeoutMs: number;
  /** Deadlines of requests and proposals: one shared timer, not one per request. */
  readonly deadlines = new Deadlines();
  private readonly storage: LevelRaftStorage;
  private readonly raw: RawNode;
  private kv: KvStateMachine;
  private readonly transport: HttpTransport;
  private readonly forwarder: Forwarder;
  private readonly leaderTransfers: LeaderTransfers;
  private readonly membership: Membership;
  private readonly forwardedWrites: ForwardedWriteReceiver;
  private readonly members: MemberTable;
  /** The cluster version from the member table, and the gate on proposing commands it lacks. */
  private readonly versionGate: ClusterVersionGate;
  private readonly proposals = new ProposalWaits<CommandResult>();
  private readonly applied: IndexWaiter;
  private readonly revisions: IndexWaiter;
  private readonly reads: ReadBatcher;
  private readonly watches: Watches;
  readonly metrics: NodeMetrics;
  /** Lifecycle events as log lines (event-log.ts). */
  private readonly events: NodeEventLog;
  private readonly leaseKeeper: LeaseKeeper;
  /** The space quota: raises and clears this member's nospace alarm. */
  readonly quota: QuotaKeeper;
  /** The graceful stop: handoff, drain (see shutdown.ts). */
  private readonly shutdown: GracefulShutdown;
  /** The smallest TTL granted (etcd's rule: 1.5 election timeouts), in seconds. */
  readonly minLeaseTtlSeconds: number;
  private peerServer: FastifyInstance | undefined;
  private readonly peerTls: TlsMaterial | undefined;
  private unsubscribePeerTls: (() => void) | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private queued: QueuedProposal[] = [];
  private queuedBytes = 0;
  private proposeScheduled = false;
  private readyScheduled = false;
  private readyRunning = false;
  private stopping = false;
  private snapshotIndex: number;
  private confState: ConfState;
  private fatal: ((err: unknown) => void) | undefined;
  /** Why this member knows it was removed from the cluster; it serves nothing from then on. */
  private removedReason: string | undefined;
  /** A disk write or the Ready loop failed: the node stopped (fail-stop). */
  private failed = false;
  private readonly removedListeners = new Set<(reason: string) => void>();
  private publishing = false;
  private ticks = 0;
  /** (time, revision) samples for --auto-compaction-retention, oldest first, one a minute. */
  private revisionSamples: { atMs: number; revision: number }[] = [];
  private readonly authListeners = new Set<() => void>();
  private revisionCompactionPending = false;
  /** The commit-only hard state and applied state that ride with the next write. */
  private readonly deferred = new DeferredState();
  peerUrl = '';

  private constructor(
    config: NodeConfig,
    storage: LevelRaftStorage,
    kv: KvStateMachine,
    members: MemberTable,
    log: Logger,
    options: NodeOptions,
  ) {
    this.config = config;
    this.log = log;
    this.peerTls = options.peerTls;
    this.requestTimeoutMs = config.requestTimeoutMs;
    this.storage = storage;
    const identity = storage.identity()!;
    this.id = identity.nodeId;
    this.clusterId = identity.clusterId;
    this.kv = kv;
    this.members = members;
    this.versionGate = new ClusterVersionGate(members.list().map((m) => m.version));
    this.applied = new IndexWaiter(kv.appliedIndex);
    this.revisions = new IndexWaiter(kv.revision);
    this.snapshotIndex = storage.snapshot().metadata.index;
    this.confState = storage.initialState().confState;
    this.events = new NodeEventLog({
      log,
      selfId: this.id,
      nameOf: (id) => this.members.get(id)?.name,
      voters: () => this.raw.raft.voters,
      leadingWithoutTransfer: () =>
        this.raw.raft.role === 'leader' && this.raw.raft.leadTransferee === NONE,
      electionTimeoutMs: config.tickMs * config.electionTicks,
      ...options.eventLog,
    });
    this.raw = new RawNode({
      id: this.id,
      storage,
      applied: storage.appliedIndex(),
      electionTicks: config.electionTicks,
      heartbeatTicks: config.heartbeatTicks,
      random: new SeededRandom(randomInt(0, 2 ** 31)),
      maxSizePerMsgBytes: 1024 * 1024,
      maxInflightMsgs: 256,
    });
    this.transport = new HttpTransport({
      nodeId: this.id,
      clusterId: this.clusterId,
      onMessage: (m) => this.onPeerMessage(m),
      onAppFrame: (kind, payload) => this.onPeerFrame(kind, payload),
      onReachable: (to) => this.events.peers.succeeded(to),
      onSnapshotStatus: (to, ok) => {
        this.events.snapshotSent(to, ok);
        this.raw.reportSnapshot(to, ok);
        this.scheduleReady();
      },
      onUnreachable: (to) => {
        if (this.members.get(to)) this.events.peers.failed(to);
        this.raw.reportUnreachable(to);
        this.forwarder.peerLost(to);
        if (to === this.raw.raft.leadTransferee) this.shutdown.transferTargetUnreachable();
      },
      isRemoved: (id) => this.members.isRemoved(id),
      onRemoved: (by) =>
        this.noticeRemoved(
          `member ${this.members.get(by)?.name ?? by} refused its traffic: it was removed from the cluster`,
        ),
      ...(options.faultFilter ? { filter: options.faultFilter } : {}),
      ...(options.peerTls ? { tls: options.peerTls } : {}),
      logger: {
        warn: (obj, msg) => log.debug(obj, msg),
        error: (obj, msg) => log.error(obj, msg),
        notice: (obj, msg) => log.warn(obj, msg),
      },
    });
    this.forwarder = new Forwarder(
      this.clusterId,
      this.id,
      this.transport,
      options.faultFilter ? { self: this.id, filter: options.faultFilter } : undefined,
      (channel) => this.metrics.forwardBatches.inc({ channel }),
      options.peerTls ? undiciConnect(options.peerTls, { timeoutMs: 3000 }) : undefined,
    );
    this.forwardedWrites = new ForwardedWriteReceiver(
      this.transport,
      (w) => this.proposeForwarded(w),
      (err) => log.error({ err }, 'answering a forwarded write failed'),
    );
    this.reads = new ReadBatcher(
      this.id,
      (ctx) => {
        const ok = this.raw.readIndex(ctx).ok;
        this.scheduleReady();
        return ok;
      },
      (index) => this.applied.waitFor(index),
      config.electionTicks,
    );
    this.watches = new Watches(() => this.kv, log);
    this.metrics = new NodeMetrics(() => this.statusSync());
    const electionTimeoutMs = config.tickMs * config.electionTicks;
    this.minLeaseTtlSeconds = Math.ceil((1.5 * electionTimeoutMs) / 1000);
    this.membership = new Membership({
      isLeader: () => this.raw.raft.role === 'leader',
      members: () => this.members.list(),
      voters: () => this.confState.voters,
      learners: () => this.confState.learners,
      apply: (cc, signal) => this.proposeConfChange(cc, signal),
      peerScheme: options.peerTls ? 'https:' : 'http:',
    });
    this.leaderTransfers = new LeaderTransfers(
      {
        selfId: this.id,
        isLeader: () => this.raw.raft.role === 'leader',
        term: () => this.raw.raft.term,
        voters: () => this.raw.raft.voters,
        isMember: (id) => this.members.get(id) !== undefined,
        matchOf: (id) => this.raw.raft.progress.get(id)?.match ?? 0,
        start: (to) => {
          this.events.transferStarted(to, this.raw.raft.term);
          const r = this.raw.transferLeadership(to);
          this.scheduleReady();
          return r.ok ? r : { ok: false, reason: 'reason' in r ? r.reason : undefined };
        },
      },
      electionTimeoutMs,
    );
    this.leaseKeeper = new LeaseKeeper(
      {
        now: () => performance.now(),
        leases: () => this.kv.leases(),
        lease: (id) => this.kv.lease(id),
        confirmLeadership: () => this.readBarrier({ consistency: 'linearizable' }),
        isLeader: () => this.raw.raft.role === 'leader',
        propose: (cmd) => this.write(cmd),
        log,
      },
      Math.max(2 * electionTimeoutMs, 1000),
    );
    this.quota = new QuotaKeeper(
      {
        selfId: this.id,
        sizeBytes: () => this.kv.sizeBytes,
        alarms: () => this.kv.alarms(),
        propose: (cmd) => this.write(cmd),
        nameOf: (id) => this.members.get(id)?.name,
        log,
      },
      config.quotaBytes > 0 ? config.quotaBytes : defaultQuotaBytes(),
    );
    this.shutdown = new GracefulShutdown({
      log,
      isLeader: () => this.raw.raft.role === 'leader',
      hasOtherVoter: () => this.raw.raft.voters.some((id) => id !== this.id),
      handOver: (signal) => this.leaderTransfers.transfer(undefined, signal),
      pendingProposals: () => this.proposals.size + this.queued.length,
      flushProposals: () => this.flushProposals(),
      nameOf: (id) => this.members.get(id)?.name ?? id,
      electionTimeoutMs,
      heartbeatMs: config.tickMs * config.heartbeatTicks,
      drainLimitMs: config.requestTimeoutMs,
    });
  }

  /** Opens (or initializes) the data dir, starts the peer port and the Raft loop. */
  static async start(config: NodeConfig, options: NodeOptions = {}): Promise<RaftKvNode> {
    const log =
      options.logger ??
      createLogger({ member: config.name, level: config.logLevel, format: config.logFormat });
    await prepareDataDir(config.dataDir);
    const storage = await LevelRaftStorage.open(config.dataDir);
    try {
      await initializeIfNew(storage, config, log, options.peerTls);
      const records: [string, Uint8Array][] = [];
      for await (const r of storage.kvRecords()) records.push(r);
      const kv = KvStateMachine.load(records, storage.appliedIndex(), kvOptions(config));
      const members = new MemberTable(storage.members(), storage.removedMembers());
      const self = storage.identity()!;
      if (members.isRemoved(self.nodeId)) {
        throw new MemberRemovedError(
          `member ${config.name} (${self.nodeId}) was removed from the cluster; its data dir ${config.dataDir} cannot serve again. ` +
            'To bring it back: add it again (POST /v1/cluster/members, or kvctl member add), then start it with a new, empty --data-dir and --join',
        );
      }
      const node = new RaftKvNode(config, storage, kv, members, log, options);
      await node.listenPeer();
      node.startLoop();
      return node;
    } catch (err) {
      await storage.close().catch(() => {});
      throw err;
    }
  }

  /** Called on an unrecoverable error (a failed disk write): the process should exit. */
  onFatal(handler: (err: unknown) => void): void {
    this.fatal = handler;
  }

  /**
   * Called once when this member learns it was removed from the cluster
   * (it applied its own removal, or a peer refused its traffic as a removed
   * member's). It serves nothing from then on; the process should stop.
   */
  onRemoved(handler: (reason: string) => void): () => void {
    this.removedListeners.add(handler);
    if (this.removedReason !== undefined) handler(this.removedReason);
    return () => this.removedListeners.delete(handler);
  }

  /** Why this member knows it was removed from the cluster, or undefined. */
  get removed(): string | undefined {
    return this.removedReason;
  }

  private noticeRemoved(reason: string): void {
    if (this.removedReason !== undefined || this.stopping) return;
    this.removedReason = reason;
    this.log.error(
      { member: this.config.name, id: this.id, reason },
      `this member (${this.config.name}) was removed from the cluster: it stops serving clients`,
    );
    // No more ticks: a removed member must not campaign (its peers refuse it anyway).
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = undefined;
    this.proposals.rejectAll(
      new ServerError(
        'timeout',
        'this member was removed from the cluster before the write was applied here: outcome unknown',
      ),
    );
    for (const p of this.queued) p.reject(removedError());
    this.queued = [];
    this.reads.rejectAll(removedError());
    this.watches.closeAll('removed');
    for (const listener of [...this.removedListeners]) {
      try {
        listener(reason);
      } catch (err) {
        this.log.error({ err }, 'a removal listener threw');
      }
    }
  }

  private async listenPeer(): Promise<void> {
    // Peers pipeline batches on keep-alive connections that are never idle: close them
    // outright at shutdown (Raft tolerates the lost messages) rather than wait forever.
    const material = this.peerTls;
    const options = { logger: false, bodyLimit: 64 * 1024 * 1024, forceCloseConnections: true };
    const app = (
      material
        ? Fastify({ ...options, https: httpsServerOptions(material, { requireClientCert: true }) })
        : Fastify(options)
    ) as FastifyInstance;
    // Rotation: handshakes after a reload use the new files; open peer streams keep going.
    if (material) {
      const server = app.server as unknown as tls.Server;
      const unsubscribe = [
        serveReloads(server, material),
        // A peer with a certificate of another CA (or none) is refused in the handshake: say so.
        logRefusedHandshakes(server, (obj, msg) => this.log.warn(obj, msg), 'peer'),
      ];
      this.unsubscribePeerTls = () => {
        for (const off of unsubscribe) off();
      };
    }
    await app.register(this.transport.routes);
    await app.register(
      forwardRoutes(this.clusterId, {
        propose: (w) => this.proposeForwarded(w),
        leases: (id) => this.leaseViewsForPeer(id),
        // Asked by a follower: acted on only if this node still leads.
        transferLeader: (to) => this.leaderTransfers.transfer(to, this.peerDeadline()),
        changeMembers: (change) => this.membership.change(change, this.peerDeadline()),
        clusterInfo: () => ({ clusterId: this.clusterId, members: this.members.list() }),
      }),
    );
    const { host, port } = parseHostPort(this.config.listenPeer, '--listen-peer');
    try {
      await app.listen({ host, port });
    } catch (err) {
      throw new ServerError(
        'invalid_request',
        listenErrorMessage('--listen-peer', this.config.listenPeer, err),
        { cause: err },
      );
    }
    this.peerServer = app;
    const address = app.server.address();
    const actualPort = typeof address === 'object' && address ? address.port : port;
    const scheme = material ? 'https' : 'http';
    this.peerUrl = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
    for (const m of this.members.list()) {
      if (m.id !== this.id && m.peerUrls[0]) this.transport.addPeer(m.id, m.peerUrls[0]);
    }
  }

  private startLoop(): void {
    this.tickTimer = setInterval(() => {
      this.raw.tick();
      this.reads.onTick();
      this.watches.onTick(this.config.tickMs);
      this.leaseKeeper.tick();
      this.quota.tick();
      this.maybeAutoCompact();
      this.saveDeferred();
      this.events.tick();
      if (++this.ticks % (this.config.electionTicks * 2) === 0 && this.raw.raft.lead !== NONE)
        this.maybePublishAttributes();
      this.scheduleReady();
    }, this.config.tickMs);
    this.scheduleReady();
  }

  // ------------------------------------------------------------------ Ready loop

  private onPeerMessage(m: Message): void {
    if (this.stopping) return;
    this.events.peerMessage(m);
    this.raw.step(m);
    this.scheduleReady();
  }

  /** Frames of the peer streams other than Raft's: forwarded writes and their answers. */
  private onPeerFrame(kind: number, payload: Buffer): void {
    if (this.stopping) return;
    if (kind === FRAME_FORWARD_WRITES) this.forwardedWrites.onWritesFrame(payload);
    else if (kind === FRAME_FORWARD_REPLIES) this.forwarder.onRepliesFrame(payload);
    else throw new Error(`unknown peer frame kind ${kind}`);
  }

  private scheduleReady(): void {
    if (this.readyScheduled || this.stopping) return;
    this.readyScheduled = true;
    setImmediate(() => {
      this.readyScheduled = false;
      void this.runReady();
    });
  }

  private async runReady(): Promise<void> {
    if (this.readyRunning) return;
    this.readyRunning = true;
    try {
      // Bounded: a node under constant load yields to the event loop between batches.
      for (let i = 0; i < 64 && !this.stopping && this.raw.hasReady(); i++) {
        const rd = this.raw.ready();
        await this.handleReady(rd);
        this.raw.advance(rd);
      }
    } catch (err) {
      this.stopping = true;
      this.failed = true;
      if (err instanceof CommandNotUnderstoodError) {
        // Nothing of the entry (or after it) was applied or acknowledged: a newer member must.
        const upgrade = new UpgradeNeededError(err);
        this.log.fatal({ index: upgrade.index, version: VERSION }, upgrade.message);
        this.fatal?.(upgrade);
        return;
      }
      this.log.fatal({ err }, 'the Ready loop failed; stopping this node');
      this.fatal?.(err);
      return;
    } finally {
      this.readyRunning = false;
    }
    if (this.raw.hasReady()) this.scheduleReady();
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState) this.onSoftState(rd.softState.lead, rd.softState.role);
    // 1. Persist before anything that depends on it leaves this node. The applied
    // state of earlier Readys rides along in the same batch.
    let written: Promise<void> | undefined;
    if (rd.snapshot) {
      this.saveDeferred();
      await this.installSnapshot(rd);
    } else if (rd.mustSync) {
      const startMs = performance.now();
      written = this.storage
        .persistReady(this.deferred.withHardState(rd), true, this.deferred.takeApplied(this.kv))
        .then(() => this.events.diskSynced(performance.now() - startMs, rd.entries));
    } else if (rd.hardState) {
      // Only the commit index moved: nothing sent or applied depends on it being on disk
      // (after a restart the leader tells the commit again), so it waits for the next write.
      this.deferred.commitMoved(rd.hardState);
    }
    // 0. A leader's replication traffic leaves now, not at the next turn of the event
    // loop: followers write while we do. (After starting our write, which then runs
    // on libuv's thread pool while these frames are written.)
    if (rd.eagerMessages.length > 0)
      this.transport.sendNow(rd.eagerMessages.map((m) => this.withSnapshotData(m)));
    // 3 before 2. Committed entries are on the disks of a quorum already, so they are
    // applied (and answered) while our own write is in flight; their applied state
    // goes with the next write.
    if (rd.committedEntries.length > 0) {
      const startMs = performance.now();
      this.applyEntries(rd.committedEntries, rd.confState);
      this.events.applied(performance.now() - startMs, rd.committedEntries.length);
    }
    if (written) await written;
    // 2. Send what promises our write is durable.
    if (rd.messages.length > 0)
      this.transport.sendNow(rd.messages.map((m) => this.withSnapshotData(m)));
    // 4. Reads whose index is known.
    for (const rs of rd.readStates) this.reads.onReadState(rs);
    await this.maybeCompact();
  }

  private onSoftState(lead: string, role: string): void {
    this.log.debug({ lead: lead || null, role, term: this.raw.raft.term }, 'raft state changed');
    this.events.softState(lead, role, this.raw.raft.term);
    this.metrics.leaderChanges.inc();
    this.leaderTransfers.leaderChanged(lead, this.raw.raft.term);
    if (role === 'leader') this.leaseKeeper.becomeLeader();
    else if (this.leaseKeeper.isLeading()) this.leaseKeeper.loseLeadership();
    if (lead !== NONE && lead !== '') this.maybePublishAttributes();
  }

  /** A 'snap' message carries the state machine as of now, with metadata to match. */
  private withSnapshotData(m: Message): Message {
    if (m.type !== 'snap' || !m.snapshot) return m;
    this.metrics.snapshotsSent.inc();
    const index = this.kv.appliedIndex;
    const term = this.raw.raft.log.term(index) ?? m.snapshot.metadata.term;
    const snapshot: Snapshot = {
      metadata: { index, term, confState: this.confState },
      data: encodeNodeSnapshot(this.kv.snapshot(), this.members.list(), this.members.removedIds()),
    };
    this.events.snapshotSending(m.to, index, snapshot.data.byteLength);
    return { ...m, snapshot };
  }

  private async installSnapshot(rd: Ready): Promise<void> {
    const snap = rd.snapshot!;
    const startMs = performance.now();
    const { kv: kvData, members, removed } = decodeNodeSnapshot(snap.data);
    const restored = KvStateMachine.restore(kvData, snap.metadata.index, {
      ...kvOptions(this.config),
      watchHub: this.kv.watches,
    });
    // One atomic batch: log replaced, hard state, and the state machine with its applied index.
    await this.storage.persistReady(rd, true, { installRecords: restored.records() });
    this.members.addRemoved(removed);
    await this.storage.saveMembers(members, this.members.removedIds());
    this.kv = restored;
    this.confState = snap.metadata.confState;
    this.snapshotIndex = snap.metadata.index;
    this.replaceMembers(members);
    this.updateClusterVersion();
    if (this.members.isRemoved(this.id))
      this.noticeRemoved('the snapshot it installed lists it as removed');
    this.applied.advance(restored.appliedIndex);
    this.revisions.advance(restored.revision);
    this.proposals.skippedTo(snap.metadata.index);
    // Watchers cannot see the revisions the snapshot jumped over: make them resume from history.
    this.watches.resyncAll(restored.revision);
    this.authChanged();
    this.metrics.snapshotsInstalled.inc();
    this.events.snapshotInstalled({
      from: this.raw.raft.lead,
      index: snap.metadata.index,
      sizeBytes: snap.data.byteLength,
      ms: performance.now() - startMs,
    });
  }

  private applyEntries(entries: Entry[], confState: ConfState | undefined): void {
    let membersChanged = false;
    for (const e of entries) {
      if (e.type === 'confChange') {
        membersChanged = this.applyConfChange(e) || membersChanged;
        const noop = this.kv.apply(e.index, new Uint8Array());
        if (!isSkipped(noop)) this.proposals.applied(e.index, e.term, noop);
        continue;
      }
      if (isServerCommand(e.data)) {
        membersChanged = this.applyServerCommand(e.index, e.data) || membersChanged;
        const noop = this.kv.apply(e.index, new Uint8Array());
        if (!isSkipped(noop)) this.proposals.applied(e.index, e.term, noop);
        continue;
      }
      const result = this.kv.apply(e.index, e.data);
      if (isSkipped(result)) continue;
      if (result.ok && result.op === 'compact' && this.kv.lastCompaction)
        this.events.mvccCompacted(e.index, this.kv.lastCompaction);
      if (result.ok && result.op.startsWith('auth')) {
        this.log.info({ change: result.op, ...authSubject(result) }, 'auth state changed');
        this.authChanged();
      }
      this.leaseKeeper.onApplied(result);
      this.quota.onApplied(result);
      this.proposals.applied(e.index, e.term, result);
    }
    this.metrics.appliedEntries.inc(entries.length);
    if (confState) this.confState = confState;
    // Reads are served from memory. The applied state is only what a restart
    // resumes from (the log holds the rest), so it waits, unsynced, for the next
    // log write, the next tick, a compaction or the stop.
    this.deferred.entriesApplied(confState);
    this.applied.advance(this.kv.appliedIndex);
    this.revisions.advance(this.kv.revision);
    if (membersChanged) {
      this.inBackground(this.storage.saveMembers(this.members.list(), this.members.removedIds()));
      this.updateClusterVersion();
    }
  }

  private updateClusterVersion(): void {
    const previous = this.versionGate.update(this.members.list().map((m) => m.version));
    if (previous !== undefined)
      this.log.info(
        { clusterVersion: this.versionGate.version, previous },
        `the cluster version is now ${this.versionGate.version}`,
      );
  }

  /**
   * Writes what waits for the next log write — the commit-only hard state and
   * the applied state — on its own (storage keeps writes in call order).
   */
  private saveDeferred(): void {
    const all = this.deferred.takeAll(this.kv);
    if (all) this.inBackground(this.storage.persistReady(all.ready, false, all.applied));
  }

  /** A write nobody waits for; its failure stops the node like any failed disk write. */
  private inBackground(write: Promise<unknown>): void {
    write.catch((err) => {
      if (this.stopping) return;
      this.log.fatal({ err }, 'a background disk write failed; stopping this node');
      this.stopping = true;
      this.failed = true;
      this.fatal?.(err);
    });
  }

  private applyConfChange(e: Entry): boolean {
    const cc = decodeConfChange(e.data);
    this.events.confChangeApplied(e, cc, this.members.get(cc.nodeId), this.confState);
    if (cc.type === 'removeNode') {
      this.members.remove(cc.nodeId);
      if (cc.nodeId !== this.id) this.transport.removePeer(cc.nodeId);
      else this.noticeRemoved(`it applied its own removal (entry ${e.index})`);
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

  /** Snapshot + log compaction every snapshotCount applied entries, so the log stays bounded. */
  private async maybeCompact(): Promise<void> {
    const applied = this.kv.appliedIndex;
    if (applied - this.snapshotIndex < this.config.snapshotCount) return;
    const term = this.raw.raft.log.term(applied);
    if (term === undefined) return;
    this.saveDeferred(); // compaction drops log entries only below what storage has applied
    const [startMs, firstBefore] = [performance.now(), this.storage.firstIndex()];
    await this.storage.compact(applied, term, this.confState, this.config.snapshotCatchUpEntries);
    this.snapshotIndex = applied;
    const firstIndex = this.storage.firstIndex();
    this.events.snapshotTaken(
      {
        index: applied,
        term,
        logEntriesRemoved: firstIndex - firstBefore,
        firstIndex,
        ms: performance.now() - startMs,
      },
      () => this.storage.sizeBytes(),
    );
  }

  /**
   * --auto-compaction-retention: the leader samples the revision once a minute
   * and proposes a compaction to the newest sample older than the retention,
   * as etcd's periodic compactor does.
   */
  private maybeAutoCompact(): void {
    this.maybeCompactByRevisions();
    const retentionMs = this.config.autoCompactionRetentionHours * 3_600_000;
    if (retentionMs <= 0) return;
    const now = Date.now();
    const last = this.revisionSamples[this.revisionSamples.length - 1];
    if (last && now - last.atMs < 60_000) return;
    this.revisionSamples.push({ atMs: now, revision: this.kv.revision });
    let target = 0;
    while (this.revisionSamples.length > 0 && now - this.revisionSamples[0]!.atMs >= retentionMs) {
      target = this.revisionSamples.shift()!.revision;
    }
    if (this.raw.raft.role !== 'leader' || target <= this.kv.compactRevision) return;
    void this.write({ type: 'compact', revision: target }).catch((err) =>
      this.log.warn({ err, revision: target }, 'auto-compaction failed; will retry'),
    );
  }

  /**
   * --auto-compaction-revisions N: the leader keeps between N and 2N revisions
   * of history (etcd's revision mode), so memory stays bounded under writes.
   */
  private maybeCompactByRevisions(): void {
    const keep = this.config.autoCompactionRevisions;
    if (keep <= 0 || this.revisionCompactionPending || this.raw.raft.role !== 'leader') return;
    const target = this.kv.revision - keep;
    if (target - this.kv.compactRevision < keep) return;
    this.revisionCompactionPending = true;
    void this.write({ type: 'compact', revision: target })
      .catch((err) =>
        this.log.warn({ err, revision: target }, 'auto-compaction failed; will retry'),
      )
      .finally(() => {
        this.revisionCompactionPending = false;
      });
  }

  /**
   * Members announce their client URL and raftkv version through the log, so
   * every member's table shows them (the cluster version is computed from it).
   */
  private maybePublishAttributes(): void {
    const me = this.members.get(this.id);
    const url = this.config.advertiseClientUrl;
    if (!me || this.publishing || this.stopping) return;
    if (me.clientUrls.includes(url) && me.version === VERSION) return;
    this.publishing = true;
    const cmd: ServerCommand = {
      type: 'memberAttributes',
      id: this.id,
      clientUrls: [url],
      version: VERSION,
    };
    // Best effort: retried from the tick loop until it shows up in the table.
    void this.proposeServerCommand(cmd)
      .catch((err) =>
        this.log.debug({ err }, 'publishing the member attributes failed; will retry'),
      )
      .finally(() => {
        this.publishing = false;
      });
  }

  private async proposeServerCommand(cmd: ServerCommand): Promise<unknown> {
    const refusal = this.versionGate.refusal(cmd.type);
    if (refusal) throw refusal;
    const signal = this.deadlines.after(this.requestTimeoutMs);
    const lead = await this.waitForLeader(signal);
    if (lead === this.id)
      return this.withDeadline(this.proposeBytes(encodeServerCommand(cmd)), signal);
    return this.forwarder.forward(
      this.leaderPeer(lead),
      { serverCmd: cmd, timeoutMs: this.requestTimeoutMs },
      signal,
    );
  }

  // ------------------------------------------------------------------ writes

  /** Proposes a KV command (here if leading, else at the leader) and resolves with its applied result. */
  write(cmd: Command, opts: WriteContext = {}): Promise<CommandResult> {
    return this.shutdown.track(() => this.writeHeld(cmd, opts));
  }

  private async writeHeld(cmd: Command, opts: WriteContext): Promise<CommandResult> {
    if (this.removedReason !== undefined) throw removedError();
    if (this.stopping)
      throw new ServerError('unavailable', 'the node is shutting down', { retryAfterSeconds: 1 });
    const refusal = this.versionGate.refusal(cmd.type);
    if (refusal) throw refusal;
    // A stopping leader hands over first; the write then goes to the new leader.
    if (this.shutdown.handingOver) await this.shutdown.afterHandoff();
    const signal = opts.signal ?? this.deadlines.after(this.requestTimeoutMs);
    const lead = await this.waitForLeader(signal);
    if (lead !== this.id) {
      const leader = this.leaderPeer(lead);
      this.metrics.forwardedWrites.inc();
      return this.forwarder.forward(
        leader,
        { cmd, timeoutMs: this.requestTimeoutMs, ...requestContext(opts) },
        signal,
      );
    }
    const data = encodeCommand({ v: 1, atMs: Date.now(), cmd, ...requestContext(opts) });
    return this.withDeadline(this.proposeBytes(data), signal);
  }

  private proposeForwarded(w: ForwardedWrite): Promise<CommandResult> {
    return this.shutdown.track(async () => {
      if (this.shutdown.handingOver) await this.shutdown.afterHandoff();
      // Sent before the follower heard that leadership moved away from this stopping member.
      if (this.shutdown.shuttingDown && !this.stopping && this.raw.raft.role !== 'leader')
        return this.relayForwarded(w);
      return this.proposeForwardedHere(w);
    });
  }

  /** Passes a write forwarded to this (no longer leading) member on to the leader. */
  private async relayForwarded(w: ForwardedWrite): Promise<CommandResult> {
    const timeoutMs = Math.min(Math.max(w.timeoutMs, 1), this.requestTimeoutMs);
    const signal = this.deadlines.after(timeoutMs);
    const lead = await this.waitForLeader(signal);
    if (lead === this.id) return this.proposeForwardedHere(w);
    return this.forwarder.forward(this.leaderPeer(lead), { ...w, timeoutMs }, signal);
  }

  private async proposeForwardedHere(w: ForwardedWrite): Promise<CommandResult> {
    if (this.raw.raft.role !== 'leader') throw new ServerError('not_leader', 'not the leader');
    // Checked again here: the forwarding member's table may be behind this one's.
    const kind = w.serverCmd?.type ?? w.cmd?.type;
    const refusal = kind === undefined ? undefined : this.versionGate.refusal(kind);
    if (refusal) throw refusal;
    if (w.serverCmd)
      return this.withDeadline(
        this.proposeBytes(encodeServerCommand(w.serverCmd)),
        this.deadlines.after(this.requestTimeoutMs),
      );
    if (!w.cmd) throw new ServerError('invalid_request', 'nothing to propose');
    // The user named here is the one the forwarding member authenticated: the peer channel
    // (mutual TLS when configured) is what vouches for it, and the state machine validates it.
    const data = encodeCommand({ v: 1, atMs: Date.now(), cmd: w.cmd, ...requestContext(w) });
    const timeoutMs = Math.min(Math.max(w.timeoutMs, 1), this.requestTimeoutMs);
    return this.withDeadline(this.proposeBytes(data), this.deadlines.after(timeoutMs));
  }

  /** Where to forward to the leader `lead`; 503 when its peer URL is unknown here. */
  private leaderPeer(lead: string): LeaderPeer {
    const url = this.members.get(lead)?.peerUrls[0];
    if (!url)
      throw new ServerError('unavailable', 'the leader is not reachable from here', {
        retryAfterSeconds: 1,
      });
    return { id: lead, url };
  }

  /** Waits (bounded by the request) for a leader to be known; 503 if none appears. */
  private async waitForLeader(signal: AbortSignal): Promise<string> {
    const deadline = Date.now() + this.config.tickMs * this.config.electionTicks * 3;
    for (let i = 0; i < 1000; i++) {
      const lead = this.raw.raft.lead;
      if (lead !== NONE) return lead;
      if (signal.aborted || Date.now() > deadline || this.stopping) break;
      await new Promise((r) => setTimeout(r, this.config.tickMs));
    }
    throw new ServerError('unavailable', 'no leader is elected', { retryAfterSeconds: 1 });
  }

  /** Queues a proposal; all proposals of one event-loop turn go into one log append. */
  private proposeBytes(data: Uint8Array): Promise<CommandResult> {
    if (
      this.proposals.size + this.queued.length >= this.config.maxPendingProposals ||
      this.queuedBytes + data.byteLength > this.config.maxPendingProposalBytes
    ) {
      this.metrics.rejectedWrites.inc();
      return Promise.reject(
        new ServerError('too_many_requests', 'too many writes in flight', { retryAfterSeconds: 1 }),
      );
    }
    return new Promise((resolve, reject) => {
      this.queued.push({ data, resolve, reject });
      this.queuedBytes += data.byteLength;
      if (!this.proposeScheduled) {
        this.proposeScheduled = true;
        setImmediate(() => this.flushProposals());
      }
    });
  }

  private flushProposals(): void {
    this.proposeScheduled = false;
    const batch = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    if (batch.length === 0) return;
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
      this.proposals.register(first + i, result.term).then(p.resolve, p.reject);
    });
    this.metrics.proposals.inc(batch.length);
    // This is already a turn of its own (proposals batch per turn): the append
    // starts now rather than one more turn of the event loop later.
    void this.runReady();
  }

  private withDeadline<T>(
    promise: Promise<T>,
    signal: AbortSignal,
    onTimeout: () => ServerError = timeoutError,
  ): Promise<T> {
    if (signal.aborted) return Promise.reject(onTimeout());
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(onTimeout());
      signal.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  // ------------------------------------------------------------------ reads

  /** Waits until a read may be served locally with the asked consistency. */
  readBarrier(opts: {
    consistency: 'linearizable' | 'serializable';
    minRevision?: number;
    signal?: AbortSignal;
  }): Promise<void> {
    return this.shutdown.track(() => this.readBarrierHeld(opts));
  }

  private async readBarrierHeld(opts: {
    consistency: 'linearizable' | 'serializable';
    minRevision?: number;
    signal?: AbortSignal;
  }): Promise<void> {
    if (this.removedReason !== undefined) throw removedError();
    if (this.stopping)
      throw new ServerError('unavailable', 'the node is shutting down', { retryAfterSeconds: 1 });
    const signal = opts.signal ?? this.deadlines.after(this.requestTimeoutMs);
    if (opts.consistency === 'linearizable') {
      await this.waitForLeader(signal);
      this.metrics.linearizableReads.inc();
      await this.withDeadline(this.reads.read(), signal, readTimeoutError);
    }
    if (opts.minRevision !== undefined && opts.minRevision > this.kv.revision) {
      await this.withDeadline(this.revisions.waitFor(opts.minRevision), signal, readTimeoutError);
    }
  }

  /** The state machine as of now (replaced when a snapshot is installed). */
  /**
   * Calls `listener` after users, roles or the enabled flag change here (an
   * applied auth command or an installed snapshot), so open streams can
   * re-check their user's permission. Returns the unsubscribe function.
   */
  onAuthChange(listener: () => void): () => void {
    this.authListeners.add(listener);
    return () => this.authListeners.delete(listener);
  }

  private authChanged(): void {
    // Copied: a listener may unsubscribe itself (its stream ends).
    for (const listener of [...this.authListeners]) {
      try {
        listener();
      } catch (err) {
        this.log.error({ err }, 'an auth change listener failed');
      }
    }
  }

  get store(): KvStateMachine {
    return this.kv;
  }

  watch(
    req: { key: string; prefix: boolean; fromRevision?: number; prevKv: boolean },
    sink: {
      change(c: RevisionChange): void;
      progress(r: number): void;
      compacted(c: number): void;
      closed(reason: string, r: number): void;
      bufferedBytes(): number;
    },
  ): { cancel(): void } {
    if (this.shutdown.shuttingDown)
      throw new ServerError('unavailable', 'the node is shutting down', { retryAfterSeconds: 1 });
    return this.watches.open(req, sink);
  }

  // ------------------------------------------------------------------ leases

  /**
   * Leases with the TTL left on the leader's clock (only the leader tracks
   * deadlines; a follower asks it). `id` narrows to one lease.
   */
  async leaseViews(id?: string, signal?: AbortSignal): Promise<LeaseView[]> {
    return this.atLeader(
      signal,
      (leader, deadline) => this.forwarder.leases(leader, id, deadline),
      async (deadline) => {
        // Serve from state that includes every committed keepalive and revoke.
        await this.readBarrier({ consistency: 'linearizable', signal: deadline });
        return this.localLeaseViews(id);
      },
    );
  }

  /**
   * What only the leader can answer, asked on any node: here when this node
   * leads, else passed to the leader over its peer port.
   */
  private async atLeader<T>(
    signal: AbortSignal | undefined,
    viaLeader: (leader: LeaderPeer, deadline: AbortSignal) => Promise<T>,
    here: (deadline: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const deadline = signal ?? this.deadlines.after(this.requestTimeoutMs);
    const lead = await this.waitForLeader(deadline);
    return lead === this.id ? here(deadline) : viaLeader(this.leaderPeer(lead), deadline);
  }

  /**
   * POST /v1/cluster/leader: hands leadership to `to` (or the most caught-up
   * voter), on whichever node is asked; followers pass it to the leader.
   */
  transferLeader(to: string | undefined, signal?: AbortSignal): Promise<TransferResult> {
    return this.atLeader(
      signal,
      (leader, deadline) => this.forwarder.transferLeader(leader, to, deadline),
      (deadline) => this.leaderTransfers.transfer(to, deadline),
    );
  }

  /**
   * GET /v1/snapshot: this node's state machine once it has applied every
   * write acknowledged before the request (a linearizable read), as a backup
   * file for `raftkv restore`.
   */
  async backup(signal?: AbortSignal): Promise<{ header: BackupHeader; bytes: Uint8Array }> {
    await this.readBarrier({
      consistency: 'linearizable',
      signal: signal ?? this.deadlines.after(this.requestTimeoutMs),
    });
    // One synchronous step: nothing is applied between reading the header and the state.
    const header: BackupHeader = {
      v: 1,
      clusterId: this.clusterId,
      memberId: this.id,
      appliedIndex: this.kv.appliedIndex,
      revision: this.kv.revision,
      compactRevision: this.kv.compactRevision,
      takenAt: new Date().toISOString(),
    };
    return { header, bytes: encodeBackup({ header, state: this.kv.snapshot() }) };
  }

  /**
   * POST/DELETE /v1/cluster/members…: one conf change, on whichever node is
   * asked; followers pass it to the leader. Resolves once applied here.
   */
  changeMembers(
    change: MemberChange,
    signal?: AbortSignal,
  ): Promise<MemberView | { removed: string }> {
    return this.atLeader(
      signal,
      (leader, deadline) => this.forwarder.changeMembers(leader, change, deadline),
      (deadline) => this.membership.change(change, deadline),
    );
  }

  private async proposeConfChange(cc: ConfChange, signal: AbortSignal): Promise<void> {
    const r = this.raw.proposeConfChange(cc);
    if (!r.ok) {
      throw new ServerError(
        'unavailable',
        r.code === 'not_leader' ? 'leadership changed' : (r.reason ?? 'membership change refused'),
        { retryAfterSeconds: 1 },
      );
    }
    const applied = this.proposals.register(r.index, r.term);
    this.scheduleReady();
    await this.withDeadline(applied, signal);
  }

  private peerDeadline(): AbortSignal {
    return this.deadlines.after(this.requestTimeoutMs);
  }

  private localLeaseViews(id?: string): LeaseView[] {
    const leases =
      id === undefined ? this.kv.leases() : [this.kv.lease(id)].filter((l) => l !== undefined);
    return leases.map((l) => {
      const remainingMs = this.leaseKeeper.remainingMs(l.id) ?? l.remainingMs ?? l.ttlMs;
      return {
        id: l.id,
        ...(l.owner !== undefined ? { owner: l.owner } : {}),
        ttl: Math.round(l.ttlMs / 1000),
        remaining: Math.ceil(remainingMs / 1000),
        keys: id === undefined ? [] : [...(this.kv.lease(l.id)?.keys ?? [])],
      };
    });
  }

  private async leaseViewsForPeer(id: string | undefined): Promise<LeaseView[]> {
    if (this.raw.raft.role !== 'leader')
      throw new ServerError('unavailable', 'not the leader', { retryAfterSeconds: 1 });
    await this.readBarrier({ consistency: 'linearizable' });
    return this.localLeaseViews(id);
  }

  // ------------------------------------------------------------------ status

  statusSync() {
    const st = this.raw.status();
    const isLearner = st.learners.includes(this.id);
    const role = isLearner ? 'learner' : st.role === 'preCandidate' ? 'candidate' : st.role;
    return {
      id: this.id,
      name: this.config.name,
      role: role as 'leader' | 'follower' | 'candidate' | 'learner',
      leader: st.lead === NONE ? null : st.lead,
      term: st.term,
      commitIndex: st.commit,
      appliedIndex: this.kv.appliedIndex,
      revision: this.kv.revision,
      compactRevision: this.kv.compactRevision,
      members: st.voters.length + st.learners.length,
      version: VERSION,
      /** The lowest version of the members (cluster-version.ts), as this member has applied it. */
      clusterVersion: this.versionGate.version,
    };
  }

  /** The range of log entries kept on disk (bounded by snapshots). */
  logBounds(): { firstIndex: number; lastIndex: number } {
    return { firstIndex: this.storage.firstIndex(), lastIndex: this.storage.lastIndex() };
  }

  async status() {
    return { ...this.statusSync(), dbSizeBytes: await this.storage.sizeBytes() };
  }

  membersView() {
    const lead = this.raw.raft.lead;
    return {
      leader: lead === NONE ? null : lead,
      members: this.members.list().map((m) => ({
        ...m,
        /** null until the member has published it (it then counts as the oldest compatible version). */
        version: m.version ?? null,
        role: (this.confState.learners.includes(m.id) ? 'learner' : 'voter') as 'voter' | 'learner',
      })),
    };
  }

  health(): { healthy: boolean; reason?: string } {
    if (this.removedReason !== undefined) return { healthy: false, reason: 'removed' };
    if (this.shuttingDown) return { healthy: false, reason: 'shutting down' };
    if (this.raw.raft.lead === NONE) return { healthy: false, reason: 'no leader' };
    const lag = this.raw.raft.log.committed - this.kv.appliedIndex;
    if (lag > 1000)
      return { healthy: false, reason: `applied index is ${lag} entries behind the commit index` };
    return { healthy: true };
  }

  /**
   * GET /readyz: whether this member should get client traffic now — it knows
   * a leader, has applied what it knows is committed, and is neither removed
   * nor stopping. `reason` says why not.
   */
  readiness(): {
    ready: boolean;
    reason?: 'removed' | 'shutting_down' | 'no_leader' | 'catching_up';
  } {
    if (this.removedReason !== undefined) return { ready: false, reason: 'removed' };
    if (this.shuttingDown) return { ready: false, reason: 'shutting_down' };
    if (this.raw.raft.lead === NONE) return { ready: false, reason: 'no_leader' };
    if (this.raw.raft.log.committed - this.kv.appliedIndex > 1000)
      return { ready: false, reason: 'catching_up' };
    return { ready: true };
  }

  /**
   * GET /livez: the process is up and its Raft loop is running (not wedged
   * by a failed disk). Independent of the leader and the quorum, so that a
   * liveness probe does not restart every member during a quorum loss.
   */
  liveness(): { live: boolean; reason?: string } {
    if (this.failed) return { live: false, reason: 'a disk write failed' };
    return { live: true };
  }

  // ------------------------------------------------------------------ shutdown

  /** Ends every watch stream (they resume elsewhere with Last-Event-ID); the HTTP server can then close. */
  closeWatches(reason: string): void {
    this.watches.closeAll(reason);
  }

  /**
   * True from the start of a graceful stop (stop(), SIGTERM) on: the member takes no
   * new client requests and finishes what it holds (see shutdown.ts). /health and
   * /readyz report it.
   */
  get shuttingDown(): boolean {
    return this.shutdown.shuttingDown || this.stopping;
  }

  /** Aborted when a graceful stop begins (waits that may last long end then: a lock's line). */
  get shutdownSignal(): AbortSignal {
    return this.shutdown.signal;
  }

  /** The longest a graceful stop's handoff and drain may take (closing adds a moment). */
  get shutdownLimitMs(): number {
    return this.shutdown.limitMs;
  }

  /**
   * Graceful stop (shutdown.ts): a leader first hands leadership to the most caught-up
   * voter; then every write already proposed is answered once applied (it commits under
   * the new leader) and every held request is finished, bounded by the request timeout;
   * then the Raft loop, the peer port and the data dir close. Whatever is still held
   * then is answered 504 (a proposed write: outcome unknown) or 503.
   */
  stop(): Promise<ShutdownOutcome | undefined> {
    if (!this.stopped) this.stopped = this.stopGracefully();
    return this.stopped;
  }

  private stopped: Promise<ShutdownOutcome | undefined> | undefined;

  private async stopGracefully(): Promise<ShutdownOutcome | undefined> {
    // After a fatal error the loop is already stopped: close at once.
    const outcome = this.stopping ? undefined : await this.shutdown.run();
    await this.close();
    return outcome;
  }

  private async close(): Promise<void> {
    if (this.stopping && !this.tickTimer) return;
    this.stopping = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = undefined;
    const unknown = new ServerError(
      'timeout',
      'the node shut down before the write was applied: outcome unknown',
    );
    this.proposals.rejectAll(unknown);
    for (const p of this.queued)
      p.reject(new ServerError('unavailable', 'the node is shutting down'));
    this.queued = [];
    this.reads.rejectAll(
      new ServerError('unavailable', 'the node is shutting down', { retryAfterSeconds: 1 }),
    );
    this.watches.closeAll('shutdown');
    this.leaderTransfers.close();
    for (let i = 0; i < 200 && this.readyRunning; i++) await new Promise((r) => setTimeout(r, 5));
    this.saveDeferred();
    this.unsubscribePeerTls?.();
    await this.peerServer?.close().catch(() => {});
    await this.transport.close().catch(() => {});
    await this.forwarder.close();
    await this.storage.close();
    this.deadlines.abortAll();
  }
}

/** What a removed member answers every request with. */
function removedError(): ServerError {
  return new ServerError(
    'unavailable',
    'this member was removed from the cluster: use another member',
    { retryAfterSeconds: 1 },
  );
}

function readTimeoutError(): ServerError {
  return new ServerError(
    'timeout',
    'the read could not be served in time (no confirmed leader, or minRevision not reached)',
  );
}

function timeoutError(): ServerError {
  return new ServerError(
    'timeout',
    'the request timed out: a write may or may not have been applied',
  );
}

/** What a write carries besides its command: who asked, and what for Idempotency-Key. */
export interface WriteContext {
  idempotencyKey?: string;
  /** A digest of the request's route and body: a reused Idempotency-Key must match it. */
  requestDigest?: string;
  /** The authenticated user; absent when auth is off (and for the system's own proposals). */
  user?: string;
  /** A client's request taken without credentials (auth was off here): refused if auth is on at apply. */
  anonymous?: true;
  signal?: AbortSignal;
}

/** The envelope fields of a write context that are set. */
function requestContext(opts: {
  idempotencyKey?: string | undefined;
  requestDigest?: string | undefined;
  user?: string | undefined;
  anonymous?: true | undefined;
}): { idempotencyKey?: string; requestDigest?: string; user?: string; anonymous?: true } {
  const out: { idempotencyKey?: string; requestDigest?: string; user?: string; anonymous?: true } =
    {};
  if (opts.anonymous) out.anonymous = true;
  if (opts.idempotencyKey) out.idempotencyKey = opts.idempotencyKey;
  if (opts.requestDigest) out.requestDigest = opts.requestDigest;
  if (opts.user !== undefined) out.user = opts.user;
  return out;
}

/** Who an applied auth change was about, for the log (never a password or a key). */
function authSubject(result: CommandResult): { user?: string; role?: string } {
  if (!result.ok) return {};
  switch (result.op) {
    case 'authUserPut':
      return { user: result.user.name };
    case 'authUserDelete':
      return { user: result.name };
    case 'authRolePut':
      return { role: result.role.name };
    case 'authRoleDelete':
      return { role: result.name };
    default:
      return {};
  }
}
