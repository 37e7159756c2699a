import {
  type ConfState,
  type Entry,
  MemoryRaftStorage,
  type Message,
  type NodeId,
  RawNode,
  type ReadState,
  type Ready,
  SeededRandom,
} from '../../src/raft/index.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a client proposes: a put of a unique value, tagged with an operation id. */
export interface PutCommand {
  opId: number;
  key: string;
  value: string;
}

export function encodeCommand(cmd: PutCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

export function decodeCommand(data: Uint8Array): PutCommand | undefined {
  if (data.byteLength === 0) return undefined; // a leader's no-op
  return JSON.parse(decoder.decode(data)) as PutCommand;
}

export interface RaftTuning {
  electionTicks: number;
  heartbeatTicks: number;
  maxInflightMsgs: number;
  maxSizePerMsgBytes: number;
  /** Take a snapshot after this many applied entries. */
  snapshotInterval: number;
  /** Entries kept before the snapshot index for slow followers. */
  keepEntries: number;
}

/** The durable part of a node: survives crashes. */
export interface Disk {
  storage: MemoryRaftStorage;
  /** The applied state machine, persisted atomically with its applied index (as the KV sublevel is). */
  kv: Map<string, string>;
  applied: number;
  confState: ConfState;
}

/** Hooks the world uses to check invariants and to complete client operations. */
export interface NodeObserver {
  onPersistHardState(node: SimNode, commit: number): void;
  onApply(node: SimNode, entry: Entry): void;
  onApplySnapshot(node: SimNode, index: number): void;
  onRead(node: SimNode, ctx: string, value: string | null): void;
}

/**
 * One simulated member: a RawNode (volatile, lost on crash) over a Disk
 * (durable). handleReady follows the Ready contract to the letter.
 */
export class SimNode {
  readonly id: NodeId;
  readonly disk: Disk;
  raw: RawNode | undefined;
  private readonly tuning: RaftTuning;
  /** Reads whose index is known, waiting for it to be applied. */
  private waitingReads: ReadState[] = [];
  /**
   * The state machine in memory, as the server keeps it: applied ahead of the
   * disk (committed entries are applied while the Ready's own write is in
   * flight) and written to the disk after the log, when that write finishes.
   */
  private memory: { kv: Map<string, string>; applied: number; confState: ConfState } = {
    kv: new Map(),
    applied: 0,
    confState: { voters: [], learners: [] },
  };
  /** Incarnation counter, so each restart draws different timeouts. */
  incarnation = 0;
  private readonly seed: number;

  constructor(id: NodeId, disk: Disk, tuning: RaftTuning, seed: number) {
    this.id = id;
    this.disk = disk;
    this.tuning = tuning;
    this.seed = seed;
  }

  static founding(id: NodeId, voters: NodeId[], tuning: RaftTuning, seed: number): SimNode {
    const storage = MemoryRaftStorage.bootstrap(voters);
    const disk: Disk = { storage, kv: new Map(), applied: 1, confState: storage.confState };
    return new SimNode(id, disk, tuning, seed);
  }

  static joining(id: NodeId, tuning: RaftTuning, seed: number): SimNode {
    const storage = new MemoryRaftStorage();
    const disk: Disk = {
      storage,
      kv: new Map(),
      applied: 0,
      confState: { voters: [], learners: [] },
    };
    return new SimNode(id, disk, tuning, seed);
  }

  /** The Raft state the safety checker observes (SimNode is an ObservedNode). */
  get raft(): RawNode['raft'] | undefined {
    return this.raw?.raft;
  }

  get alive(): boolean {
    return this.raw !== undefined;
  }

  /** The index the in-memory state machine has applied (ahead of disk.applied mid-write). */
  get applied(): number {
    return this.memory.applied;
  }

  start(): void {
    this.incarnation++;
    this.waitingReads = [];
    const d = this.disk;
    this.memory = { kv: new Map(d.kv), applied: d.applied, confState: d.confState };
    this.raw = new RawNode({
      id: this.id,
      storage: this.disk.storage,
      applied: this.disk.applied,
      electionTicks: this.tuning.electionTicks,
      heartbeatTicks: this.tuning.heartbeatTicks,
      maxInflightMsgs: this.tuning.maxInflightMsgs,
      maxSizePerMsgBytes: this.tuning.maxSizePerMsgBytes,
      random: new SeededRandom((this.seed * 7919 + this.incarnation * 104729) >>> 0),
    });
  }

  /**
   * Armed by the world: the next synced write is cut short just before it would
   * have finished; its eager messages left, nothing reached the disk (SIGKILL mid-write).
   */
  crashBeforeNextPersist = false;

  /** SIGKILL: everything not on the disk is gone. */
  crash(): void {
    this.raw = undefined;
    this.waitingReads = [];
    this.crashBeforeNextPersist = false;
    this.writeInFlight = undefined;
  }

  /** A synced write that was started but has not finished: its eager messages already left. */
  private writeInFlight?: { rd: Ready; doneAt: number; appliedEarly: boolean };

  /**
   * Runs the Ready loop until the node has nothing to do or waits for its disk;
   * returns the messages to send. A synced write takes `diskRounds` rounds, during
   * which the node keeps stepping messages (a leader's peers may acknowledge
   * entries it has not yet written itself). An armed node crashes when its write
   * would have finished (see crashBeforeNextPersist).
   */
  handleReady(observer: NodeObserver, now: number, diskRounds: number): Message[] {
    const raw = this.raw;
    if (!raw) return [];
    const out: Message[] = [];
    for (let i = 0; i < 100; i++) {
      const pending = this.writeInFlight;
      if (pending) {
        if (now < pending.doneAt) break;
        if (this.crashBeforeNextPersist) {
          this.crash();
          return out;
        }
        this.writeInFlight = undefined;
        this.finishReady(pending.rd, observer, out, pending.appliedEarly);
        continue;
      }
      if (!raw.hasReady()) break;
      const rd = raw.ready();
      out.push(...rd.eagerMessages);
      if (rd.mustSync) {
        // Committed entries are on a quorum's disks: apply them while our write is in flight.
        const appliedEarly = rd.snapshot === undefined;
        if (appliedEarly) this.apply(rd, observer);
        this.writeInFlight = { rd, doneAt: now + diskRounds, appliedEarly };
        continue;
      }
      this.finishReady(rd, observer, out, false);
    }
    return out;
  }

  /** The rest of the Ready contract, once the write is done. */
  private finishReady(
    rd: Ready,
    observer: NodeObserver,
    out: Message[],
    appliedEarly: boolean,
  ): void {
    const raw = this.raw!;
    this.persist(rd, observer);
    out.push(...rd.messages);
    if (!appliedEarly) this.apply(rd, observer);
    this.persistState();
    this.waitingReads.push(...rd.readStates);
    this.serveReads(observer);
    raw.advance(rd);
  }

  private persist(rd: Ready, observer: NodeObserver): void {
    const { storage } = this.disk;
    if (rd.snapshot) storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) storage.append(rd.entries);
    if (rd.hardState) {
      storage.setHardState(rd.hardState);
      observer.onPersistHardState(this, rd.hardState.commit);
    }
  }

  private apply(rd: Ready, observer: NodeObserver): void {
    const sm = this.memory;
    if (rd.snapshot) {
      const kv =
        rd.snapshot.data.byteLength === 0
          ? []
          : (JSON.parse(decoder.decode(rd.snapshot.data)) as [string, string][]);
      observer.onApplySnapshot(this, rd.snapshot.metadata.index);
      sm.kv = new Map(kv);
      sm.applied = rd.snapshot.metadata.index;
      sm.confState = rd.snapshot.metadata.confState;
    }
    for (const e of rd.committedEntries) {
      observer.onApply(this, e);
      if (e.type === 'normal') {
        const cmd = decodeCommand(e.data);
        if (cmd) sm.kv.set(cmd.key, cmd.value);
      }
      sm.applied = e.index;
    }
    if (rd.confState) sm.confState = rd.confState;
  }

  /** The applied state reaches the disk after the log it came from (atomically with its index). */
  private persistState(): void {
    const { disk, memory } = this;
    if (disk.applied === memory.applied) return;
    disk.kv = new Map(memory.kv);
    disk.applied = memory.applied;
    if (disk.confState !== memory.confState) {
      disk.confState = memory.confState;
      disk.storage.setConfState(memory.confState);
    }
    this.maybeSnapshot();
  }

  private maybeSnapshot(): void {
    const { storage } = this.disk;
    const snapIndex = storage.snapshot().metadata.index;
    if (this.disk.applied - snapIndex < this.tuning.snapshotInterval) return;
    const data = encoder.encode(JSON.stringify([...this.disk.kv]));
    storage.createSnapshot(this.disk.applied, this.disk.confState, data);
    const compactTo = this.disk.applied - this.tuning.keepEntries;
    if (compactTo > storage.firstIndex()) storage.compact(compactTo);
  }

  private serveReads(observer: NodeObserver): void {
    const still: ReadState[] = [];
    for (const rs of this.waitingReads) {
      if (rs.index <= this.memory.applied) {
        const key = rs.ctx.split('|')[1]!;
        observer.onRead(this, rs.ctx, this.memory.kv.get(key) ?? null);
      } else {
        still.push(rs);
      }
    }
    this.waitingReads = still;
  }
}
