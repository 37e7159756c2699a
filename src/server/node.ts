import { randomInt } from 'node:crypto';
import type tls from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Command } from '../kv/commands.js';
import { encodeCommand } from '../kv/commands.js';
import type { RevisionChange } from '../kv/mvcc/key-value.js';
import type { CommandResult } from '../kv/results.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { type ConfChange, type Message, NONE } from '../raft/index.js';
import { LevelRaftStorage } from '../storage/index.js';
import {
  httpsServerOptions,
  logRefusedHandshakes,
  serveReloads,
  type TlsMaterial,
  undiciConnect,
} from '../tls/index.js';
import { type FaultFilter, HttpTransport } from '../transport/index.js';
import { attachAutoCompaction } from './auto-compaction.js';
import { type BackupHeader, encodeBackup } from './backup.js';
import { ClusterVersionGate } from './cluster-version.js';
import { type NodeConfig, parseHostPort } from './config.js';
import { initializeIfNew, kvOptions, prepareDataDir } from './data-dir-setup.js';
import { Deadlines } from './deadlines.js';
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
import { LeaderTransfers, type TransferResult } from './leader-transfer.js';
import type { LeaseKeeper } from './lease-keeper.js';
import { attachLeaseKeeper } from './lease-keeper-attach.js';
import { createLogger } from './logger.js';
import { attachAttributePublisher } from './member-attributes.js';
import { MemberTable } from './members.js';
import { type MemberChange, Membership, type MemberView } from './membership.js';
import { NodeMetrics, SLOW_APPLY_MS } from './metrics.js';
import { NodeCore } from './node-core.js';
import { attachPeerProber } from './peer-prober.js';
import { listenErrorMessage } from './port-check.js';
import { systemClock } from './ports.js';
import { attachQuotaKeeper, type QuotaKeeper } from './quota-keeper.js';
import { encodeServerCommand, type ServerCommand } from './server-commands.js';
import { GracefulShutdown, type ShutdownOutcome } from './shutdown.js';
import { attachSnapshotPolicy } from './snapshot-policy.js';
import { VERSION } from './version.js';
import { Watches } from './watches.js';

export { VERSION };

