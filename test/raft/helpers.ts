/**
 * A small deterministic harness for the Raft core: N RawNodes wired by an
 * in-memory FIFO network, each driven exactly as the Ready contract in
 * src/raft/raw-node.ts says (persist, then send, then apply, then advance).
 *
 * Nothing here is asynchronous or random except each node's SeededRandom, so
 * every test replays identically.
 */
import {
  type ConfState,
  type Entry,
  MemoryRaftStorage,
  type Message,
  message,
  NONE,
  type NodeId,
  type ProposeResult,
  type RaftConfig,
  RawNode,
  type ReadState,
  type Ready,
  type Role,
  SeededRandom,
} from '../../src/raft/index.js';

export const ELECTION_TICKS = 10;
export const HEARTBEAT_TICKS = 1;

/** Per-cluster options passed through to every node's RaftConfig. */
export interface NodeOptions {
  electionTicks?: number;
  heartbeatTicks?: number;
  checkQuorum?: boolean;
  preVote?: boolean;
  maxInflightMsgs?: number;
  maxSizePerMsgBytes?: number;
  maxCommittedSizePerReadyBytes?: number;
}

export interface NetworkOptions extends NodeOptions {
  /** Base seed (default 1): node nK gets seed * 1000 + 17 * K + its incarnation (restarts). */
  seed?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const enc = (s: string): Uint8Array => encoder.encode(s);
export const dec = (b: Uint8Array): string => decoder.decode(b);

/** One member: its durable storage, its (durable) application state, and the live RawNode if up. */
export class TestNode {
  readonly id: NodeId;
  readonly storage: MemoryRaftStorage;
  /** undefined while crashed. */
  raw: RawNode | undefined;
  /**
   * The application state machine: payloads of applied non-empty normal
   * entries. It is treated as durable together with `appliedIndex` and the
   * confState persisted in storage (as an application with a consistent index would).
   */
  state: string[] = [];
  appliedIndex: number;
  /** Entries applied by this node (in every incarnation), in order. */
  applied: Entry[] = [];
  /** Read states handed out by Ready, in order. */
  readStates: ReadState[] = [];
  /** Every Ready this node produced, in order (for contract checks). */
  readies: Ready[] = [];
  incarnation = 0;

  constructor(id: NodeId, storage: MemoryRaftStorage) {
    this.id = id;
    this.storage = storage;
    this.appliedIndex = storage.snapshot().metadata.index;
  }

  get up(): boolean {
    return this.raw !== undefined;
  }

  /** The live RawNode; throws if the node is crashed. */
  get node(): RawNode {
    if (!this.raw) throw new Error(`${this.id} is down`);
    return this.raw;
  }
}

export type Fate = 'delivered' | 'dropped' | 'down';

export interface Delivery {
  m: Message;
  fate: Fate;
}

export type DropRule = (m: Message) => boolean;

export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  readonly options: NetworkOptions;
  /** Messages sent and not yet delivered, in FIFO order. */
  queue: Message[] = [];
  /** Every message taken off the queue, with its fate, in order. */
  readonly history: Delivery[] = [];
  private rules: DropRule[] = [];
  /** When set, every delivery and drop is appended as one line (golden tests). */
  trace: string[] | undefined;

  constructor(n: number, options: NetworkOptions = {}) {
    this.options = options;
    const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    for (const id of ids) this.addNode(id, MemoryRaftStorage.bootstrap(ids));
  }

  /** Adds a member with the given storage (an empty MemoryRaftStorage for a joining member) and starts it. */
  addNode(id: NodeId, storage: MemoryRaftStorage = new MemoryRaftStorage()): TestNode {
    if (this.nodes.has(id)) throw new Error(`${id} already exists`);
    const tn = new TestNode(id, storage);
    this.nodes.set(id, tn);
    this.start(tn);
    return tn;
  }

  private seedOf(tn: TestNode): number {
    const ordinal = Number.parseInt(tn.id.replace(/\D/g, ''), 10) || 0;
    return (this.options.seed ?? 1) * 1000 + ordinal * 17 + tn.incarnation;
  }

