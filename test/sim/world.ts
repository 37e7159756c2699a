import { type Entry, type NodeId, SeededRandom } from '../../src/raft/index.js';
import type { KvInput, KvOutput, Operation } from '../support/linearizability.js';
import { SafetyChecker, Violation } from './invariants.js';
import { SimNetwork } from './network.js';
import {
  decodeCommand,
  encodeCommand,
  type NodeObserver,
  type RaftTuning,
  SimNode,
} from './node.js';
import type { PartitionShape, Schedule, SimEvent } from './schedule.js';

export interface SimOptions {
  nodes: number;
  electionTicks?: number;
  /** Ticks allowed after healing for a leader to be elected and commit (liveness bound). */
  livenessTicks?: number;
  /** Extra members that membership changes may add. */
  spareNodes?: number;
}

export interface SimStats {
  ticks: number;
  proposed: number;
  acknowledged: number;
  readsServed: number;
  leaderTerms: number;
  crashes: number;
  snapshotsInstalled: number;
  confChangesApplied: number;
}

const ROUNDS_PER_TICK = 4;
const KEYS = ['a', 'b', 'c'];

interface PendingOp {
  nodeId: NodeId;
  incarnation: number;
  op: Operation<KvInput, KvOutput>;
}

/**
 * A whole cluster in one process: nodes, a lossy network, a tick clock, clients
 * that propose and read, and the safety checker watching every step.
 */
export class SimWorld implements NodeObserver {
  readonly nodes = new Map<NodeId, SimNode>();
  readonly network: SimNetwork;
  readonly checker = new SafetyChecker();
  readonly history: Operation<KvInput, KvOutput>[] = [];
  /** Where each written value landed in the log (values are unique). */
  readonly logIndexOfValue = new Map<string, number>();
  readonly stats: SimStats = {
    ticks: 0,
    proposed: 0,
    acknowledged: 0,
    readsServed: 0,
    leaderTerms: 0,
    crashes: 0,
    snapshotsInstalled: 0,
    confChangesApplied: 0,
  };
  private readonly rng: SeededRandom;
  private readonly tuning: RaftTuning;
  private readonly world: Schedule['world'];
  private inLivenessPhase = false;
  /** The slowest disk: a synced write takes up to this many rounds (less once healed). */
  private diskRounds: number;
  /** Each node's disk speed, drawn once: a fast follower may acknowledge before a slow leader wrote. */
  private readonly diskRoundsByNode = new Map<NodeId, number>();
  private readonly options: Required<SimOptions>;
  private now = 0;
  /** Logical clock of the client history (call and return times). */
  private clock = 0;
  private nextOpId = 1;
  private nextNodeNumber: number;
  private readonly pendingWrites = new Map<number, PendingOp>();
  private readonly pendingReads = new Map<string, PendingOp>();
  private livenessMarker: { opId: number; acked: boolean } | undefined;
  /** History clock when the liveness marker was acknowledged; final reads start after it. */
  private markerAckedAt = -1;
  /** A trace of the last events, printed with a violation. */
  readonly trace: string[] = [];

  constructor(schedule: Schedule, options: SimOptions) {
    const { world } = schedule;
    this.world = world;
    this.options = {
      nodes: options.nodes,
      electionTicks: options.electionTicks ?? 10,
      livenessTicks: options.livenessTicks ?? 600,
      spareNodes: options.spareNodes ?? 2,
    };
    this.rng = new SeededRandom(world.seed);
    this.network = new SimNetwork(new SeededRandom(world.seed ^ 0x5bd1e995));
    this.network.dropRate = world.dropRate;
    this.network.duplicateRate = world.duplicateRate;
    this.network.maxDelayRounds = world.maxDelayRounds;
    this.diskRounds = world.diskRounds;
    this.tuning = {
      electionTicks: this.options.electionTicks,
      heartbeatTicks: world.heartbeatTicks,
      maxInflightMsgs: world.maxInflightMsgs,
      maxSizePerMsgBytes: world.maxSizePerMsgBytes,
      snapshotInterval: world.snapshotInterval,
      keepEntries: world.keepEntries,
    };
    const ids = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    this.nextNodeNumber = options.nodes + 1;
    for (const id of ids) {
      const node = SimNode.founding(id, ids, this.tuning, this.rng.nextUint32());
      node.start();
      this.nodes.set(id, node);
    }
    // Let the first election happen before the schedule starts.
    this.runTicks(3 * this.options.electionTicks);
  }

  // ---------------------------------------------------------------- time

