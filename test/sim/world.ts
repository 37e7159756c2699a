import pino from 'pino';
import type { Command } from '../../src/kv/commands.js';
import { encodeCommand } from '../../src/kv/commands.js';
import type { CommandResult } from '../../src/kv/results.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { type ConfChange, type Entry, type Message, SeededRandom } from '../../src/raft/index.js';
import { ServerError } from '../../src/server/errors.js';
import { attachLeaseKeeper } from '../../src/server/lease-keeper-attach.js';
import { type Member, MemberTable } from '../../src/server/members.js';
import { NodeCore, type NodeCoreConfig } from '../../src/server/node-core.js';
import { attachSnapshotPolicy } from '../../src/server/snapshot-policy.js';
import { StorageError } from '../../src/storage/errors.js';
import type { KvInput, KvOutput, Operation } from '../support/linearizability.js';
import { checkDurability, type DurabilityWrite } from './checkers/durability.js';
import { LeaseSafetyChecker } from './checkers/lease-safety.js';
import { checkKvHistory } from './checkers/linearizability.js';
import { CLOCK_RATE_BOUND, MIN_CLOCK_RATE, NodeClock, SimScheduler } from './clock.js';
import { type CrashKind, SimDisk, type SimStorage } from './disk.js';
import {
  type DurableLog,
  type ObservedLog,
  type ObservedNode,
  SafetyChecker,
  Violation,
} from './invariants.js';
import { SimNetwork } from './network.js';
import type { PartitionShape, Schedule, SimEvent, World } from './schedule.js';

export interface SimOptions {
  nodes: number;
  /** Members that membership changes may add beyond the founders. */
  spareNodes?: number;
  /** Virtual ms allowed after healing for a leader to commit and serve reads. */
  livenessMs?: number;
  /** Check the lease promise from the keepalive's acknowledgement instead of its sending. */
  leaseFromAck?: boolean;
  /** Every trace line as it happens, with role changes and membership applies (`--trace`). */
  traceTo?: (line: string) => void;
}

export interface SimStats {
  runs: number;
  events: number;
  virtualSeconds: number;
  /** Writes (puts, CAS, txns, deletes) whose client got "ok". */
  ackedWrites: number;
  /** Writes refused before being proposed (a definite "not applied"). */
  refusedWrites: number;
  /** Writes whose client never learned the outcome. */
  unknownWrites: number;
  /** Linearizable reads served (ReadIndex, then the state machine). */
  reads: number;
  casOps: number;
  txns: number;
  uniqueWritesAcked: number;
  processCrashes: number;
  powerLosses: number;
  partitions: number;
  pauses: number;
  /** Terms that had a leader. */
  leaderTerms: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  confChanges: number;
  leaderTransfers: number;
  /** Disk faults that fired: failed writes, failed fsyncs, corrupted entries. */
  diskWriteFaults: number;
  diskSyncFaults: number;
  corruptions: number;
  /** Nodes that stopped on a failed write (fail-stop). */
  failStops: number;
  /** Nodes that found a corrupt entry (at open, or reading it) and stopped. */
  corruptionsDetected: number;
  tornBatches: number;
  lostBatches: number;
  leaseGrants: number;
  leaseRenewals: number;
  /** Leases revoked by the leader for expiry, checked against the lease promise. */
  leaseRevokes: number;
  /** Linearizability: keys the checker gave up on (even with the larger budget). Never a pass. */
  checkerUnknownKeys: number;
  checkerUnknownRuns: number;
  checkedOperations: number;
}

export function emptyStats(): SimStats {
  return {
    runs: 0,
    events: 0,
    virtualSeconds: 0,
    ackedWrites: 0,
    refusedWrites: 0,
    unknownWrites: 0,
    reads: 0,
    casOps: 0,
    txns: 0,
    uniqueWritesAcked: 0,
    processCrashes: 0,
    powerLosses: 0,
    partitions: 0,
    pauses: 0,
    leaderTerms: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    confChanges: 0,
    leaderTransfers: 0,
    diskWriteFaults: 0,
    diskSyncFaults: 0,
    corruptions: 0,
    failStops: 0,
    corruptionsDetected: 0,
    tornBatches: 0,
    lostBatches: 0,
    leaseGrants: 0,
    leaseRenewals: 0,
    leaseRevokes: 0,
    checkerUnknownKeys: 0,
    checkerUnknownRuns: 0,
    checkedOperations: 0,
  };
}

/** Keys the linearizability history writes and reads. */
const KEYS = Array.from({ length: 16 }, (_, i) => `k${String(i).padStart(2, '0')}`);
/** Keys that also take CAS, txn and delete operations. */
const CAS_KEYS = 4;
const TICK_MS = 50;
/** Concurrent clients, each with one operation at a time. */
const CLIENTS = 8;
const CLIENT_TIMEOUT_MS = 3000;
const ELECTION_TICKS = 10;
const silent = pino({ level: 'silent' });

type MemberStatus = 'up' | 'down' | 'dead' | 'removed';

/** One simulated member: a disk that outlives its processes, and the current process, if any. */
class SimMember implements ObservedNode {
  clock: NodeClock | undefined;
  storage: SimStorage | undefined;
  core: NodeCore | undefined;
  incarnation = 0;
  /** What the checker saw applied (the state machine's index before the next entry). */
  applied = 0;
  status: MemberStatus = 'down';
  /** Its disk holds a corrupted entry: once found, the member stays down. */
  damaged = false;
  /** True time of a disk fault in this incarnation: nothing may be acknowledged after it. */
  faultAt: number | undefined;
  private readonly observedLog: ObservedLog;