  private start(tn: TestNode): void {
    const o = this.options;
    const config: RaftConfig = {
      id: tn.id,
      storage: tn.storage,
      electionTicks: o.electionTicks ?? ELECTION_TICKS,
      heartbeatTicks: o.heartbeatTicks ?? HEARTBEAT_TICKS,
      applied: tn.appliedIndex,
      random: new SeededRandom(this.seedOf(tn)),
    };
    if (o.checkQuorum !== undefined) config.checkQuorum = o.checkQuorum;
    if (o.preVote !== undefined) config.preVote = o.preVote;
    if (o.maxInflightMsgs !== undefined) config.maxInflightMsgs = o.maxInflightMsgs;
    if (o.maxSizePerMsgBytes !== undefined) config.maxSizePerMsgBytes = o.maxSizePerMsgBytes;
    if (o.maxCommittedSizePerReadyBytes !== undefined) {
      config.maxCommittedSizePerReadyBytes = o.maxCommittedSizePerReadyBytes;
    }
    tn.raw = new RawNode(config);
  }

  get(id: NodeId): TestNode {
    const tn = this.nodes.get(id);
    if (!tn) throw new Error(`no node ${id}`);
    return tn;
  }

  /** The live RawNode of `id`. */
  node(id: NodeId): RawNode {
    return this.get(id).node;
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  upIds(): NodeId[] {
    return this.ids().filter((id) => this.get(id).up);
  }

  // ------------------------------------------------------------ Ready handling

  /**
   * Handles every Ready of `id` as the contract says: persist hardState,
   * entries and snapshot; check that what the messages promise is durable;
   * queue the messages; apply the snapshot and committed entries (persisting
   * confState with them); collect read states; advance. Returns the Readies.
   */
  process(id: NodeId): Ready[] {
    const tn = this.get(id);
    const raw = tn.raw;
    if (!raw) return [];
    const out: Ready[] = [];
    for (let guard = 0; raw.hasReady(); guard++) {
      if (guard > 1000) throw new Error(`${id}: hasReady() never settles`);
      const rd = raw.ready();
      const before = { ...tn.storage.hardState };
      // 0. Messages that need nothing durable leave first.
      checkEager(tn, rd, before);
      for (const m of rd.eagerMessages) this.queue.push(m);
      // 1. Persist.
      if (rd.snapshot) tn.storage.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) tn.storage.append(rd.entries);
      if (rd.hardState) tn.storage.setHardState(rd.hardState);
      checkPersisted(tn, rd, before);
      // 2. Send.
      for (const m of rd.messages) this.queue.push(m);
      // 3. Apply.
      if (rd.snapshot) {
        tn.state = decodeState(rd.snapshot.data);
        tn.appliedIndex = rd.snapshot.metadata.index;
      }
      for (const e of rd.committedEntries) {
        if (e.index !== tn.appliedIndex + 1) {
          throw new Error(`${id}: applying ${e.index} after ${tn.appliedIndex}`);
        }
        tn.applied.push(e);
        tn.appliedIndex = e.index;
        if (e.type === 'normal' && e.data.byteLength > 0) tn.state.push(dec(e.data));
      }
      if (rd.confState) tn.storage.setConfState(rd.confState);
      // 4. Reads.
      tn.readStates.push(...rd.readStates);
      tn.readies.push(rd);
      // 5. Advance.
      raw.advance(rd);
      out.push(rd);
    }
    return out;
  }

  processAll(): void {
    for (const id of this.ids()) this.process(id);
  }

  // ------------------------------------------------------------ network

  /** Drops every message for which `rule` holds until recover() (or removeRule). */
  drop(rule: DropRule): DropRule {
    this.rules.push(rule);
    return rule;
  }

  removeRule(rule: DropRule): void {
    this.rules = this.rules.filter((r) => r !== rule);
  }

