import type { NodeId } from './messages.js';

/** Votes tally of a majority configuration. */
export type VoteResult = 'won' | 'lost' | 'pending';

export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The largest index that a majority of voters has reached (Raft §5.3). With
 * no voters, nothing constrains commitment: Infinity, as etcd does.
 */
export function committedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  if (voters.length === 0) return Number.POSITIVE_INFINITY;
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  return matches[majority(voters.length) - 1]!;
}

export function voteResult(
  voters: readonly NodeId[],
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  if (voters.length === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const needed = majority(voters.length);
  if (granted >= needed) return 'won';
  if (granted + missing >= needed) return 'pending';
  return 'lost';
}

/** Whether the members for which `active` holds form a majority of the voters. */
export function isQuorum(voters: readonly NodeId[], active: (id: NodeId) => boolean): boolean {
  let n = 0;
  for (const id of voters) if (active(id)) n++;
  return n >= majority(voters.length);
}
