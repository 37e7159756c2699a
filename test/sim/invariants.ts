import type { Entry, NodeId, Role } from '../../src/raft/index.js';

const decoder = new TextDecoder();

/** Identity of an entry for comparisons across nodes: its term, type and payload. */
export function entryIdentity(e: Entry): string {
  return `${e.term}/${e.type}/${decoder.decode(e.data)}`;
}

/** The part of a node's Raft log the checkers read. */
export interface ObservedLog {
  readonly committed: number;
  firstIndex(): number;
  lastIndex(): number;
  /** undefined when the index is compacted away or beyond the log. */
  term(index: number): number | undefined;
  /** Entries lo..hi-1. */
  slice(lo: number, hi: number): Entry[];
}

/**
 * What the safety checker needs of a node, whatever runs it (the simulator's
 * own loop or the shipped node core): its identity, its life, how far its state
 * machine applied, and its Raft state (undefined while crashed).
 */
export interface ObservedNode {
  readonly id: NodeId;
  /** Bumped on every restart: commit may restart from the disk's value in a new life. */
  readonly incarnation: number;
  /** Index the in-memory state machine has applied. */
  readonly applied: number;
  readonly raft:
    | {
        readonly role: Role;
        readonly term: number;
        readonly log: ObservedLog;
        /** The voters of the configuration the node uses (a leader commits by their quorum). */
        readonly voters?: readonly NodeId[];
      }
    | undefined;
  /**
   * The log as it is on the node's disk, synced (what survives a power loss),
   * whether the node runs or not; optional: without it (for any voter) the
   * commit-durability check is skipped. Indices below firstIndex() are in a
   * synced snapshot.
   */
  readonly durable?: DurableLog;
}

/** The synced part of a node's log. */
export interface DurableLog {
  firstIndex(): number;
  lastIndex(): number;
  term(index: number): number | undefined;
}

/** A broken safety or liveness property; the message names it. */
export class Violation extends Error {
  readonly property: string;
  constructor(property: string, message: string) {
    super(`${property}: ${message}`);
    this.name = 'Violation';
    this.property = property;
  }
}

interface NodeTrack {
  /** Highest commit index seen in the current incarnation. */
  commit: number;
  incarnation: number;
  /** Highest commit index ever persisted in a hard state. */
  persistedCommit: number;
  /** Terms in which we already checked this node as leader. */
  leaderTerms: Set<number>;
  /** The term this node was last seen leading in (this life), and what it had scanned of its log then. */
  leading?: { term: number; scannedTo: number; confIndices: number[] };
  /** Its voters at the previous observation (a conf change may apply within one event). */
  voters?: readonly NodeId[];
}

/**
 * The Raft safety properties (Raft paper Figure 3), checked as the simulation
 * runs: election safety, log matching, leader completeness (and its
 * consequence for every log), state machine safety, plus commit/applied monotonicity per node, and two rules the
 * others rest on: a leader commits only what a quorum of voters has synced
 * (when the nodes expose their durable logs), and a leader's log never holds
 * two membership changes that are both uncommitted (single-server changes
 * are safe only one at a time, dissertation §4.1).
 */
