/**
 * Stable codes for the outcomes the KV state machine reports. They are the
 * wire codes of API.md (plus `future_revision`, a read past the current
 * revision), so the API maps them to HTTP statuses with one table.
 */
export type KvErrorCode =
  | 'invalid_request' // malformed command or read: never applied
  | 'too_large' // a configured limit (key, value, ops per txn) was exceeded
  | 'compare_failed' // a CAS guard was false
  | 'key_not_found'
  | 'lease_not_found'
  | 'user_not_found'
  | 'role_not_found'
  | 'unauthenticated' // a request without credentials that applied after auth was enabled
  | 'permission_denied' // the request's user lacks the permission (checked again at apply)
  | 'quota_exceeded' // a nospace alarm is active: commands that grow the state are refused
  | 'compacted' // the requested revision is before the compaction point
  | 'future_revision'; // the requested revision is after the current one

/**
 * A broken invariant or corrupt persisted state inside src/kv. Never used for
 * user errors (those are returned values, so every replica computes the same
 * result); when this is thrown the node must stop rather than limp on.
 */
export class KvInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvInvariantError';
  }
}

/**
 * A committed entry this build cannot understand because a newer raftkv wrote
 * it (a newer envelope version or command type). Thrown by apply() before it
 * changes anything, the entry included: applying it as a no-op would make this
 * replica diverge from the newer ones that apply it, so the node must stop
 * until it runs a raftkv that knows the entry.
 */
export class CommandNotUnderstoodError extends Error {
  /** The Raft index of the entry. */
  readonly index: number;
  /** What is newer, e.g. `command type "sync"`. */
  readonly what: string;
  constructor(index: number, what: string) {
    super(`entry ${index} needs a newer raftkv (${what})`);
    this.name = 'CommandNotUnderstoodError';
    this.index = index;
    this.what = what;
  }
}

/** Assertions stay on in production, as in src/raft. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new KvInvariantError(message);
}