  dropTo(...ids: NodeId[]): DropRule {
    return this.drop((m) => ids.includes(m.to));
  }

  dropFrom(...ids: NodeId[]): DropRule {
    return this.drop((m) => ids.includes(m.from));
  }

  /** Cuts the link between a and b in both directions. */
  cut(a: NodeId, b: NodeId): DropRule {
    return this.drop((m) => (m.from === a && m.to === b) || (m.from === b && m.to === a));
  }

  isolate(id: NodeId): DropRule {
    return this.drop((m) => m.from === id || m.to === id);
  }

  /** Heals every partition and drop rule. */
  recover(): void {
    this.rules = [];
  }

  /** Takes the next queued message and delivers (or drops) it, then handles the receiver's Ready. */
  deliverOne(): Delivery | undefined {
    const m = this.queue.shift();
    if (!m) return undefined;
    let fate: Fate;
    const target = this.nodes.get(m.to);
    if (this.rules.some((r) => r(m))) fate = 'dropped';
    else if (!target?.raw) fate = 'down';
    else fate = 'delivered';
    const d = { m, fate };
    this.history.push(d);
    this.trace?.push(
      `${fate === 'delivered' ? '  ' : 'X '}${fmt(m)}${fate === 'down' ? ' (down)' : ''}`,
    );
    if (fate === 'delivered') {
      target!.node.step(m);
      this.process(m.to);
    }
    return d;
  }

  /** Delivers queued messages (and those they cause) until the network is quiet. Bounded. */
  deliverAll(maxMessages = 20_000): number {
    let n = 0;
    while (this.queue.length > 0) {
      if (++n > maxMessages)
        throw new Error(`network did not quiesce within ${maxMessages} messages`);
      this.deliverOne();
    }
    return n;
  }

  /** Handles pending Readies everywhere and delivers until quiet. */
  stabilize(): number {
    this.processAll();
    return this.deliverAll();
  }

  /**
   * Delivers queued messages matching `pred`, including matching messages they
   * cause, until none is queued; the others stay queued in order. Bounded.
   */
  deliverWhere(pred: (m: Message) => boolean, maxMessages = 20_000): number {
    let n = 0;
    for (;;) {
      const i = this.queue.findIndex(pred);
      if (i < 0) return n;
      if (++n > maxMessages)
        throw new Error(`deliverWhere did not quiesce within ${maxMessages} messages`);
      const [m] = this.queue.splice(i, 1);
      this.queue.unshift(m!);
      this.deliverOne();
    }
  }

  /** Discards queued messages matching `pred` (default: all) without recording them. */
  discard(pred: (m: Message) => boolean = () => true): Message[] {
    const gone = this.queue.filter(pred);
    this.queue = this.queue.filter((m) => !pred(m));
    return gone;
  }

  /** A position in the history, for counting what happens after it. */
  mark(): number {
    return this.history.length;
  }

  /** Messages taken off the queue since `mark`, optionally filtered. */
  since(mark: number, pred: (m: Message) => boolean = () => true, fate?: Fate): Message[] {
    return this.history
      .slice(mark)
      .filter((d) => (fate === undefined || d.fate === fate) && pred(d.m))
      .map((d) => d.m);
  }

  // ------------------------------------------------------------ time