  private runTicks(ticks: number): void {
    for (let i = 0; i < ticks; i++) this.runTick();
  }

  private runTick(): void {
    this.stats.ticks++;
    this.backgroundLoad();
    for (let round = 0; round < ROUNDS_PER_TICK; round++) {
      if (round === 0) {
        for (const node of this.liveNodes()) {
          node.raw!.tick();
          this.checker.observe(node);
        }
      }
      for (const m of this.network.takeDue(this.now)) {
        const target = this.nodes.get(m.to);
        if (!target?.raw) continue;
        target.raw.step(m);
        this.checker.observe(target);
      }
      this.flushReadies();
      this.now++;
    }
    this.checker.checkLogMatching([...this.nodes.values()]);
  }

  private flushReadies(): void {
    for (const node of this.liveNodes()) {
      const out = node.handleReady(this, this.now, this.diskRoundsOf(node));
      for (const m of out) this.network.send(m, this.now);
      if (node.alive) this.checker.observe(node);
      else this.crashed(node);
    }
  }

  /** Steady client traffic, so that faults always hit entries in flight. */
  private backgroundLoad(): void {
    if (this.inLivenessPhase) return;
    const draws = (rate: number) => Math.floor(rate) + (this.rng.nextFloat() < rate % 1 ? 1 : 0);
    const writes = draws(this.world.writesPerTick);
    for (let i = 0; i < writes; i++) {
      // Any node that believes it leads, stale leaders included: their entries must never win.
      const leaders = this.liveNodes().filter((n) => n.raw!.raft.role === 'leader');
      const target = this.pick(leaders, this.rng.nextInt(8));
      if (target) this.proposeOn(target, this.rng.nextInt(KEYS.length));
    }
    const reads = draws(this.world.readsPerTick);
    for (let i = 0; i < reads; i++) this.read(this.rng.nextInt(8), this.rng.nextInt(KEYS.length));
  }

  // ---------------------------------------------------------------- helpers

  private diskRoundsOf(node: SimNode): number {
    let rounds = this.diskRoundsByNode.get(node.id);
    if (rounds === undefined) {
      rounds = this.rng.nextInt(this.world.diskRounds + 1);
      this.diskRoundsByNode.set(node.id, rounds);
    }
    return Math.min(rounds, this.diskRounds);
  }

