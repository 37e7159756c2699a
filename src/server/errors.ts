/**
 * Operational errors of a node, each with a stable code that src/api maps to
 * an HTTP status in one table. `timeout` means the outcome of a write is
 * unknown (API.md's 504); every other code means the write was not applied.
 */
export type ServerErrorCode =
  | 'unavailable' // no leader, or shutting down (503, Retry-After)
  | 'too_many_requests' // backpressure before proposing (429, Retry-After)
  | 'timeout' // proposed, outcome unknown (504)
  | 'not_leader' // the caller should forward to the leader
  | 'invalid_request'
  | 'member_not_found'
  | 'quota_exceeded' // a nospace alarm refused a write that grows the state (507, nothing applied)
  | 'cluster_version_too_old'; // a command the cluster version does not have yet (never proposed)

export class ServerError extends Error {
  readonly code: ServerErrorCode;
  /** not_leader: the leader's client URL when known. */
  readonly leaderUrl: string | undefined;
  /** 429/503: seconds after which a retry may succeed. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ServerErrorCode,
    message: string,
    extra: { leaderUrl?: string | undefined; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'ServerError';
    this.code = code;
    this.leaderUrl = extra.leaderUrl;
    this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

/**
 * This member was removed from the cluster: its data dir cannot serve again.
 * The raftkv command exits with EXIT_REMOVED.
 */
export class MemberRemovedError extends Error {
  readonly code = 'member_removed';
  constructor(message: string) {
    super(message);
    this.name = 'MemberRemovedError';
  }
}