  /** Ticks one node `n` times, handling its Readies but delivering nothing. */
  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.get(id).raw?.tick();
      this.process(id);
    }
  }

  /** `n` rounds of: tick every live node, then deliver until quiet. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const id of this.upIds()) this.tick(id);
      this.deliverAll();
    }
  }

  /**
   * Ticks only `ids` (delivering until quiet after each round) until `done()`
   * holds; throws after `max` rounds. Returns the rounds used.
   */
  tickUntil(ids: NodeId[], done: () => boolean, max = 20 * ELECTION_TICKS): number {
    for (let i = 0; i < max; i++) {
      if (done()) return i;
      for (const id of ids) this.tick(id);
      this.deliverAll();
    }
    if (done()) return max;
    throw new Error(`condition not reached within ${max} rounds of ticks`);
  }

  // ------------------------------------------------------------ crash / restart

  /** Stops a node. Everything its processed Readies persisted survives; nothing else does. */
  crash(id: NodeId): void {
    this.get(id).raw = undefined;
  }

  /** Starts a crashed node again from its storage (and durable application state) only. */
  restart(id: NodeId): RawNode {
    const tn = this.get(id);
    if (tn.raw) throw new Error(`${id} is up`);
    tn.incarnation++;
    this.start(tn);
    return tn.node;
  }

  // ------------------------------------------------------------ conveniences

  /** Makes `id` campaign and delivers until quiet; throws unless it became leader. */
  elect(id: NodeId): void {
    for (let attempt = 0; attempt < 3; attempt++) {
      this.node(id).campaign();
      this.stabilize();
      if (this.node(id).raft.role === 'leader') return;
    }
    throw new Error(`${id} failed to become leader (role ${this.node(id).raft.role})`);
  }

  /** The live leader with the highest term, or undefined. */
  leader(): NodeId | undefined {
    let best: NodeId | undefined;
    let bestTerm = -1;
    for (const id of this.upIds()) {
      const r = this.node(id).raft;
      if (r.role === 'leader' && r.term > bestTerm) {
        best = id;
        bestTerm = r.term;
      }
    }
    return best;
  }

  /** Proposes `data` on `id` and handles its Ready (nothing is delivered). */
  propose(id: NodeId, data: string): ProposeResult {
    const res = this.node(id).propose(enc(data));
    this.process(id);
    return res;
  }

  role(id: NodeId): Role {
    return this.node(id).raft.role;
  }

  term(id: NodeId): number {
    return this.node(id).raft.term;
  }

  commit(id: NodeId): number {
    return this.node(id).raft.log.committed;
  }

  lastIndex(id: NodeId): number {
    return this.node(id).raft.log.lastIndex();
  }

  /** The durable log of `id` as "index:term" strings, from the first stored entry. */
  storedLog(id: NodeId): string[] {
    const s = this.get(id).storage;
    const out: string[] = [];
    if (s.lastIndex() < s.firstIndex()) return out;
    for (const e of s.entries(s.firstIndex(), s.lastIndex() + 1)) out.push(`${e.index}:${e.term}`);
    return out;
  }

  /**
   * Takes a snapshot of `id`'s application state at its applied index (with
   * the membership persisted for that index) and compacts its log there, as an
   * application would.
   */
  compact(id: NodeId): void {
    const tn = this.get(id);
    const at = tn.appliedIndex;
    tn.storage.createSnapshot(at, confStateOf(tn), enc(JSON.stringify(tn.state)));
    tn.storage.compact(at);
  }
}

function confStateOf(tn: TestNode): ConfState {
  const cs = tn.storage.confState;
  return { voters: [...cs.voters], learners: [...cs.learners] };
}

function decodeState(data: Uint8Array): string[] {
  if (data.byteLength === 0) return [];
  return JSON.parse(dec(data)) as string[];
}

/**
 * The persistence half of the Ready contract, checked on every Ready once it
 * was persisted: anything a message promises (term, vote, acknowledged
 * entries) must already be durable, and mustSync must be set when term, vote
 * or entries changed. Throws on a violation, so every test checks it.
 */
