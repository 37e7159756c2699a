import type { ConfChange } from '../raft/index.js';
import { ServerError } from './errors.js';
import { type Member, newMemberId } from './members.js';

/** A member as `/v1/cluster/members` shows it. */
export interface MemberView extends Omit<Member, 'version'> {
  /** The raftkv version the member published; null until it has. */
  version: string | null;
  role: 'voter' | 'learner';
}

/** One change of `POST/DELETE /v1/cluster/members…`, as a follower passes it to the leader. */
export type MemberChange =
  | { type: 'add'; name: string; peerUrl: string; clientUrl: string; learner: boolean }
  | { type: 'promote'; id: string }
  | { type: 'remove'; id: string };

/** What a membership change needs of the node (on the leader). */
export interface MembershipTarget {
  isLeader(): boolean;
  members(): Member[];
  voters(): readonly string[];
  learners(): readonly string[];
  /** Proposes the change and resolves once it is applied here. */
  apply(cc: ConfChange, signal: AbortSignal): Promise<void>;
  /** Resolves once no membership change (nor a new term's first entry) is pending here. */
  settled(signal: AbortSignal): Promise<void>;
  /** The scheme every peer URL has: 'https:' with peer TLS, whose peers refuse plain HTTP. */
  peerScheme?: 'http:' | 'https:';
}

/**
 * Membership changes on the leader, one at a time as Raft requires: each is a
 * conf change entry, answered once applied. An added member gets a fresh
 * random id (ids are never reused) and joins with `--join`, learning its id
 * and the cluster from the members it is pointed at; adding it as a learner
 * first, then promoting it once caught up, keeps the quorum safe meanwhile.
 */
export class Membership {
  /** The change being made here; the next one starts after it. */
  private inFlight: Promise<unknown> = Promise.resolve();

  constructor(private readonly node: MembershipTarget) {}

  /**
   * Makes one change once the ones before it are applied, and checks it
   * against the members as they are then: two adds of the same name asked
   * together give one member and one refusal, not two members or a 503.
   */
  change(change: MemberChange, signal: AbortSignal): Promise<MemberView | { removed: string }> {
    const turn = this.inFlight.then(async () => {
      await this.node.settled(signal);
      return this.changeNow(change, signal);
    });
    this.inFlight = turn.catch(() => undefined);
    return turn;
  }

  private async changeNow(
    change: MemberChange,
    signal: AbortSignal,
  ): Promise<MemberView | { removed: string }> {
    if (!this.node.isLeader()) throw new ServerError('not_leader', 'not the leader');
    if (change.type === 'add') return this.add(change, signal);
    if (change.type !== 'promote' && change.type !== 'remove') {
      throw new ServerError('invalid_request', 'unknown membership change');
    }
    const member = this.node.members().find((m) => m.id === change.id);
    if (!member) throw new ServerError('member_not_found', `no member with id ${change.id}`);
    if (change.type === 'promote') {
      if (!this.node.learners().includes(member.id)) {
        throw new ServerError('invalid_request', `member ${member.id} is already a voter`);
      }
      await this.node.apply({ type: 'addNode', nodeId: member.id }, signal);
      return this.view(member.id);
    }
    if (this.node.voters().length === 1 && this.node.voters()[0] === member.id) {
      throw new ServerError('invalid_request', 'the last voter cannot be removed');
    }
    await this.node.apply({ type: 'removeNode', nodeId: member.id }, signal);
    return { removed: member.id };
  }

  private async add(
    req: Extract<MemberChange, { type: 'add' }>,
    signal: AbortSignal,
  ): Promise<MemberView> {
    const scheme = this.node.peerScheme;
    if (scheme !== undefined && new URL(req.peerUrl).protocol !== scheme) {
      // A member the others cannot reach (or that talks plain HTTP past peer TLS) is refused now,
      // not found out later as an unreachable voter.
      throw new ServerError(
        'invalid_request',
        scheme === 'https:'
          ? `peer TLS is on: the peer URL must be https://, got ${req.peerUrl}`
          : `peer TLS is off: the peer URL must be http://, got ${req.peerUrl}`,
      );
    }
    for (const m of this.node.members()) {
      if (m.name === req.name) {
        throw new ServerError('invalid_request', `a member named "${req.name}" exists (${m.id})`);
      }
      if (m.peerUrls.includes(req.peerUrl)) {
        throw new ServerError(
          'invalid_request',
          `member ${m.name} already has peer URL ${req.peerUrl}`,
        );
      }
    }
    const member: Member = {
      id: newMemberId(),
      name: req.name,
      peerUrls: [req.peerUrl],
      clientUrls: [req.clientUrl],
    };
    await this.node.apply(
      {
        type: req.learner ? 'addLearner' : 'addNode',
        nodeId: member.id,
        context: JSON.stringify(member),
      },
      signal,
    );
    return this.view(member.id);
  }

  private view(id: string): MemberView {
    const m = this.node.members().find((x) => x.id === id);
    if (!m) throw new ServerError('timeout', `member ${id} was changed again meanwhile`);
    return {
      ...m,
      version: m.version ?? null,
      role: this.node.learners().includes(id) ? 'learner' : 'voter',
    };
  }
}