  constructor(
    readonly id: string,
    readonly disk: SimDisk,
    readonly rate: number,
    readonly member: Member,
  ) {
    // The checkers read logs without tripping the disk's read faults (they are not the node).
    const log = () => this.core!.raft.log;
    this.observedLog = {
      get committed() {
        return log().committed;
      },
      firstIndex: () => log().firstIndex(),
      lastIndex: () => log().lastIndex(),
      term: (i) => disk.inspecting(() => log().term(i)),
      slice: (lo, hi) => disk.inspecting(() => log().slice(lo, hi)),
    };
  }

  get raft(): ObservedNode['raft'] {
    const core = this.core;
    if (!core) return undefined;
    const r = core.raft;
    return { role: r.role, term: r.term, log: this.observedLog, voters: r.voters };
  }

  get durable(): DurableLog {
    return this.disk.durableLog();
  }

  get live(): boolean {
    return this.core !== undefined;
  }
}

interface LeaseTrack {
  id: string;
  ttlMs: number;
  /** Late renewers cut it close: their keepalives race the leader's expiry. */
  late: boolean;
  /** True time until which the client keeps it alive. */
  keepUntil: number;
  revoked: boolean;
}

/**
 * A whole cluster in one process, running the shipped node core: each member
 * is a NodeCore with the real KvStateMachine, lease keeper and snapshot policy
 * over a SimDisk, the simulated network and its own virtual clock. Clients
 * write many keys (puts, CAS, txns, deletes), write unique keys for the
 * durability check, read linearizably, and hold leases; the schedule injects
 * partitions, loss, crashes, power losses, pauses, disk faults, corruption,
 * membership changes and leadership transfers. The Raft safety checker runs
 * after every event; the history, the durability of answered writes and the
 * lease promise are checked at the end.
 */
export class SimWorld {
  readonly scheduler = new SimScheduler();
  readonly network: SimNetwork;
  readonly checker = new SafetyChecker();
  readonly leaseChecker = new LeaseSafetyChecker({ minClockRate: MIN_CLOCK_RATE });
  readonly history: Operation<KvInput, KvOutput>[] = [];
  readonly uniqueWrites: DurabilityWrite[] = [];
  readonly stats: SimStats = emptyStats();
  readonly members = new Map<string, SimMember>();
  /** The last events, printed with a violation. */
  readonly trace: string[] = [];
  private readonly rng: SeededRandom;
  private readonly world: World;
  private readonly options: Required<Omit<SimOptions, 'traceTo'>> & Pick<SimOptions, 'traceTo'>;
  private readonly config: NodeCoreConfig;
  private violation: Error | undefined;
  private nextMemberNumber: number;
  private opSeq = 0;
  /** Numbers client requests: each is its own source of events in the member it goes to. */
  private requestSeq = 0;
  /** Logical time of the client history (call and return order). */
  private historyClock = 0;
  private clientsOn = true;
  private readonly lastValue = new Map<string, string | null>();
  private readonly leases = new Map<string, LeaseTrack>();
  private readonly confChangeIndexes = new Set<number>();
  private readonly revokedLeases = new Set<string>();
  private eventsSinceLogCheck = 0;

  constructor(schedule: Schedule, options: SimOptions) {
    this.world = schedule.world;
    this.options = {
      nodes: options.nodes,
      spareNodes: options.spareNodes ?? 2,
      livenessMs: options.livenessMs ?? 60_000,
      leaseFromAck: options.leaseFromAck ?? false,
      ...(options.traceTo ? { traceTo: options.traceTo } : {}),
    };
    this.rng = new SeededRandom(this.world.seed);
    this.network = new SimNetwork(this.scheduler, new SeededRandom(this.world.seed ^ 0x5bd1e995), {
      clockOf: (id) => this.members.get(id)?.clock,
      deliver: (m) => this.deliver(m),
      snapshotStatus: (from, to, ok) => this.members.get(from)?.core?.reportSnapshot(to, ok),
    });
    this.network.dropRate = this.world.dropRate;
    this.network.duplicateRate = this.world.duplicateRate;
    this.network.minDelayMs = this.world.minDelayMs;
    this.network.maxDelayMs = this.world.maxDelayMs;
    this.config = {
      tickMs: TICK_MS,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: this.world.heartbeatTicks,
      maxPendingProposals: 2000,
      maxPendingProposalBytes: 8 * 1024 * 1024,
      maxSizePerMsgBytes: this.world.maxSizePerMsgBytes,
      maxInflightMsgs: this.world.maxInflightMsgs,
    };
    const ids = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    this.nextMemberNumber = options.nodes + 1;
    const founders = ids.map((id) => memberRecord(id));
    for (const [i, id] of ids.entries()) {
      const disk = SimDisk.founding(id, ids, this.diskRng(), this.diskLatency(), founders);
      this.addMember(new SimMember(id, disk, this.world.clockRates[i % 7]!, founders[i]!));
    }
    for (const m of this.members.values()) this.boot(m);
    this.startClients();
  }

  private diskRng(): SeededRandom {
    return new SeededRandom(this.rng.nextUint32());
  }

  private diskLatency() {
    return { minMs: 0, maxMs: this.world.diskMaxMs, syncMs: this.world.diskSyncMs };
  }