  private liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.alive);
  }

  private pick<T>(items: readonly T[], n: number): T | undefined {
    return items.length === 0 ? undefined : items[n % items.length];
  }

  /** The live leader with the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.liveNodes()) {
      const r = node.raw!.raft;
      if (r.role === 'leader' && (!best || r.term > best.raw!.raft.term)) best = node;
    }
    return best;
  }

  private note(text: string): void {
    this.trace.push(`[tick ${this.stats.ticks}] ${text}`);
    if (this.trace.length > 60) this.trace.shift();
  }

  // ---------------------------------------------------------------- events

  apply(event: SimEvent): void {
    this.note(JSON.stringify(event));
    switch (event.kind) {
      case 'propose':
        for (let i = 0; i < event.count; i++) this.propose(event.node, event.key + i);
        break;
      case 'read':
        this.read(event.node, event.key);
        break;
      case 'partition':
        this.partition(event.shape, event.node, event.mask);
        break;
      case 'heal':
        this.network.heal();
        break;
      case 'crash': {
        const node = this.pick(this.liveNodes(), event.node);
        if (node) this.crash(node);
        break;
      }
      case 'restart': {
        const down = [...this.nodes.values()].filter((n) => !n.alive);
        const node = this.pick(down, event.node);
        if (node) this.restart(node);
        break;
      }
      case 'bounce': {
        const node = this.pick(this.liveNodes(), event.node);
        if (node) {
          this.crash(node);
          this.restart(node);
        }
        break;
      }
      case 'crashLeader': {
        const leader = this.leader();
        if (leader) this.crash(leader);
        break;
      }
      case 'crashMidWrite': {
        const node = event.leader ? this.leader() : this.pick(this.liveNodes(), event.node);
        if (node) node.crashBeforeNextPersist = true;
        break;
      }
      case 'flap':
        for (let i = 0; i < event.times; i++) {
          this.partition('isolateLeader', i, 0);
          this.runTicks(event.gapTicks);
        }
        this.network.heal();
        break;
      case 'crashAll':
        // SIGKILL of every node at once, then all come back.
        for (const node of this.liveNodes()) this.crash(node);
        for (const node of this.nodes.values()) this.restart(node);
        break;
      case 'transfer': {
        const leader = this.leader();
        const to = leader && this.pick(leader.raw!.raft.voters, event.node);
        if (leader && to) leader.raw!.transferLeadership(to);
        break;
      }
      case 'addLearner':
        this.addLearner();
        break;
      case 'promote': {
        const leader = this.leader();
        if (!leader || leader.raw!.raft.voters.length >= 5) break;
        const id = this.pick(leader.raw!.raft.learners, event.node);
        if (id) leader.raw!.proposeConfChange({ type: 'addNode', nodeId: id });
        break;
      }
      case 'remove': {
        const leader = this.leader();
        if (!leader) break;
        const r = leader.raw!.raft;
        const candidates = r.voters.length > 3 ? [...r.voters, ...r.learners] : [...r.learners];
        const id = this.pick(candidates, event.node);
        if (id) r.proposeConfChange({ type: 'removeNode', nodeId: id });
        break;
      }
      case 'loss':
        this.network.dropRate = event.dropRate;
        this.network.duplicateRate = event.duplicateRate;
        break;
      case 'wait':
        break;
    }
    for (const node of this.liveNodes()) this.checker.observe(node);
    this.flushReadies();
    this.runTicks(event.ticks);
  }

  private crash(node: SimNode): void {
    node.crash();
    this.crashed(node);
  }

  private crashed(node: SimNode): void {
    this.network.dropTo(node.id);
    this.stats.crashes++;
  }

  private restart(node: SimNode): void {
    if (node.alive) return;
    node.start();
    this.checker.observe(node);
  }

  private addLearner(): void {
    if (this.nextNodeNumber > this.options.nodes + this.options.spareNodes) return;
    const leader = this.leader();
    if (!leader) return;
    const id = `n${this.nextNodeNumber}`;
    const result = leader.raw!.proposeConfChange({ type: 'addLearner', nodeId: id });
    if (!result.ok) return;
    this.nextNodeNumber++;
    const node = SimNode.joining(id, this.tuning, this.rng.nextUint32());
    node.start();
    this.nodes.set(id, node);
  }

  private partition(shape: PartitionShape, n: number, mask: number): void {
    this.network.heal();
    const ids = [...this.nodes.keys()].sort();
    const others = (x: NodeId) => ids.filter((id) => id !== x);
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
        // Two halves that reach each other only through one bridge node.
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

  private propose(n: number, keyIndex: number): void {
    let target = this.pick(this.liveNodes(), n);
    if (!target) return;
    // A client talking to a follower is redirected to the leader it names.
    const lead = target.raw!.raft.lead;
    if (target.raw!.raft.role !== 'leader' && lead && this.nodes.get(lead)?.alive)
      target = this.nodes.get(lead)!;
    if (target.raw!.raft.role !== 'leader') return;
    this.proposeOn(target, keyIndex);
  }

  private proposeOn(target: SimNode, keyIndex: number): void {
    const opId = this.nextOpId++;
    const key = KEYS[keyIndex % KEYS.length]!;
    const value = `v${opId}`;
    const result = target.raw!.propose(encodeCommand({ opId, key, value }));
    this.checker.observe(target);
    if (!result.ok) return; // refused before proposing: a definite failure, not in the history
    this.stats.proposed++;
    const op: Operation<KvInput, KvOutput> = {
      clientId: opId,
      input: { op: 'put', key, value },
      call: this.clock++,
    };
    this.history.push(op);
    this.pendingWrites.set(opId, { nodeId: target.id, incarnation: target.incarnation, op });
  }

  private read(n: number, keyIndex: number): void {
    const target = this.pick(this.liveNodes(), n);
    if (!target) return;
    const opId = this.nextOpId++;
    const key = KEYS[keyIndex % KEYS.length]!;
    const ctx = `${opId}|${key}`;
    const result = target.raw!.readIndex(ctx);
    this.checker.observe(target);
    if (!result.ok) return;
    const op: Operation<KvInput, KvOutput> = {
      clientId: opId,
      input: { op: 'get', key },
      call: this.clock++,
    };
    this.history.push(op);
    this.pendingReads.set(ctx, { nodeId: target.id, incarnation: target.incarnation, op });
  }

  // ---------------------------------------------------------------- NodeObserver

  onPersistHardState(node: SimNode, commit: number): void {
    this.checker.onPersistHardState(node, commit);
  }

  onApply(node: SimNode, entry: Entry): void {
    this.checker.onApply(node, entry);
    if (entry.type === 'confChange') {
      this.stats.confChangesApplied++;
      return;
    }
    const cmd = decodeCommand(entry.data);
    if (!cmd) return;
    if (!this.logIndexOfValue.has(cmd.value)) this.logIndexOfValue.set(cmd.value, entry.index);
    if (
      this.livenessMarker?.opId === cmd.opId &&
      !this.livenessMarker.acked &&
      node.raw?.raft.role === 'leader'
    ) {
      this.livenessMarker.acked = true;
      this.markerAckedAt = this.clock++;
    }
    const pending = this.pendingWrites.get(cmd.opId);
    // The proposer acknowledges once it applied the entry (as the server will).
    if (pending && pending.nodeId === node.id && pending.incarnation === node.incarnation) {
      pending.op.ret = this.clock++;
      pending.op.output = { op: 'put' };
      this.pendingWrites.delete(cmd.opId);
      this.stats.acknowledged++;
    }
  }

  onApplySnapshot(node: SimNode, index: number): void {
    this.checker.onApplySnapshot(node, index);
    this.stats.snapshotsInstalled++;
  }

  onRead(node: SimNode, ctx: string, value: string | null): void {
    const pending = this.pendingReads.get(ctx);
    if (!pending || pending.nodeId !== node.id || pending.incarnation !== node.incarnation) return;
    pending.op.ret = this.clock++;
    pending.op.output = { op: 'get', value };
    this.pendingReads.delete(ctx);
    this.stats.readsServed++;
  }

  // ---------------------------------------------------------------- liveness

  /**
   * Heal everything, restart every node, and require that within a bounded
   * number of ticks a leader is elected, commits a new proposal, and serves a
   * linearizable read of every key (which must reflect every acknowledged write).
   */
  checkLiveness(): void {
    this.note('heal all for liveness');
    this.inLivenessPhase = true;
    this.network.heal();
    this.network.dropRate = 0;
    this.network.duplicateRate = 0;
    this.network.maxDelayRounds = Math.min(this.network.maxDelayRounds, 3);
    // A slow disk with one-entry appends would need more than the budget to replay a long backlog.
    this.diskRounds = Math.min(this.diskRounds, 2);
    for (const node of this.nodes.values()) {
      this.restart(node);
      node.crashBeforeNextPersist = false;
    }
    const budget = this.options.livenessTicks;
    let finalReadsIssued = false;
    for (let t = 0; t < budget; t++) {
      const leader = this.leader();
      if (leader && !this.livenessMarker?.acked) {
        if (!this.livenessMarker || t % this.options.electionTicks === 0) {
          const opId = this.nextOpId++;
          const result = leader.raw!.propose(
            encodeCommand({ opId, key: 'liveness', value: `m${opId}` }),
          );
          if (result.ok) this.livenessMarker = { opId, acked: false };
        }
      }
      if (leader && this.livenessMarker?.acked && !finalReadsIssued) {
        finalReadsIssued = true;
        for (let k = 0; k < KEYS.length; k++) this.read([...this.liveNodes()].indexOf(leader), k);
      }
      if (finalReadsIssued && this.pendingFinalReadsDone()) return;
      if (finalReadsIssued && t % this.options.electionTicks === 0 && leader) {
        // A read lost to a leader change is retried.
        for (let k = 0; k < KEYS.length; k++) this.read([...this.liveNodes()].indexOf(leader), k);
      }
      this.runTick();
    }
    const leader = this.leader();
    throw new Violation(
      'liveness',
      `after healing, no leader committed a proposal and served reads within ${budget} ticks (leader: ${leader?.id ?? 'none'}, ` +
        `terms: ${this.liveNodes()
          .map((n) => `${n.id}=${n.raw!.raft.term}/${n.raw!.raft.role}`)
          .join(' ')}; leader's log: ${leader ? this.describeProgress(leader) : '-'})`,
    );
  }

  private describeProgress(leader: SimNode): string {
    const st = leader.raw!.status();
    const prs = Object.entries(st.progress ?? {})
      .map(([id, p]) => `${id} match ${p.match} next ${p.next} ${p.state}`)
      .join(', ');
    return `commit ${st.commit} applied ${st.applied} last ${st.lastIndex}; ${prs}`;
  }

  /** Every key has a read that started after the marker was acknowledged and was served. */
  private pendingFinalReadsDone(): boolean {
    const served = new Set<string>();
    for (const op of this.history) {
      if (op.input.op === 'get' && op.ret !== undefined && op.call > this.markerAckedAt)
        served.add(op.input.key);
    }
    return served.size === KEYS.length;
  }

  finalStats(): SimStats {
    this.stats.leaderTerms = this.checker.leaderTermCount();
    return this.stats;
  }
}