/** How often each peer's round trip is measured (raftkv_peer_round_trip_time_seconds). */
const PEER_PROBE_INTERVAL_MS = 5000;

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
  /** The Ready loop, the state machine and membership (node-core.ts); the rest of this class plugs into it. */
  private readonly core: NodeCore;
  private readonly transport: HttpTransport;
  private readonly forwarder: Forwarder;
  private readonly leaderTransfers: LeaderTransfers;
  private readonly membership: Membership;
  private readonly forwardedWrites: ForwardedWriteReceiver;
  private readonly members: MemberTable;
  /** The cluster version from the member table, and the gate on proposing commands it lacks. */
  private readonly versionGate: ClusterVersionGate;
  private readonly watches: Watches;
  readonly metrics: NodeMetrics;
  /** When the snapshot now being sent to each peer started (for its duration metric). */
  private readonly snapshotSendStartedMs = new Map<string, number>();
  /** The leader as of the last soft state, for raftkv_leader_changes_seen_total. */
  private lastLeadSeen = '';
  /** Lifecycle events as log lines (event-log.ts). */
  private readonly events: NodeEventLog;
  private readonly leaseKeeper: LeaseKeeper;
  /** The space quota: raises and clears this member's nospace alarm (quota-keeper.ts). */
  readonly quota: QuotaKeeper;
  /** The graceful stop: handoff, drain (see shutdown.ts). */
  private readonly shutdown: GracefulShutdown;
  /** The smallest TTL granted (etcd's rule: 1.5 election timeouts), in seconds. */
  readonly minLeaseTtlSeconds: number;
  private peerServer: FastifyInstance | undefined;
  private readonly peerTls: TlsMaterial | undefined;
  private unsubscribePeerTls: (() => void) | undefined;
  private fatal: ((err: unknown) => void) | undefined;
  private closing = false;
  private readonly removedListeners = new Set<(reason: string) => void>();
  private readonly authListeners = new Set<() => void>();
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
    this.members = members;
    this.versionGate = new ClusterVersionGate(members.list().map((m) => m.version));
    this.events = new NodeEventLog({
      log,
      selfId: this.id,
      nameOf: (id) => this.members.get(id)?.name,
      voters: () => this.core.raft.voters,
      leadingWithoutTransfer: () => this.core.isLeader && this.core.raft.leadTransferee === NONE,
      electionTimeoutMs: config.tickMs * config.electionTicks,
      ...options.eventLog,
    });
    this.transport = new HttpTransport({
      nodeId: this.id,
      clusterId: this.clusterId,
      onMessage: (m) => this.onPeerMessage(m),
      onAppFrame: (kind, payload) => this.onPeerFrame(kind, payload),
      onReachable: (to) => this.events.peers.succeeded(to),
      onSnapshotStatus: (to, ok) => {
        this.snapshotSendDone(to);
        this.events.snapshotSent(to, ok);
        this.core.reportSnapshot(to, ok);
      },
      onUnreachable: (to) => {
        this.metrics.peerSendFailures.inc({ peer: to });
        if (this.members.get(to)) this.events.peers.failed(to);
        this.core.reportUnreachable(to);
        this.forwarder.peerLost(to);
        if (to === this.core.raft.leadTransferee) this.shutdown.transferTargetUnreachable();
      },
      isRemoved: (id) => this.members.isRemoved(id),
      onRemoved: (by) =>
        this.core.markRemoved(
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
    this.metrics = new NodeMetrics({
      status: () => this.statusSync(),
      proposalsPending: () => this.core.pendingProposals,
      watchers: () => this.watches.size,
      leases: () => this.core.kv.stats().leases,
      stateSizeBytes: () => this.core.kv.sizeBytes,
      quotaBytes: () => this.quota.quotaBytes,
      dbSizeBytes: () => this.storage.sizeBytes(),
    });
    this.core = new NodeCore({
      id: this.id,
      storage,
      transport: this.transport,
      clock: systemClock,
      randomSeed: randomInt(0, 2 ** 31),
      kv,
      kvOptions: kvOptions(config),
      members,
      log,
      config: {
        tickMs: config.tickMs,
        electionTicks: config.electionTicks,
        heartbeatTicks: config.heartbeatTicks,
        maxPendingProposals: config.maxPendingProposals,
        maxPendingProposalBytes: config.maxPendingProposalBytes,
      },
      timing: this.metrics.writes,
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
    this.watches = new Watches(() => this.core.kv, log, {
      sent: (events) => this.metrics.watchEventsSent.inc(events),
      slowConsumerClosed: () => this.metrics.watchSlowConsumers.inc(),
    });
    const electionTimeoutMs = config.tickMs * config.electionTicks;
    this.minLeaseTtlSeconds = Math.ceil((1.5 * electionTimeoutMs) / 1000);
    this.membership = new Membership({
      isLeader: () => this.core.isLeader,
      members: () => this.members.list(),
      voters: () => this.core.confState.voters,
      learners: () => this.core.confState.learners,
      apply: (cc, signal) => this.proposeConfChange(cc, signal),
      settled: (signal) => this.withDeadline(this.core.confChangesSettled(), signal),
      peerScheme: options.peerTls ? 'https:' : 'http:',
    });
    this.leaderTransfers = new LeaderTransfers(
      {
        selfId: this.id,
        isLeader: () => this.core.isLeader,
        term: () => this.core.raft.term,
        voters: () => this.core.raft.voters,
        isMember: (id) => this.members.get(id) !== undefined,
        matchOf: (id) => this.core.raft.progress.get(id)?.match ?? 0,
        start: (to) => {
          this.events.transferStarted(to, this.core.raft.term);
          return this.core.transferLeadership(to);
        },
      },
      electionTimeoutMs,
    );
    this.leaseKeeper = attachLeaseKeeper(this.core, {
      propose: (cmd) => this.write(cmd),
      log,
      checkpointIntervalMs: Math.max(2 * electionTimeoutMs, 1000),
      confirmLeadership: () => this.readBarrier({ consistency: 'linearizable' }),
    });
    attachSnapshotPolicy(this.core, storage, {
      snapshotCount: config.snapshotCount,
      catchUpEntries: config.snapshotCatchUpEntries,
      onTaken: (taken) => {
        this.metrics.snapshotSave.observe(taken.ms / 1000);
        this.events.snapshotTaken(taken, () => this.storage.sizeBytes());
      },
    });
    this.shutdown = new GracefulShutdown({
      log,
      isLeader: () => this.core.isLeader,
      hasOtherVoter: () => this.core.raft.voters.some((id) => id !== this.id),
      handOver: (signal) => this.leaderTransfers.transfer(undefined, signal),
      pendingProposals: () => this.core.pendingProposals,
      flushProposals: () => this.core.flushProposals(),
      nameOf: (id) => this.members.get(id)?.name ?? id,
      electionTimeoutMs,
      heartbeatMs: config.tickMs * config.heartbeatTicks,
      drainLimitMs: config.requestTimeoutMs,
    });
    this.quota = attachQuotaKeeper(this.core, {
      quotaBytes: config.quotaBytes,
      propose: (cmd) => this.write(cmd),
      log,
    });
    attachPeerProber(this.core, {
      peers: () => this.members.list().flatMap((m) => (m.id === this.id ? [] : [m.id])),
      probe: (id) => this.transport.probe(id),
      observe: (id, ms) => this.metrics.peerRoundTrip.observe({ peer: id }, ms / 1000),
      intervalMs: PEER_PROBE_INTERVAL_MS,
      tickMs: config.tickMs,
    });
    attachAutoCompaction(this.core, {
      retentionHours: config.autoCompactionRetentionHours,
      revisions: config.autoCompactionRevisions,
      propose: (cmd) => this.write(cmd),
      log,
    });
    attachAttributePublisher(this.core, {
      advertiseClientUrl: config.advertiseClientUrl,
      version: VERSION,
      propose: (cmd) => this.proposeServerCommand(cmd),
      log,
      retryTicks: config.electionTicks * 2,
    });
    this.plugIntoCore();
  }

  /** The server's modules follow the core's events. */
  private plugIntoCore(): void {
    const { core, events, metrics } = this;
    core.on('tick', () => this.onTick());
    core.on('softState', (lead, role, term) => this.onSoftState(lead, role, term));
    core.on('result', (result, entry) => {
      if (result.ok && result.op === 'compact' && core.kv.lastCompaction)
        events.mvccCompacted(entry.index, core.kv.lastCompaction);
      if (result.ok && result.op.startsWith('auth')) {
        this.log.info({ change: result.op, ...authSubject(result) }, 'auth state changed');
        this.authChanged();
      }
    });
    core.on('entriesApplied', (ms, count) => {
      metrics.appliedEntries.inc(count);
      metrics.apply.observe(ms / 1000);
      if (ms > SLOW_APPLY_MS) metrics.slowApplies.inc();
      events.applied(ms, count);
    });
    core.on('confChangeApplied', (entry, cc, before, confState) =>
      events.confChangeApplied(entry, cc, before, confState),
    );
    core.on('membersChanged', () => this.updateClusterVersion());
    core.on('snapshotInstalled', (info) => {
      // Watchers cannot see the revisions the snapshot jumped over: make them resume from history.
      this.watches.resyncAll(core.kv.revision);
      this.authChanged();
      metrics.snapshotsInstalled.inc();
      metrics.snapshotInstall.observe(info.ms / 1000);
      events.snapshotInstalled(info);
    });
    core.on('snapshotSending', (to, index, sizeBytes) => {
      metrics.snapshotsSent.inc();
      this.snapshotSendStartedMs.set(to, core.clock.now());
      events.snapshotSending(to, index, sizeBytes);
    });
    core.on('diskSynced', (ms, entries) => {
      metrics.diskSync.observe(ms / 1000);
      events.diskSynced(ms, entries);
    });
    core.on('proposalsFailed', (count) => metrics.proposalsFailed.inc(count));
    core.on('proposed', (count) => metrics.proposals.inc(count));
    core.on('proposalsRefused', (count) => metrics.rejectedWrites.inc(count));
    core.on('removed', (reason) => this.onRemovedFromCluster(reason));
    core.on('fatal', (err) => this.fatal?.(err));
  }

  private onTick(): void {
    this.watches.onTick(this.config.tickMs);
    this.events.tick();
  }

  private onRemovedFromCluster(reason: string): void {
    this.log.error(
      { member: this.config.name, id: this.id, reason },
      `this member (${this.config.name}) was removed from the cluster: it stops serving clients`,
    );
    this.watches.closeAll('removed');
    for (const listener of [...this.removedListeners]) {
      try {
        listener(reason);
      } catch (err) {
        this.log.error({ err }, 'a removal listener threw');
      }
    }
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
      node.core.start();
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
    if (this.core.removed !== undefined) handler(this.core.removed);
    return () => this.removedListeners.delete(handler);
  }

  /** Why this member knows it was removed from the cluster, or undefined. */
  get removed(): string | undefined {
    return this.core.removed;
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

  // ------------------------------------------------------------------ Ready loop

  private onPeerMessage(m: Message): void {
    if (this.core.stopping) return;
    this.events.peerMessage(m);
    this.core.step(m);
  }

  /** Frames of the peer streams other than Raft's: forwarded writes and their answers. */
  private onPeerFrame(kind: number, payload: Buffer): void {
    if (this.core.stopping) return;
    if (kind === FRAME_FORWARD_WRITES) this.forwardedWrites.onWritesFrame(payload);
    else if (kind === FRAME_FORWARD_REPLIES) this.forwarder.onRepliesFrame(payload);
    else throw new Error(`unknown peer frame kind ${kind}`);
  }

  private onSoftState(lead: string, role: string, term: number): void {
    this.log.debug({ lead: lead || null, role, term }, 'raft state changed');
    this.events.softState(lead, role, term);
    this.metrics.leaderChanges.inc();
    if (lead !== this.lastLeadSeen) this.metrics.leaderChangesSeen.inc();
    this.lastLeadSeen = lead;
    this.leaderTransfers.leaderChanged(lead, term);
  }

  /** A snapshot to `to` finished (installed or failed): how long it took. */
  private snapshotSendDone(to: string): void {
    const started = this.snapshotSendStartedMs.get(to);
    if (started === undefined) return;
    this.snapshotSendStartedMs.delete(to);
    this.metrics.snapshotSend.observe((this.core.clock.now() - started) / 1000);
  }

  private updateClusterVersion(): void {
    const previous = this.versionGate.update(this.members.list().map((m) => m.version));
    if (previous !== undefined)
      this.log.info(
        { clusterVersion: this.versionGate.version, previous },
        `the cluster version is now ${this.versionGate.version}`,
      );
  }

  private async proposeServerCommand(cmd: ServerCommand): Promise<unknown> {
    const refusal = this.versionGate.refusal(cmd.type);
    if (refusal) throw refusal;
    const signal = this.deadlines.after(this.requestTimeoutMs);
    const lead = await this.waitForLeader(signal);
    if (lead === this.id)
      return this.withDeadline(this.core.propose(encodeServerCommand(cmd)), signal);
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
    if (this.core.removed !== undefined) throw removedError();
    if (this.core.stopping)
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
      const forwardedMs = this.core.clock.now();
      const result = await this.forwarder.forward(
        leader,
        { cmd, timeoutMs: this.requestTimeoutMs, ...requestContext(opts) },
        signal,
      );
      // Latency accounting: the leader's whole part is one stage here.
      const answeredMs = this.core.clock.now();
      this.metrics.writes.forwarded(answeredMs - forwardedMs);
      if (opts.proposedMs !== undefined) {
        opts.proposedMs = forwardedMs;
        opts.appliedMs = answeredMs;
      }
      return result;
    }
    const data = encodeCommand({ v: 1, atMs: Date.now(), cmd, ...requestContext(opts) });
    const stamps = opts.proposedMs !== undefined ? opts : undefined;
    return this.withDeadline(this.core.propose(data, stamps), signal);
  }

  private proposeForwarded(w: ForwardedWrite): Promise<CommandResult> {
    return this.shutdown.track(async () => {
      if (this.shutdown.handingOver) await this.shutdown.afterHandoff();
      // Sent before the follower heard that leadership moved away from this stopping member.
      if (this.shutdown.shuttingDown && !this.core.stopping && !this.core.isLeader)
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
    if (!this.core.isLeader) throw new ServerError('not_leader', 'not the leader');
    // Checked again here: the forwarding member's table may be behind this one's.
    const kind = w.serverCmd?.type ?? w.cmd?.type;
    const refusal = kind === undefined ? undefined : this.versionGate.refusal(kind);
    if (refusal) throw refusal;
    if (w.serverCmd)
      return this.withDeadline(
        this.core.propose(encodeServerCommand(w.serverCmd)),
        this.deadlines.after(this.requestTimeoutMs),
      );
    if (!w.cmd) throw new ServerError('invalid_request', 'nothing to propose');
    // The user named here is the one the forwarding member authenticated: the peer channel
    // (mutual TLS when configured) is what vouches for it, and the state machine validates it.
    const data = encodeCommand({ v: 1, atMs: Date.now(), cmd: w.cmd, ...requestContext(w) });
    const timeoutMs = Math.min(Math.max(w.timeoutMs, 1), this.requestTimeoutMs);
    return this.withDeadline(this.core.propose(data), this.deadlines.after(timeoutMs));
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
      const lead = this.core.raft.lead;
      if (lead !== NONE) return lead;
      if (signal.aborted || Date.now() > deadline || this.core.stopping) break;
      await new Promise((r) => setTimeout(r, this.config.tickMs));
    }
    throw new ServerError('unavailable', 'no leader is elected', { retryAfterSeconds: 1 });
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
    if (this.core.removed !== undefined) throw removedError();
    if (this.core.stopping)
      throw new ServerError('unavailable', 'the node is shutting down', { retryAfterSeconds: 1 });
    const signal = opts.signal ?? this.deadlines.after(this.requestTimeoutMs);
    if (opts.consistency === 'linearizable') {
      await this.waitForLeader(signal);
      this.metrics.linearizableReads.inc();
      await this.withDeadline(this.core.readIndex(), signal, readTimeoutError);
    }
    if (opts.minRevision !== undefined && opts.minRevision > this.core.kv.revision) {
      await this.withDeadline(this.core.waitRevision(opts.minRevision), signal, readTimeoutError);
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
    return this.core.kv;
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
      appliedIndex: this.core.kv.appliedIndex,
      revision: this.core.kv.revision,
      compactRevision: this.core.kv.compactRevision,
      takenAt: new Date().toISOString(),
    };
    return { header, bytes: encodeBackup({ header, state: this.core.kv.snapshot() }) };
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

  private proposeConfChange(cc: ConfChange, signal: AbortSignal): Promise<void> {
    return this.withDeadline(this.core.proposeConfChange(cc), signal);
  }

  private peerDeadline(): AbortSignal {
    return this.deadlines.after(this.requestTimeoutMs);
  }

  private localLeaseViews(id?: string): LeaseView[] {
    const leases =
      id === undefined
        ? this.core.kv.leases()
        : [this.core.kv.lease(id)].filter((l) => l !== undefined);
    return leases.map((l) => {
      const remainingMs = this.leaseKeeper.remainingMs(l.id) ?? l.remainingMs ?? l.ttlMs;
      return {
        id: l.id,
        ...(l.owner !== undefined ? { owner: l.owner } : {}),
        ttl: Math.round(l.ttlMs / 1000),
        remaining: Math.ceil(remainingMs / 1000),
        keys: id === undefined ? [] : [...(this.core.kv.lease(l.id)?.keys ?? [])],
      };
    });
  }

  private async leaseViewsForPeer(id: string | undefined): Promise<LeaseView[]> {
    if (!this.core.isLeader)
      throw new ServerError('unavailable', 'not the leader', { retryAfterSeconds: 1 });
    await this.readBarrier({ consistency: 'linearizable' });
    return this.localLeaseViews(id);
  }

  // ------------------------------------------------------------------ status

  statusSync() {
    const st = this.core.status();
    const isLearner = st.learners.includes(this.id);
    const role = isLearner ? 'learner' : st.role === 'preCandidate' ? 'candidate' : st.role;
    return {
      id: this.id,
      name: this.config.name,
      role: role as 'leader' | 'follower' | 'candidate' | 'learner',
      leader: st.lead === NONE ? null : st.lead,
      term: st.term,
      commitIndex: st.commit,
      appliedIndex: this.core.kv.appliedIndex,
      revision: this.core.kv.revision,
      compactRevision: this.core.kv.compactRevision,
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
    const lead = this.core.raft.lead;
    return {
      leader: lead === NONE ? null : lead,
      members: this.members.list().map((m) => ({
        ...m,
        /** null until the member has published it (it then counts as the oldest compatible version). */
        version: m.version ?? null,
        role: (this.core.confState.learners.includes(m.id) ? 'learner' : 'voter') as
          | 'voter'
          | 'learner',
      })),
    };
  }

  health(): { healthy: boolean; reason?: string } {
    if (this.core.removed !== undefined) return { healthy: false, reason: 'removed' };
    if (this.shuttingDown) return { healthy: false, reason: 'shutting down' };
    if (this.core.raft.lead === NONE) return { healthy: false, reason: 'no leader' };
    const lag = this.core.raft.log.committed - this.core.kv.appliedIndex;
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
    if (this.core.removed !== undefined) return { ready: false, reason: 'removed' };
    if (this.shuttingDown) return { ready: false, reason: 'shutting_down' };
    if (this.core.raft.lead === NONE) return { ready: false, reason: 'no_leader' };
    if (this.core.raft.log.committed - this.core.kv.appliedIndex > 1000)
      return { ready: false, reason: 'catching_up' };
    return { ready: true };
  }

  /**
   * GET /livez: the process is up and its Raft loop is running (not wedged
   * by a failed disk). Independent of the leader and the quorum, so that a
   * liveness probe does not restart every member during a quorum loss.
   */
  liveness(): { live: boolean; reason?: string; detail?: string } {
    const detail = this.core.failureReason;
    if (detail !== undefined) return { live: false, reason: 'a disk write failed', detail };
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
    return this.shutdown.shuttingDown || this.core.stopping;
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
    const outcome = this.core.stopping ? undefined : await this.shutdown.run();
    await this.close();
    return outcome;
  }

  private async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.core.stop();
    this.watches.closeAll('shutdown');
    this.leaderTransfers.close();
    this.unsubscribePeerTls?.();
    await this.peerServer?.close().catch(() => {});
    await this.transport.close().catch(() => {});
    await this.forwarder.close();
    await this.core.close();
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
  /**
   * Latency accounting (write-accounting.ts), performance.now() ms, stamped here for the
   * HTTP layer: when the command went to the core (or the forwarder), when it was applied
   * (or the leader's answer came). A caller that wants them initializes both to NaN.
   */
  proposedMs?: number;
  appliedMs?: number;
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