  private addMember(m: SimMember): void {
    this.members.set(m.id, m);
    m.disk.onFault = (fault) => {
      if (fault.kind === 'write') this.stats.diskWriteFaults++;
      else this.stats.diskSyncFaults++;
      m.faultAt = this.scheduler.now();
      this.note(`${m.id} disk ${fault.kind} failed (entries ${fault.entries.join(',') || '-'})`);
      const incarnation = m.incarnation;
      // Fail-stop: the core must stop; if it is still running a while later, that is a bug.
      this.scheduler.after(2000, () => {
        if (m.incarnation === incarnation && m.core && !m.core.failed) {
          this.fail(
            new Violation(
              'fail-stop',
              `${m.id} kept running 2 s after a failed disk ${fault.kind}`,
            ),
          );
        }
      });
    };
  }

  // ---------------------------------------------------------------- processes

  private boot(m: SimMember): void {
    if (m.live || m.status === 'dead' || m.status === 'removed') return;
    m.incarnation++;
    m.faultAt = undefined;
    const clock = new NodeClock(this.scheduler, {
      rate: m.rate,
      startLocalMs: this.rng.nextInt(1_000_000),
      wallSkewMs: this.rng.nextInt(2 * this.world.wallSkewMaxMs) - this.world.wallSkewMaxMs,
    });
    let storage: SimStorage;
    try {
      storage = m.disk.open(clock);
    } catch (err) {
      clock.kill();
      if (err instanceof StorageError && err.code === 'corrupt') {
        // The node refuses to start on a damaged data dir; it stays down (an operator's job).
        this.stats.corruptionsDetected++;
        m.status = 'dead';
        this.note(`${m.id} refused to start: ${err.message.slice(0, 120)}`);
        return;
      }
      throw err;
    }
    const kv = KvStateMachine.load(storage.kvRecords(), storage.appliedIndex(), {});
    const members = new MemberTable(storage.members(), storage.removedMembers());
    if (members.isRemoved(m.id)) {
      clock.kill();
      m.status = 'removed';
      return;
    }
    const core = new NodeCore({
      id: m.id,
      storage,
      transport: {
        sendNow: (messages) => {
          for (const msg of messages) this.network.send(msg);
        },
        addPeer: () => {},
        removePeer: () => {},
      },
      clock,
      randomSeed: this.rng.nextUint32(),
      kv,
      kvOptions: {},
      members,
      log: silent,
      config: this.config,
    });
    m.clock = clock;
    m.storage = storage;
    m.core = core;
    m.applied = kv.appliedIndex;
    m.status = 'up';
    const incarnation = m.incarnation;
    const mine = () => m.incarnation === incarnation && m.core === core;
    clock.onUncaught = (err) => this.processDied(m, core, err);
    storage.onHardState = (hs) => {
      if (mine()) this.guard(() => this.checker.onPersistHardState(m, hs.commit));
    };
    core.on('entryApplied', (e) => {
      if (!mine()) return;
      this.guard(() => this.checker.onApply(m, e));
      m.applied = e.index;
    });
    core.on('snapshotInstalled', ({ index }) => {
      if (!mine()) return;
      this.guard(() => this.checker.onApplySnapshot(m, index));
      m.applied = index;
      this.stats.snapshotsInstalled++;
    });
    if (this.options.traceTo) this.traceCore(m, core, mine);
    core.on('confChangeApplied', (e) => {
      if (!this.confChangeIndexes.has(e.index)) {
        this.confChangeIndexes.add(e.index);
        this.stats.confChanges++;
      }
    });
    core.on('result', (result, entry) => this.onResult(m, core, result, entry));
    let stopped = false;
    core.on('fatal', (err) => {
      // Only the first stop counts: work queued behind a failed write may fail after it.
      if (!mine() || stopped) return;
      stopped = true;
      this.note(`${m.id} stopped: ${String(err).slice(0, 160)}`);
      const storageFault = err instanceof StorageError;
      if (storageFault && (err as StorageError).code === 'corrupt')
        this.stats.corruptionsDetected++;
      else if (storageFault) this.stats.failStops++;
      else this.fail(new Violation('core-fatal', `${m.id}'s core stopped on ${String(err)}`));
      // The process exits; the supervisor may start it again later.
      this.scheduler.after(0, () => {
        if (mine()) this.kill(m, 'process');
      });
    });
    core.on('removed', (reason) => {
      if (!mine()) return;
      this.note(`${m.id} removed: ${reason}`);
      this.scheduler.after(0, () => {
        if (!mine()) return;
        this.kill(m, 'process');
        m.status = 'removed';
      });
    });
    attachLeaseKeeper(core, {
      propose: (cmd) => core.propose(encodeCommand({ v: 1, atMs: clock.wallNow(), cmd })),
      log: silent,
      checkpointIntervalMs: Math.max(2 * TICK_MS * ELECTION_TICKS, 1000),
    });
    attachSnapshotPolicy(core, storage, {
      snapshotCount: this.world.snapshotCount,
      catchUpEntries: this.world.catchUpEntries,
      onTaken: () => {
        this.stats.snapshotsTaken++;
      },
    });
    core.start();
  }

