/**
 * Where the coordination recipes (registry, locks, elections) keep their keys
 * in the one MVCC keyspace. The prefixes start with U+0000, which the HTTP KV
 * API refuses in user keys, so users cannot forge or clobber them; they are
 * ordinary keys otherwise (leases, revisions and watches all apply).
 */
export const REGISTRY_PREFIX = '\u0000registry/';
export const LOCK_PREFIX = '\u0000lock/';
export const ELECTION_PREFIX = '\u0000election/';

export function registryKey(name: string): string {
  return `${REGISTRY_PREFIX}${name}`;
}

/** The waiters of lock `name`: one key per acquirer, the lowest createRevision holds it. */
export function lockWaitersPrefix(name: string): string {
  return `${LOCK_PREFIX}${name}/`;
}

/** The candidates of election `name`: the lowest createRevision leads. */
export function electionCandidatesPrefix(name: string): string {
  return `${ELECTION_PREFIX}${name}/`;
}

/**
 * The lock or election name a waiter's key belongs to, given the recipe's
 * prefix (LOCK_PREFIX or ELECTION_PREFIX): the inverse of lockWaitersPrefix
 * and electionCandidatesPrefix (names hold no "/").
 */
export function waiterName(key: string, recipePrefix: string): string {
  const rest = key.slice(recipePrefix.length);
  return rest.slice(0, rest.indexOf('/'));
}

export function isReservedKey(key: string): boolean {
  return key.startsWith('\u0000');
}
