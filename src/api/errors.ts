import type { FastifyReply } from 'fastify';
import type { KvErrorCode } from '../kv/errors.js';
import type { ServerErrorCode } from '../server/errors.js';

/** The statuses API.md's error table uses; a code with any other status does not compile. */
type ApiStatus = 400 | 401 | 403 | 404 | 409 | 410 | 413 | 429 | 503 | 504 | 507;

/**
 * API.md's error table: every wire code and its status, the one place codes
 * become statuses (in the manner of fastify's lib/errors.js).
 *
 * It lives here, in the HTTP layer, because statuses are HTTP: src/kv imports
 * nothing outside src/kv and src/server knows no statuses. Their own code
 * unions (KvErrorCode, ServerErrorCode) are checked against this table by the
 * compiler in wireCode() below, the one place they cross into HTTP: a code
 * added there that is neither in this table nor mapped explicitly fails to
 * compile instead of answering 500.
 */
export const statusOfCode = {
  /** Malformed or invalid request (body, query, path, header); never applied. */
  invalid_request: 400,
  /** No credentials, or credentials that do not verify. */
  unauthenticated: 401,
  /** The user may not do this (or a peer of another cluster). */
  permission_denied: 403,
  /** GET/DELETE of a key (or registry name) that does not exist. */
  key_not_found: 404,
  /** A lease id that was never granted, expired or was revoked. */
  lease_not_found: 404,
  /** A user name that does not exist (API.md "Security"; an addition to its 404 codes). */
  user_not_found: 404,
  /** A role name that does not exist (an addition to API.md's 404 codes). */
  role_not_found: 404,
  /** A member id that is not in the cluster. */
  member_not_found: 404,
  /** An election that has no leader right now. */
  no_leader_elected: 404,
  /** A guard (prevRevision, prevValue, registry holder) was false; body carries kv and revision. */
  compare_failed: 409,
  /**
   * A command the cluster version does not have yet (a member still runs an
   * older raftkv): never proposed. Retrying helps only after every member is
   * upgraded (an addition to API.md's 409 codes).
   */
  cluster_version_too_old: 409,
  /** A registry name held by another lease. */
  name_taken: 409,
  /** A lock not acquired within the caller's wait. */
  lock_timeout: 409,
  /** A read at a revision before the compaction point; body carries compactRevision. */
  compacted: 410,
  /** A key, value, txn or request over a configured limit. */
  too_large: 413,
  /** Backpressure before proposing; Retry-After. */
  too_many_requests: 429,
  /** Beyond API.md's table: no such route or method. */
  not_found: 404,
  /** No leader, or shutting down; never proposed. Retry-After. */
  unavailable: 503,
  /** Proposed, but no answer in time: the outcome is unknown. */
  timeout: 504,
  /** A nospace alarm is active (the space quota): writes that grow the state are not applied. */
  quota_exceeded: 507,
} as const satisfies Record<string, ApiStatus>;

/** A code the client API may answer with; anything else is a compile error at sendError. */
export type ErrorCode = keyof typeof statusOfCode;

/**
 * The wire code of a code from an inner layer. Codes that are already wire
 * codes pass through; the internal ones are mapped here and nowhere else.
 * The compiler checks this both ways: a new inner code that is not a wire code
 * fails at `return code` until it is mapped, and a mapped code that an inner
 * union no longer has fails at its `case`.
 */
export function wireCode(code: KvErrorCode | ServerErrorCode): ErrorCode {
  switch (code) {
    case 'future_revision': // a read past the current revision: the caller asked for the impossible
      return 'invalid_request';
    case 'not_leader': // reached the API only if forwarding was not possible: never proposed
      return 'unavailable';
    default:
      return code;
  }
}

/** A request the API itself rejects (validation), with API.md's code. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly extra: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.extra = extra;
  }
}

/** Sends `{"error": {"code", "message"}, ...extra}` with the code's status (and Retry-After for 429/503). */
export function sendError(
  reply: FastifyReply,
  code: ErrorCode,
  message: string,
  extra: Record<string, unknown> = {},
  retryAfterSeconds?: number,
): FastifyReply {
  const status = statusOfCode[code];
  if ((status === 429 || status === 503) && reply.getHeader('retry-after') === undefined) {
    reply.header('retry-after', String(retryAfterSeconds ?? 1));
  }
  return reply.code(status).send({ error: { code, message }, ...extra });
}