  /** An exception escaped the process (a corrupt read mid-step, say): it dies. */
  private processDied(m: SimMember, core: NodeCore, err: unknown): void {
    if (m.core !== core) return;
    this.note(`${m.id} died: ${String(err).slice(0, 160)}`);
    if (err instanceof StorageError && err.code === 'corrupt') this.stats.corruptionsDetected++;
    else
      this.fail(
        new Violation(
          'exception',
          `${m.id}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        ),
      );
    this.kill(m, 'process');
  }

  private kill(m: SimMember, kind: CrashKind): void {
    if (!m.live) {
      if (kind === 'power') m.disk.crash('power');
      return;
    }
    m.clock!.kill();
    m.disk.crash(kind);
    m.core = undefined;
    m.storage = undefined;
    m.clock = undefined;
    m.status = 'down';
  }

  private deliver(msg: Message): void {
    const m = this.members.get(msg.to);
    const core = m?.core;
    if (!m || !core) return;
    try {
      core.step(msg);
    } catch (err) {
      this.processDied(m, core, err);
    }
  }

  // ---------------------------------------------------------------- helpers

  private live(): SimMember[] {
    return [...this.members.values()].filter((m) => m.live);
  }

  private pick<T>(items: readonly T[], n: number): T | undefined {
    return items.length === 0 ? undefined : items[n % items.length];
  }

  /** The live member that leads in the highest term, if any. */
  leader(): SimMember | undefined {
    let best: SimMember | undefined;
    for (const m of this.live()) {
      if (
        m.core!.isLeader &&
        !m.clock!.paused &&
        (!best || m.core!.raft.term > best.core!.raft.term)
      )
        best = m;
    }
    return best;
  }

  /** With `--trace`: each member's role changes and the membership changes it applies. */
  private traceCore(m: SimMember, core: NodeCore, mine: () => boolean): void {
    const where = () => `last ${core.raft.log.lastIndex()} commit ${core.raft.log.committed}`;
    core.on('softState', (lead, role, term) => {
      if (mine()) this.note(`${m.id} ${role} term ${term} lead ${lead || '-'} ${where()}`);
    });
    core.on('confChangeApplied', (e, cc) => {
      if (mine())
        this.note(
          `${m.id} applied ${cc.type} ${cc.nodeId} (entry ${e.index}) as ${core.raft.role}`,
        );
    });
  }

  private note(text: string): void {
    const line = `[t=${this.scheduler.now().toFixed(1)}] ${text}`;
    this.trace.push(line);
    this.options.traceTo?.(line);
    if (this.trace.length > 80) this.trace.shift();
  }

  /** Records the first violation; the run stops after the current event. */
  private fail(err: Error): void {
    this.violation ??= err;
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private afterEach = (): boolean => {
    for (const m of this.members.values())
      if (m.live) this.guard(() => this.checker.observe(m, this.members));
    if (++this.eventsSinceLogCheck >= 64) {
      this.eventsSinceLogCheck = 0;
      this.guard(() => this.checker.checkLogMatching([...this.members.values()]));
    }
    return this.violation === undefined;
  };

  private async runFor(ms: number): Promise<void> {
    await this.scheduler.runUntil(this.scheduler.now() + ms, this.afterEach);
    if (this.violation) throw this.violation;
  }

  // ---------------------------------------------------------------- events

  async apply(event: SimEvent): Promise<void> {
    this.stats.events++;
    this.note(JSON.stringify(event));
    const targetOf = (e: { node: number; leader?: boolean }) =>
      e.leader ? (this.leader() ?? this.pick(this.live(), e.node)) : this.pick(this.live(), e.node);
    switch (event.kind) {
      case 'wait':
        break;
      case 'burst':
        for (let i = 0; i < event.count; i++) this.clientOp();
        break;
      case 'partition':
        this.partition(event.shape, event.node, event.mask);
        this.stats.partitions++;
        break;
      case 'heal':
        this.network.heal();
        break;
      case 'flap':
        // Whoever leads is cut off, again and again, leaving uncommitted tails behind.
        for (let i = 0; i < event.times; i++) {
          this.partition('isolateLeader', i, 0);
          this.stats.partitions++;
          await this.runFor(event.gapMs);
        }
        this.network.heal();
        break;
      case 'loss':
        this.network.dropRate = event.dropRate;
        this.network.duplicateRate = event.duplicateRate;
        break;
      case 'crash': {
        const m = targetOf(event);
        if (m) {
          this.kill(m, 'process');
          this.stats.processCrashes++;
        }
        break;
      }
      case 'powerLoss': {
        const m = targetOf(event);
        if (m) {
          this.kill(m, 'power');
          this.stats.powerLosses++;
        }
        break;
      }
      case 'powerLossAll':
        for (const m of this.live()) {
          this.kill(m, 'power');
          this.stats.powerLosses++;
        }
        for (const m of this.members.values()) this.boot(m);
        break;
      case 'restart': {
        const down = [...this.members.values()].filter((m) => m.status === 'down');
        const m = this.pick(down, event.node);
        if (m) this.boot(m);
        break;
      }
      case 'pause': {
        const m = targetOf(event);
        const clock = m?.clock;
        if (clock && !clock.paused) {
          clock.pause();
          this.stats.pauses++;
          this.scheduler.after(event.ms, () => clock.resume((n) => this.rng.nextInt(n)));
        }
        break;
      }
      case 'diskFault': {
        const m = targetOf(event);
        m?.disk.arm(event.fault);
        break;
      }
      case 'corrupt':
        this.corrupt(event.node, event.whenRead, event.pick);
        break;
      case 'transfer': {
        const leader = this.leader();
        const to =
          leader &&
          this.pick(
            leader.core!.raft.voters.filter((v) => v !== leader.id),
            event.node,
          );
        if (leader && to && leader.core!.transferLeadership(to).ok) this.stats.leaderTransfers++;
        break;
      }
      case 'addLearner':
        this.addLearner();
        break;
      case 'promote': {
        const leader = this.leader();
        if (!leader || leader.core!.raft.voters.length >= 5) break;
        const id = this.pick(leader.core!.raft.learners, event.node);
        if (id) this.confChange(leader, { type: 'addNode', nodeId: id });
        break;
      }
      case 'remove': {
        const leader = this.leader();
        if (!leader) break;
        const r = leader.core!.raft;
        const candidates = r.voters.length > 3 ? [...r.voters, ...r.learners] : [...r.learners];
        const id = this.pick(candidates, event.node);
        const after = r.voters.filter((v) => v !== id);
        if (id && this.healthyMajority(after))
          this.confChange(leader, { type: 'removeNode', nodeId: id });
        break;
      }
    }
    await this.runFor(event.afterMs);
  }

  private confChange(leader: SimMember, cc: ConfChange): void {
    leader.core!.proposeConfChange(cc).catch(() => {});
  }

  private addLearner(): void {
    if (this.nextMemberNumber > this.options.nodes + this.options.spareNodes) return;
    const leader = this.leader();
    if (!leader) return;
    const id = `n${this.nextMemberNumber++}`;
    const record = memberRecord(id);
    // As production adds a member: the conf change carries the Member as its context.
    this.confChange(leader, { type: 'addLearner', nodeId: id, context: JSON.stringify(record) });
    const disk = SimDisk.joining(id, this.diskRng(), this.diskLatency());
    const m = new SimMember(
      id,
      disk,
      this.world.clockRates[(this.nextMemberNumber - 2) % 7]!,
      record,
    );
    this.addMember(m);
    this.boot(m);
  }

  /** Damages a stored log entry; at most a minority of the founders may end up dead. */
  private corrupt(n: number, whenRead: boolean, pick: number): void {
    // A damaged member never comes back (an operator would replace it): at most one at a time,
    // and the voters (as the leader, or any member, knows them) keep a healthy majority.
    if ([...this.members.values()].some((m) => m.damaged)) return;
    const candidates = [...this.members.values()].filter(
      (m) => m.status === 'up' || m.status === 'down',
    );
    const m = this.pick(candidates, n);
    if (!m) return;
    const voters = this.knownVoters();
    if (voters.includes(m.id) && !this.healthyMajority(voters, m.id)) return;
    const indexes = m.disk.storedLogIndexes();
    const index = this.pick(indexes, pick);
    if (index === undefined) return;
    if (m.disk.corruptEntry(index, { whenRead: whenRead && m.live })) {
      m.damaged = true;
      this.stats.corruptions++;
      this.note(`${m.id} log entry ${index} corrupted${whenRead ? ' (found when read)' : ''}`);
    }
  }

  /** The largest voter set any live member knows (a superset guard for the schedule's choices). */
  private knownVoters(): string[] {
    let best: readonly string[] = [];
    for (const m of this.live())
      if (m.core!.raft.voters.length > best.length) best = m.core!.raft.voters;
    return [...best];
  }

  /** Whether `voters` keep a majority of undamaged members (counting `alsoDamaged` as damaged). */
  private healthyMajority(voters: readonly string[], alsoDamaged?: string): boolean {
    const healthy = voters.filter((id) => {
      const m = this.members.get(id);
      return m && !m.damaged && m.status !== 'removed' && id !== alsoDamaged;
    }).length;
    return healthy > voters.length / 2;
  }

  private partition(shape: PartitionShape, n: number, mask: number): void {
    this.network.heal();
    const ids = [...this.members.keys()].sort();
    const others = (x: string) => ids.filter((id) => id !== x);
    switch (shape) {
      case 'isolate': {
        const x = this.pick(ids, n)!;
        this.network.split([x], others(x));
        break;
      }
      case 'isolateLeader': {
        const x = this.leader()?.id ?? this.pick(ids, n)!;
        this.network.split([x], others(x));
        break;
      }
      case 'split': {
        let a = ids.filter((_, i) => (mask >> i) & 1);
        if (a.length === 0 || a.length === ids.length) a = [this.pick(ids, n)!];
        this.network.split(
          a,
          ids.filter((id) => !a.includes(id)),
        );
        break;
      }
      case 'oneWay': {
        const x = this.pick(ids, n)!;
        for (const y of others(x)) {
          if (mask & 1) this.network.block(x, y);
          else this.network.block(y, x);
        }
        break;
      }
      case 'bridge': {
        const bridge = this.pick(ids, n)!;
        const rest = others(bridge);
        const half = Math.ceil(rest.length / 2);
        this.network.split(rest.slice(0, half), rest.slice(half));
        break;
      }
    }
    this.note(`blocked ${this.network.blockedLinks().join(' ')}`);
  }

  // ---------------------------------------------------------------- clients

  /**
   * Steady client traffic, so that faults always hit operations in flight:
   * CLIENTS clients, each with one operation at a time, giving up on one after
   * CLIENT_TIMEOUT_MS (its outcome stays unknown), as a real client times out.
   */
  private startClients(): void {
    for (let c = 0; c < CLIENTS; c++) this.clientLoop();
  }

  private clientLoop(): void {
    const gap = (CLIENTS * 1000) / this.world.opsPerSecond;
    this.scheduler.after(gap * (0.5 + this.rng.nextFloat()), () => {
      if (!this.clientsOn) return;
      const op = this.clientOp();
      if (!op) return this.clientLoop();
      let settled = false;
      const next = () => {
        if (settled) return;
        settled = true;
        this.clientLoop();
      };
      op.then(next, next);
      this.scheduler.after(CLIENT_TIMEOUT_MS, next);
    });
  }

  private clientOp(): Promise<void> | undefined {
    const r = this.rng.nextInt(100);
    const key = KEYS[this.rng.nextInt(KEYS.length)]!;
    // CAS, txns and deletes go to the first CAS_KEYS keys only: on put-only keys the checker
    // can drop unobserved puts of unknown outcome, which keeps its search small.
    const casKey = KEYS[this.rng.nextInt(CAS_KEYS)]!;
    if (r < 30) return this.put(key);
    else if (r < 42) return this.uniquePut();
    else if (r < 48) return this.cas(casKey, false);
    else if (r < 52) return this.cas(casKey, true);
    else if (r < 54) return this.del(casKey);
    else if (r < 73) return this.read(this.pick(this.live(), this.rng.nextInt(8)), key);
    // A client that reads from the member it believes leads: one that believes so itself,
    // deposed or paused as it may be.
    else if (r < 92) return this.read(this.writeTarget(), key);
    else return this.leaseOp();
  }

  /** A client writes to whichever member believes it leads (a stale leader too). */
  private writeTarget(): SimMember | undefined {
    const leaders = this.live().filter((m) => m.core!.isLeader);
    return this.pick(leaders, this.rng.nextInt(8));
  }

  private propose(
    m: SimMember,
    cmd: Command,
    onOk: (result: CommandResult) => void,
    onRefused: () => void,
    onUnknown: () => void,
  ): Promise<void> {
    const incarnation = m.incarnation;
    const clock = m.clock!;
    return this.inProcess(m, (core) =>
      core.propose(encodeCommand({ v: 1, atMs: clock.wallNow(), cmd })),
    ).then(
      (result) => {
        if (m.faultAt !== undefined && m.incarnation === incarnation) {
          this.fail(
            new Violation(
              'fail-stop',
              `${m.id} acknowledged a ${cmd.type} at t=${this.scheduler.now()} after its disk write failed at t=${m.faultAt}`,
            ),
          );
        }
        onOk(result);
      },
      (err: unknown) => {
        // 'timeout': proposed, outcome unknown — except when another leader's entry took its
        // index: the core says it can never be applied, and the checks hold it to that.
        // Anything else: refused before proposing.
        if (
          err instanceof ServerError &&
          (err.code !== 'timeout' || /superseded/.test(err.message))
        )
          onRefused();
        else {
          onUnknown();
        }
      },
    );
  }

  /**
   * A client's request, handled in the member's process: a paused member takes it when
   * resumed, in any order relative to what its peers sent meanwhile. A request to a
   * process that dies first is never answered (the client times out).
   */
  private inProcess<T>(m: SimMember, handle: (core: NodeCore) => Promise<T>): Promise<T> {
    const core = m.core!;
    return new Promise<T>((resolve, reject) => {
      m.clock!.afterTrue(
        0,
        () => {
          if (m.core === core) handle(core).then(resolve, reject);
        },
        `client:${++this.requestSeq}`,
      );
    });
  }

  private begin(input: KvInput): Operation<KvInput, KvOutput> {
    const op: Operation<KvInput, KvOutput> = {
      clientId: ++this.opSeq,
      input,
      call: this.historyClock++,
    };
    this.history.push(op);
    return op;
  }

  private end(op: Operation<KvInput, KvOutput>, output: KvOutput): void {
    op.ret = this.historyClock++;
    op.output = output;
  }

  private drop(op: Operation<KvInput, KvOutput>): void {
    const i = this.history.lastIndexOf(op);
    if (i >= 0) this.history.splice(i, 1);
  }

  private put(key: string): Promise<void> | undefined {
    const m = this.writeTarget();
    if (!m) return undefined;
    const value = `v${this.opSeq + 1}`;
    const op = this.begin({ op: 'put', key, value });
    return this.propose(
      m,
      { type: 'put', key, value },
      (r) => {
        if (!r.ok) return this.refused(op);
        this.stats.ackedWrites++;
        this.lastValue.set(key, value);
        this.end(op, { op: 'put' });
      },
      () => this.refused(op),
      () => this.stats.unknownWrites++,
    );
  }

  private refused(op: Operation<KvInput, KvOutput>): void {
    this.stats.refusedWrites++;
    this.drop(op);
  }

  /** CAS on the value: a put with a guard, or a txn with a compare. */
  private cas(key: string, asTxn: boolean): Promise<void> | undefined {
    const m = this.writeTarget();
    if (!m) return undefined;
    const expected = this.rng.nextInt(4) === 0 ? null : (this.lastValue.get(key) ?? null);
    const value = `v${this.opSeq + 1}`;
    const op = this.begin({ op: 'cas', key, expected, value });
    const cmd: Command = asTxn
      ? {
          type: 'txn',
          compare: [{ key, target: 'value', op: '==', value: expected }],
          success: [{ op: 'put', key, value }],
          failure: [],
        }
      : expected === null
        ? { type: 'put', key, value, prevRevision: 0 }
        : { type: 'put', key, value, prevValue: expected };
    if (asTxn) this.stats.txns++;
    else this.stats.casOps++;
    return this.propose(
      m,
      cmd,
      (r) => {
        let ok: boolean;
        if (r.ok && r.op === 'txn') ok = r.succeeded;
        else if (r.ok) ok = true;
        else if (r.code === 'compare_failed') ok = false;
        else return this.refused(op);
        this.stats.ackedWrites++;
        if (ok) this.lastValue.set(key, value);
        this.end(op, { op: 'cas', ok });
      },
      () => this.refused(op),
      () => this.stats.unknownWrites++,
    );
  }

  private del(key: string): Promise<void> | undefined {
    const m = this.writeTarget();
    if (!m) return undefined;
    const op = this.begin({ op: 'delete', key });
    return this.propose(
      m,
      { type: 'delete', key },
      (r) => {
        if (!r.ok || r.op !== 'delete') return this.refused(op);
        this.stats.ackedWrites++;
        this.lastValue.set(key, null);
        this.end(op, { op: 'delete', deleted: r.deleted > 0 });
      },
      () => this.refused(op),
      () => this.stats.unknownWrites++,
    );
  }

  /** A key written once, never again: the durability check's sample. */
  private uniquePut(): Promise<void> | undefined {
    const m = this.writeTarget();
    if (!m) return undefined;
    const key = `u/${this.uniqueWrites.length}`;
    const w: DurabilityWrite = { key, value: `u${this.opSeq++}`, outcome: 'unknown' };
    this.uniqueWrites.push(w);
    return this.propose(
      m,
      { type: 'put', key, value: w.value },
      (r) => {
        w.outcome = r.ok ? 'ok' : 'refused';
        if (r.ok) {
          this.stats.ackedWrites++;
          this.stats.uniqueWritesAcked++;
        }
      },
      () => {
        w.outcome = 'refused';
        this.stats.refusedWrites++;
      },
      () => this.stats.unknownWrites++,
    );
  }

  /** A linearizable read: ReadIndex on any member, then its state machine. */
  private read(
    m: SimMember | undefined,
    key: string,
    onDone?: (value: string | null) => void,
  ): Promise<void> | undefined {
    const core = m?.core;
    if (!m || !core) return undefined;
    const op = this.begin({ op: 'get', key });
    return this.inProcess(m, () => core.readIndex()).then(
      () => {
        const got = core.kv.get(key);
        if (!got.ok) return this.drop(op);
        const value = got.kv?.value ?? null;
        this.stats.reads++;
        this.end(op, { op: 'get', value });
        onDone?.(value);
      },
      () => this.drop(op),
    );
  }

  // ---------------------------------------------------------------- leases

  /**
   * Where a client's lease time starts: by default when it SENT the grant or keepalive that
   * was acknowledged (as Chubby's and etcd's clients can rely on: the leader's deadline starts
   * at its apply, after the send). With `leaseFromAck` at the acknowledgement itself, which no
   * server can honour when the answer is delayed: a keepalive proposed by a leader that is then
   * paused or deposed is answered when that member applies it, long after the new leader
   * started the deadline.
   */
  private leaseClock(sentAt: number): number {
    return this.options.leaseFromAck ? this.scheduler.now() : sentAt;
  }

  private leaseOp(): Promise<void> | undefined {
    const m = this.writeTarget();
    if (!m) return undefined;
    const id = `L${++this.opSeq}`;
    const ttlMs = this.world.minTtlMs * (1 + this.rng.nextInt(3));
    const keepFor = this.rng.nextInt(3) * ttlMs * (1 + this.rng.nextInt(3));
    const sentAt = this.scheduler.now();
    return this.propose(
      m,
      { type: 'leaseGrant', id, ttlMs },
      (r) => {
        if (!r.ok) return;
        this.stats.leaseGrants++;
        this.guard(() => this.leaseChecker.granted(id, ttlMs, this.leaseClock(sentAt)));
        const track: LeaseTrack = {
          id,
          ttlMs,
          late: this.rng.nextFloat() < this.world.lateRenewalShare,
          keepUntil: this.scheduler.now() + keepFor,
          revoked: false,
        };
        this.leases.set(id, track);
        // A key attached to the lease goes with it.
        const holder = this.writeTarget();
        if (holder)
          this.propose(
            holder,
            { type: 'put', key: `lease-key/${id}`, value: id, lease: id },
            () => {},
            () => {},
            () => {},
          );
        this.keepAlive(track);
      },
      () => {},
      () => {},
    );
  }

  /**
   * The client renews every TTL / 3 until it lets the lease go (or it is revoked). A late
   * renewer cuts it close: half of its keepalives come at 0.9–1.05 × TTL, the other half
   * right at the leader's expiry — its deadline (TTL stretched by the clock-rate bound)
   * plus up to two lease-keeper ticks — so they race the revoke.
   */
  private keepAlive(track: LeaseTrack): void {
    const deadline = (track.ttlMs * (1 + CLOCK_RATE_BOUND)) / (1 - CLOCK_RATE_BOUND);
    const every = !track.late
      ? track.ttlMs / 3
      : this.rng.nextFloat() < 0.5
        ? track.ttlMs * (0.9 + 0.15 * this.rng.nextFloat())
        : deadline + 2 * TICK_MS * this.rng.nextFloat();
    this.scheduler.after(every, () => {
      if (!this.clientsOn || track.revoked || this.scheduler.now() > track.keepUntil) return;
      const m = this.writeTarget();
      const sentAt = this.scheduler.now();
      if (m) {
        this.propose(
          m,
          { type: 'leaseKeepAlive', id: track.id },
          (r) => {
            if (!r.ok) return;
            this.stats.leaseRenewals++;
            this.guard(() =>
              this.leaseChecker.keepaliveAcked(track.id, this.leaseClock(sentAt), track.ttlMs),
            );
          },
          () => {},
          () => {},
        );
      }
      this.keepAlive(track);
    });
  }

  private onResult(m: SimMember, core: NodeCore, result: CommandResult, _entry: Entry): void {
    if (!result.ok || result.op !== 'leaseRevoke') return;
    // The lease's keys went with it, in the same revision.
    const attached = core.kv.get(`lease-key/${result.id}`);
    if (attached.ok && attached.kv !== null) {
      this.fail(new Violation('lease-keys', `${m.id} revoked ${result.id} but kept its key`));
    }
    if (this.revokedLeases.has(result.id)) return;
    this.revokedLeases.add(result.id);
    const track = this.leases.get(result.id);
    if (track) track.revoked = true;
    this.stats.leaseRevokes++;
    this.guard(() => this.leaseChecker.revoked(result.id, this.scheduler.now(), 'expired'));
  }

  // ---------------------------------------------------------------- the end

  /**
   * Heals everything, restarts every member that can start, and requires that
   * within a bounded time a leader commits a new write and serves a
   * linearizable read of every key and every unique key; then checks the
   * history, the durability of every answered write and the lease promise.
   */
  async finish(): Promise<void> {
    this.note('heal all for liveness');
    this.clientsOn = false;
    this.network.heal();
    this.network.dropRate = 0;
    this.network.duplicateRate = 0;
    this.network.maxDelayMs = Math.min(this.network.maxDelayMs, 20);
    for (const m of this.members.values()) {
      m.disk.disarm();
      m.clock?.resume();
      if (m.status === 'down') this.boot(m);
    }
    const progress: { marker: 'none' | 'proposed' | 'acked' } = { marker: 'none' };
    let finalReads: Map<string, string | null> | undefined;
    let finalState: Map<string, string | null> | undefined;
    const deadline = this.scheduler.now() + this.options.livenessMs;
    while (this.scheduler.now() < deadline) {
      const leader = this.leader();
      if (leader && progress.marker === 'none') {
        progress.marker = 'proposed';
        this.propose(
          leader,
          { type: 'put', key: 'liveness', value: `m${this.opSeq++}` },
          (r) => {
            progress.marker = r.ok ? 'acked' : 'none';
          },
          () => {
            progress.marker = 'none';
          },
          () => {
            progress.marker = 'none';
          },
        );
      }
      if (leader && progress.marker === 'acked' && (!finalReads || !finalState)) {
        const reads = new Map<string, string | null>();
        const state = new Map<string, string | null>();
        for (const key of KEYS) this.read(leader, key, (v) => reads.set(key, v));
        const core = leader.core!;
        core.readIndex().then(
          () => {
            for (const w of this.uniqueWrites) {
              const got = core.kv.get(w.key);
              state.set(w.key, got.ok ? (got.kv?.value ?? null) : null);
            }
            finalState = state;
          },
          () => {},
        );
        finalReads = reads;
      }
      await this.runFor(500);
      if (finalReads && finalReads.size === KEYS.length && finalState) break;
      if (finalReads && finalReads.size < KEYS.length && this.leader() !== leader) {
        finalReads = undefined; // lost to a leader change: read again
        finalState = undefined;
      }
    }
    if (!finalReads || finalReads.size < KEYS.length || !finalState) {
      const states = [...this.members.values()]
        .map((m) => {
          if (!m.core) return `${m.id}=${m.status}`;
          const r = m.core.raft;
          const last = r.log.lastIndex();
          // Enough to tell a stalled election (logs, voters) from a stalled commit.
          return `${m.id}=${m.status}/${r.role}@${r.term} log ${last}@${r.log.term(last)} commit ${r.log.committed} voters [${r.voters.join(',')}]`;
        })
        .join(' ');
      throw new Violation(
        'liveness',
        `after healing, no leader committed a write and served reads within ${this.options.livenessMs} ms (${states}; marker ${progress.marker})`,
      );
    }
    if (process.env.SIM_DEBUG) {
      const perKey = new Map<string, string>();
      for (const op of this.history) {
        const k = op.input.key;
        const [n, u] = (perKey.get(k) ?? '0/0').split('/').map(Number);
        perKey.set(k, `${n! + 1}/${u! + (op.ret === undefined ? 1 : 0)}`);
      }
      let pendingWrites = 0;
      for (const op of this.history)
        if (op.ret === undefined && op.input.op !== 'get') pendingWrites++;
      console.error(`writes never answered: ${pendingWrites}`);
      console.error(
        `liveness done at t=${this.scheduler.now()}; ops/unknown per key ${[...perKey].join(' ')}`,
      );
    }
    this.checker.checkLogMatching([...this.members.values()]);
    const durability = checkDurability(this.uniqueWrites, finalState);
    void durability;
    const linStarted = performance.now();
    const lin = checkKvHistory(this.history);
    if (process.env.SIM_DEBUG)
      console.error(`linearizability check: ${(performance.now() - linStarted).toFixed(0)} ms`);
    this.stats.checkedOperations += lin.operations;
    if (lin.outcome === 'illegal') {
      throw new Violation('linearizability', `key ${lin.illegal?.key}: ${lin.illegal?.info}`);
    }
    if (lin.outcome === 'unknown') {
      this.stats.checkerUnknownRuns++;
      this.stats.checkerUnknownKeys += lin.unknownKeys.length;
    }
  }

  finalStats(): SimStats {
    this.stats.runs = 1;
    this.stats.leaderTerms = this.checker.leaderTermCount();
    this.stats.virtualSeconds = this.scheduler.now() / 1000;
    for (const m of this.members.values()) {
      this.stats.tornBatches += m.disk.stats.tornBatches;
      this.stats.lostBatches += m.disk.stats.lostBatches;
    }
    return this.stats;
  }
}

function memberRecord(id: string): Member {
  return { id, name: id, peerUrls: [`sim://${id}`], clientUrls: [] };
}
