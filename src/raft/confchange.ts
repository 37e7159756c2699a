import type { ConfChange, ConfState, NodeId } from './messages.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return encoder.encode(JSON.stringify(cc));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const cc = JSON.parse(decoder.decode(data)) as ConfChange;
  return cc;
}

/**
 * Why a change cannot be applied to `cs`, or undefined if it can. Every node
 * runs the same check at apply time, so an invalid change is a no-op everywhere.
 */
export function confChangeProblem(cs: ConfState, cc: ConfChange): string | undefined {
  if (typeof cc.nodeId !== 'string' || cc.nodeId === '') return 'a member id is required';
  const isVoter = cs.voters.includes(cc.nodeId);
  const isLearner = cs.learners.includes(cc.nodeId);
  switch (cc.type) {
    case 'addNode':
      return isVoter ? `${cc.nodeId} is already a voter` : undefined;
    case 'addLearner':
      if (isLearner) return `${cc.nodeId} is already a learner`;
      if (isVoter && cs.voters.length === 1) return 'cannot demote the last voter';
      return undefined;
    case 'removeNode':
      if (!isVoter && !isLearner) return `${cc.nodeId} is not a member`;
      if (isVoter && cs.voters.length === 1) return 'cannot remove the last voter';
      return undefined;
    default:
      return `unknown change type ${(cc as { type: unknown }).type}`;
  }
}

/**
 * The configuration after one change (single-server changes, dissertation §4.1):
 * addNode adds a voter or promotes a learner, addLearner adds a learner or
 * demotes a voter, removeNode removes either. An invalid change leaves cs as is.
 */
export function applyConfChangeTo(cs: ConfState, cc: ConfChange): ConfState {
  if (confChangeProblem(cs, cc) !== undefined)
    return { voters: [...cs.voters], learners: [...cs.learners] };
  const without = (ids: NodeId[]) => ids.filter((id) => id !== cc.nodeId);
  const voters = without(cs.voters);
  const learners = without(cs.learners);
  if (cc.type === 'addNode') voters.push(cc.nodeId);
  else if (cc.type === 'addLearner') learners.push(cc.nodeId);
  voters.sort();
  learners.sort();
  return { voters, learners };
}