export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** index → identity of the entry known committed there. */
  private readonly committed = new Map<number, string>();
  /**
   * index → the lowest term in which a member was seen with the entry committed:
   * the term it was committed in (the leader that committed it is observed at
   * once). Raft's leader completeness is about these terms, not real time: a
   * candidate of term T paused with its votes in hand may win term T after a
   * leader of a higher term committed more; it must hold only what was
   * committed in terms below T.
   */
  private readonly committedInTerm = new Map<number, number>();
  /** The highest index known committed anywhere. */
  private maxCommitted = 0;
  /** index → identity of the entry applied there by the first node that did. */
  private readonly applied = new Map<number, string>();
  private readonly tracks = new Map<NodeId, NodeTrack>();

  /** How many terms had a leader. */
  leaderTermCount(): number {
    return this.leaderOfTerm.size;
  }

  private track(node: ObservedNode): NodeTrack {
    let t = this.tracks.get(node.id);
    if (!t) {
      t = { commit: 0, incarnation: node.incarnation, persistedCommit: 0, leaderTerms: new Set() };
      this.tracks.set(node.id, t);
    }
    if (t.incarnation !== node.incarnation) {
      t.incarnation = node.incarnation;
      t.commit = 0;
      delete t.leading;
    }
    return t;
  }

  /**
   * Called after every input to a node (message, tick, proposal, disk
   * completion). `cluster` (every member, crashed ones included) lets a
   * leader's commits be checked against its voters' durable logs.
   */
  observe(node: ObservedNode, cluster?: ReadonlyMap<NodeId, ObservedNode>): void {
    const r = node.raft;
    if (!r) return;
    const t = this.track(node);
    const commitBefore = t.commit;

    // Commit never goes backwards within a life; record what became committed.
    const commit = r.log.committed;
    if (commit < t.commit)
      throw new Violation(
        'commit-monotonic',
        `${node.id} commit went from ${t.commit} to ${commit}`,
      );
    if (commit > t.commit) {
      const from = Math.max(t.commit + 1, r.log.firstIndex());
      if (from <= commit) {
        for (const e of r.log.slice(from, commit + 1)) this.recordCommitted(node.id, e, r.term);
      }
      t.commit = commit;
      this.maxCommitted = Math.max(this.maxCommitted, commit);
    }

    if (r.role !== 'leader') delete t.leading;
    else {
      if (t.leading?.term !== r.term) {
        t.leading = { term: r.term, scannedTo: this.maxCommitted, confIndices: [] };
      } else if (commit > commitBefore && cluster) {
        this.checkCommitDurable(node, commit, cluster, t.voters);
      }
      this.checkOneConfChange(node, t.leading);
    }

    if (r.role === 'leader' && !t.leaderTerms.has(r.term)) {
      t.leaderTerms.add(r.term);
      // Election safety: at most one leader per term.
      const other = this.leaderOfTerm.get(r.term);
      if (other !== undefined && other !== node.id) {
        throw new Violation(
          'election-safety',
          `${other} and ${node.id} are both leaders of term ${r.term}`,
        );
      }
      this.leaderOfTerm.set(r.term, node.id);
      // Leader completeness: a new leader holds every entry committed in an earlier term.
      const first = r.log.firstIndex();
      for (const [index, identity] of this.committed) {
        if (index < first) continue; // covered by its snapshot; state machine safety checks those
        if ((this.committedInTerm.get(index) ?? 0) >= r.term) continue;
        const term = r.log.term(index);
        const ents = term === undefined ? [] : r.log.slice(index, index + 1);
        if (ents.length === 0 || entryIdentity(ents[0]!) !== identity) {
          throw new Violation(
            'leader-completeness',
            `${node.id} became leader of term ${r.term} without committed entry ${index} (${identity})`,
          );
        }
      }
    }
    this.checkLogCompleteness(node);
    t.voters = r.voters;
  }

  /**
   * Leader completeness carried to every log: an entry committed in term c is
   * held by every leader of a later term, so by log matching any log with an
   * entry of a term above c at or after its index holds it too. A log whose
   * last term is above c and that holds another entry there (or none) can only
   * have come from a leader that lacked a committed entry — caught here even
   * when that leader never becomes visible (e.g. when the wrong commit leaves
   * the cluster unable to elect anyone). Entries up to the node's own commit
   * are committed-entry-changed's business.
   */
  private checkLogCompleteness(node: ObservedNode): void {
    const log = node.raft!.log;
    const last = log.lastIndex();
    const lastTerm = log.term(last) ?? 0;
    const hi = Math.min(last, this.maxCommitted);
    for (let index = Math.max(log.committed + 1, log.firstIndex()); index <= hi; index++) {
      const identity = this.committed.get(index);
      const inTerm = this.committedInTerm.get(index);
      if (identity === undefined || inTerm === undefined || inTerm >= lastTerm) continue;
      const ents = log.slice(index, index + 1);
      if (ents.length === 0 || entryIdentity(ents[0]!) !== identity) {
        throw new Violation(
          'log-completeness',
          `${node.id} holds entries of term ${lastTerm} after ${index} but not ${identity}, committed there in term ${inTerm}`,
        );
      }
    }
  }

  /**
   * A leader that moved its commit index to `commit` in its term: a quorum of
   * its voters must hold the entry there on disk, synced (the leader's own
   * copy counts only once synced too). Skipped unless every voter exposes its
   * durable log. Membership takes effect when applied, and one event may both
   * commit (under the voters before it) and apply a change: a quorum of either
   * the voters now or those at the previous observation will do.
   */
  private checkCommitDurable(
    leader: ObservedNode,
    commit: number,
    cluster: ReadonlyMap<NodeId, ObservedNode>,
    votersBefore: readonly NodeId[] | undefined,
  ): void {
    const r = leader.raft!;
    const voters = r.voters;
    if (!voters || voters.length === 0) return;
    const term = r.log.term(commit);
    if (term === undefined) return; // compacted already: applied, so long since durable
    const holdersOf = (set: readonly NodeId[]): NodeId[] | undefined => {
      const holders: NodeId[] = [];
      for (const id of set) {
        const durable = id === leader.id ? leader.durable : cluster.get(id)?.durable;
        if (!durable) return undefined;
        const has = commit < durable.firstIndex() || durable.term(commit) === term;
        if (has) holders.push(id);
      }
      return holders;
    };
    const holders = holdersOf(voters);
    if (!holders || holders.length > voters.length / 2) return;
    if (votersBefore && votersBefore.join() !== voters.join()) {
      const before = holdersOf(votersBefore);
      if (!before || before.length > votersBefore.length / 2) return;
    }
    throw new Violation(
      'commit-durable',
      `${leader.id} (leader of term ${r.term}) committed ${commit} (term ${term}) while only ` +
        `[${holders.join(', ')}] of voters [${voters.join(', ')}] had it synced`,
    );
  }

  /** At most one membership change past the highest index known committed, in a leader's log. */
  private checkOneConfChange(
    node: ObservedNode,
    leading: { scannedTo: number; confIndices: number[] },
  ): void {
    const log = node.raft!.log;
    // A leader's log only grows in its term: scan what is new since the last look.
    const from = Math.max(leading.scannedTo + 1, log.firstIndex());
    const last = log.lastIndex();
    if (from <= last) {
      for (const e of log.slice(from, last + 1)) {
        if (e.type === 'confChange') leading.confIndices.push(e.index);
      }
    }
    leading.scannedTo = Math.max(leading.scannedTo, last);
    const pending = leading.confIndices.filter((i) => i > this.maxCommitted);
    leading.confIndices = pending;
    if (pending.length > 1) {
      throw new Violation(
        'one-conf-change-at-a-time',
        `${node.id}'s log holds membership changes at [${pending.join(', ')}], none of them committed ` +
          `(highest committed index known: ${this.maxCommitted})`,
      );
    }
  }

  private recordCommitted(nodeId: NodeId, e: Entry, term: number): void {
    const identity = entryIdentity(e);
    const inTerm = this.committedInTerm.get(e.index);
    if (inTerm === undefined || term < inTerm) this.committedInTerm.set(e.index, term);
    const known = this.committed.get(e.index);
    if (known === undefined) this.committed.set(e.index, identity);
    else if (known !== identity) {
      throw new Violation(
        'committed-entry-changed',
        `${nodeId} committed ${identity} at ${e.index}, already committed: ${known}`,
      );
    }
  }

  onPersistHardState(node: ObservedNode, commit: number): void {
    const t = this.track(node);
    if (commit < t.persistedCommit) {
      throw new Violation(
        'commit-monotonic',
        `${node.id} persisted commit ${commit} after ${t.persistedCommit}`,
      );
    }
    t.persistedCommit = commit;
  }

  /** State machine safety: no two nodes apply different entries at one index; applies are contiguous. */
  onApply(node: ObservedNode, e: Entry): void {
    if (e.index !== node.applied + 1) {
      throw new Violation(
        'applied-monotonic',
        `${node.id} applied ${e.index} after ${node.applied}`,
      );
    }
    const identity = entryIdentity(e);
    const known = this.applied.get(e.index);
    if (known === undefined) this.applied.set(e.index, identity);
    else if (known !== identity) {
      throw new Violation(
        'state-machine-safety',
        `${node.id} applied ${identity} at ${e.index}, another node applied ${known}`,
      );
    }
  }

  onApplySnapshot(node: ObservedNode, index: number): void {
    if (index <= node.applied) {
      throw new Violation(
        'applied-monotonic',
        `${node.id} installed snapshot ${index} at applied ${node.applied}`,
      );
    }
  }

  /** Log matching (§5.3): if two logs hold an entry with the same index and term, they are identical up to it. */
  checkLogMatching(nodes: readonly ObservedNode[]): void {
    const live = nodes.filter((n) => n.raft);
    for (let i = 0; i < live.length; i++) {
      for (let j = i + 1; j < live.length; j++) {
        const a = live[i]!.raft!.log;
        const b = live[j]!.raft!.log;
        const lo = Math.max(a.firstIndex(), b.firstIndex());
        const hi = Math.min(a.lastIndex(), b.lastIndex());
        let top = hi;
        while (top >= lo && a.term(top) !== b.term(top)) top--;
        if (top < lo) continue;
        const ea = a.slice(lo, top + 1);
        const eb = b.slice(lo, top + 1);
        for (let k = 0; k < ea.length; k++) {
          if (entryIdentity(ea[k]!) !== entryIdentity(eb[k]!)) {
            throw new Violation(
              'log-matching',
              `${live[i]!.id} and ${live[j]!.id} agree at ${top} (term ${a.term(top)}) but differ at ${lo + k}`,
            );
          }
        }
      }
    }
  }
}
