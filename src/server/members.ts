import { createHash, randomBytes } from 'node:crypto';
import { cloneMember } from '../storage/index.js';

/** What the cluster knows about a member beyond its Raft id. */
export interface Member {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  /** The raftkv version it published through the log (cluster-version.ts); absent until then. */
  version?: string;
}

/** A founding member's id: derived from the cluster name, its name and peer URL, so every node computes the same. */
export function foundingMemberId(clusterName: string, name: string, peerUrl: string): string {
  return createHash('sha256')
    .update(`${clusterName}\0${name}\0${peerUrl}`)
    .digest('hex')
    .slice(0, 16);
}

/** A member added later gets a random id: ids are never reused, even for the same name. */
export function newMemberId(): string {
  return randomBytes(8).toString('hex');
}

/** The cluster id: derived from the founding membership, so nodes of different clusters refuse each other. */
export function clusterIdFor(clusterName: string, founders: Map<string, string>): string {
  const spec = [...founders]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([n, u]) => `${n}=${u}`);
  return createHash('sha256')
    .update(`${clusterName}\0${spec.join(',')}`)
    .digest('hex')
    .slice(0, 16);
}

/**
 * The member table, replicated through Raft: conf change entries carry a
 * Member in their context, and members announce their client URLs with a
 * `memberAttributes` entry once they are up.
 */
export class MemberTable {
  private readonly members = new Map<string, Member>();
  /**
   * Members removed from the cluster. Ids are never reused, so traffic from
   * one of these is from a member that has not noticed its removal: it is
   * told so (and stops) rather than ignored.
   */
  private readonly removed = new Set<string>();

  constructor(initial: Iterable<Member> = [], removed: Iterable<string> = []) {
    for (const m of initial) this.members.set(m.id, cloneMember(m));
    for (const id of removed) this.removed.add(id);
  }

  get(id: string): Member | undefined {
    return this.members.get(id);
  }

  list(): Member[] {
    return [...this.members.values()]
      .map(cloneMember)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  upsert(m: Member): void {
    this.members.set(m.id, cloneMember(m));
  }

  /** What a `memberAttributes` entry publishes; a version left out keeps the one known. */
  setAttributes(id: string, clientUrls: string[], version: string | undefined): void {
    const m = this.members.get(id);
    if (!m) return;
    m.clientUrls = [...clientUrls];
    if (version !== undefined) m.version = version;
  }

  /** Takes a member out of the cluster for good. */
  remove(id: string): void {
    this.members.delete(id);
    this.removed.add(id);
  }

  isRemoved(id: string): boolean {
    return this.removed.has(id);
  }

  removedIds(): string[] {
    return [...this.removed].sort();
  }

  /** Adds ids learned removed (from a snapshot). */
  addRemoved(ids: Iterable<string>): void {
    for (const id of ids) {
      this.members.delete(id);
      this.removed.add(id);
    }
  }

  byName(name: string): Member | undefined {
    for (const m of this.members.values()) if (m.name === name) return cloneMember(m);
    return undefined;
  }
}
