/**
 * Which member the page talks to. Pure: tested in Node.
 *
 * 1. Keep the current member while it answers and knows a leader: moving
 *    without need would only lose the watch streams' place.
 * 2. Otherwise the first other member (in the members' order) that answered
 *    its last poll and knows a leader.
 * 3. Otherwise one that at least answers (a cluster without a leader: better
 *    a member that says so than none).
 * 4. Otherwise stay, and keep asking.
 *
 * @param {string} current the client URL in use
 * @param {{url: string, reachable: boolean, hasLeader: boolean}[]} members
 * @returns {string}
 */
export function chooseEndpoint(current, members) {
  const here = members.find((m) => m.url === current);
  if (here?.reachable && here.hasLeader) return current;
  const withLeader = members.find((m) => m.url !== current && m.reachable && m.hasLeader);
  if (withLeader) return withLeader.url;
  if (here?.reachable) return current;
  const answering = members.find((m) => m.url !== current && m.reachable);
  if (answering) return answering.url;
  return current;
}

/** Why the page left or stays off a member, for the banner; undefined when all is well. */
export function connectionProblem(member) {
  if (member === undefined) return undefined;
  if (!member.reachable) return `${member.name} is unreachable`;
  if (!member.hasLeader) return `${member.name} has no leader`;
  return undefined;
}