function checkPersisted(tn: TestNode, rd: Ready, before: { term: number; vote: NodeId }): void {
  const hs = tn.storage.hardState;
  const fail = (what: string) => {
    throw new Error(`${tn.id}: persistence contract violated: ${what}`);
  };
  const termOrVoteChanged =
    rd.hardState !== undefined &&
    (rd.hardState.term !== before.term || rd.hardState.vote !== before.vote);
  if ((termOrVoteChanged || rd.entries.length > 0 || rd.snapshot !== undefined) && !rd.mustSync) {
    fail('mustSync is false although term, vote, entries or snapshot changed');
  }
  for (const m of rd.messages) {
    if (m.type === 'preVote' || m.type === 'preVoteResp') continue; // these name a future term on purpose
    if (m.term > hs.term) fail(`${fmt(m)} sent with a term beyond the persisted ${hs.term}`);
    if (m.type === 'vote' && (hs.vote !== tn.id || hs.term !== m.term)) {
      fail(
        `${fmt(m)} sent before persisting the self-vote (persisted ${hs.term}/${hs.vote || '-'})`,
      );
    }
    if (m.type === 'voteResp' && !m.reject && (hs.vote !== m.to || hs.term !== m.term)) {
      fail(`${fmt(m)} granted before persisting the vote (persisted ${hs.term}/${hs.vote || '-'})`);
    }
    if (m.type === 'appResp' && !m.reject && m.index > 0) {
      const s = tn.storage;
      if (s.lastIndex() < m.index)
        fail(`${fmt(m)} acknowledges ${m.index} but storage ends at ${s.lastIndex()}`);
    }
  }
}

/** Eager messages go out before this Ready is persisted: they may only rely on what was durable before it. */
function checkEager(tn: TestNode, rd: Ready, before: { term: number; vote: NodeId }): void {
  for (const m of rd.eagerMessages) {
    if (m.term !== before.term)
      throw new Error(
        `${tn.id}: ${fmt(m)} sent eagerly with a term not yet persisted (${before.term})`,
      );
    if (m.type === 'appResp' || m.type === 'vote' || m.type === 'voteResp')
      throw new Error(`${tn.id}: ${fmt(m)} promises durable state but was sent eagerly`);
  }
}

// ------------------------------------------------------------ formatting

/** A compact one-line rendering of a message, for transcripts and failure messages. */
export function fmt(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'app': {
      const ents = m.entries.map((e) => `${e.index}:${e.term}${entryTag(e)}`).join(' ');
      return `${head} prev ${m.index}:${m.logTerm} [${ents}] commit ${m.commit}`;
    }
    case 'appResp':
      return m.reject
        ? `${head} reject ${m.index} hint ${m.rejectHint}:${m.logTerm}`
        : `${head} index ${m.index}`;
    case 'vote':
    case 'preVote':
      return `${head} last ${m.index}:${m.logTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResp':
    case 'preVoteResp':
      return `${head} ${m.reject ? 'rejected' : 'granted'}`;
    case 'heartbeat':
      return `${head} commit ${m.commit}${m.readRound !== undefined ? ` round ${m.readRound}` : ''}`;
    case 'heartbeatResp':
      return `${head}${m.readRound !== undefined ? ` round ${m.readRound}` : ''}`;
    case 'snap':
      return `${head} snapshot ${m.snapshot?.metadata.index}:${m.snapshot?.metadata.term}`;
    case 'readIndex':
      return `${head} ctx ${m.readCtx}`;
    case 'readIndexResp':
      return `${head} ctx ${m.readCtx} index ${m.index}`;
    default:
      return head;
  }
}

function entryTag(e: Entry): string {
  if (e.type === 'confChange') return '(cc)';
  return e.data.byteLength === 0 ? '(noop)' : `(${dec(e.data)})`;
}

/** A one-line summary of a node: role, term, vote, commit, applied, last index. */
export function describe(net: Network, id: NodeId): string {
  const tn = net.get(id);
  if (!tn.raw) return `${id} down`;
  const r = tn.raw.raft;
  const lead = r.lead === NONE ? '-' : r.lead;
  const vote = r.vote === NONE ? '-' : r.vote;
  return `${id} ${r.role} t${r.term} vote ${vote} lead ${lead} last ${r.log.lastIndex()} commit ${r.log.committed} applied ${tn.appliedIndex} state [${tn.state.join(',')}]`;
}

/** Builds a wire message with defaults (for feeding a node hand-crafted input). */
export function msg(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return message(fields);
}

/** An entry for hand-crafted appends. */
export function ent(index: number, term: number, data = ''): Entry {
  return { index, term, type: 'normal', data: enc(data) };
}
