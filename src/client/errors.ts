import type { KeyValue } from './types.js';

/**
 * API.md's stable error codes, plus `unavailable` for network failures and
 * `timeout` for a request the client gave up on (both then have status 0),
 * `lease_expired` for a lease keepLeaseAlive could not renew in time, and
 * `tls_failed` for a TLS handshake that failed on a certificate (status 0;
 * not retried on the same endpoint).
 * Codes not listed here may still arrive from newer servers.
 */
export type RaftkvErrorCode =
  | 'invalid_request'
  | 'unauthenticated'
  | 'permission_denied'
  | 'key_not_found'
  | 'lease_not_found'
  | 'member_not_found'
  | 'no_leader_elected'
  | 'compare_failed'
  | 'name_taken'
  | 'lock_timeout'
  | 'cluster_version_too_old'
  | 'lease_expired'
  | 'compacted'
  | 'too_large'
  | 'too_many_requests'
  | 'unavailable'
  | 'timeout'
  | 'internal'
  | 'tls_failed'
  | (string & {});

/** The code a status implies when a response carries no API error body. */
const codeOfStatus: Record<number, RaftkvErrorCode> = {
  400: 'invalid_request',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'key_not_found',
  409: 'compare_failed',
  410: 'compacted',
  413: 'too_large',
  429: 'too_many_requests',
  503: 'unavailable',
  504: 'timeout',
};

/**
 * Every failure the client reports. `status` is the HTTP status, or 0 when no
 * response was received (network failure, client-side timeout). `body` is the
 * parsed response body, when there was one; its well-known extras are copied
 * to `revision`, `kv` (compare_failed: the current version, or null),
 * `compactRevision` (compacted) and `entry` (name_taken).
 *
 * Outcome of a write: every code means "not applied" except `timeout` and
 * `unavailable` with status 0, which mean "unknown" (see API.md). The client
 * retries those itself with the call's Idempotency-Key before reporting them.
 */
export class RaftkvError extends Error {
  readonly code: RaftkvErrorCode;
  readonly status: number;
  readonly body: unknown;
  readonly revision: number | undefined;
  readonly kv: KeyValue | null | undefined;
  readonly compactRevision: number | undefined;
  readonly entry: unknown;
  /** The endpoint that answered (or failed). */
  readonly endpoint: string | undefined;
  /** 429/503: how long the server asked us to wait, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: RaftkvErrorCode,
    message: string,
    extra: {
      status?: number;
      body?: unknown;
      endpoint?: string;
      retryAfterMs?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'RaftkvError';
    this.code = code;
    this.status = extra.status ?? 0;
    this.body = extra.body;
    this.endpoint = extra.endpoint;
    this.retryAfterMs = extra.retryAfterMs;
    const b = (typeof extra.body === 'object' && extra.body !== null ? extra.body : {}) as Record<
      string,
      unknown
    >;
    this.revision = typeof b.revision === 'number' ? b.revision : undefined;
    this.kv = 'kv' in b ? (b.kv as KeyValue | null) : undefined;
    this.compactRevision = typeof b.compactRevision === 'number' ? b.compactRevision : undefined;
    this.entry = b.entry;
  }

  /** The error an HTTP error response stands for. */
  static fromResponse(
    status: number,
    body: unknown,
    endpoint: string,
    retryAfterMs?: number,
  ): RaftkvError {
    const err = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const code =
      typeof err?.code === 'string' ? err.code : (codeOfStatus[status] ?? httpFallback(status));
    const message = typeof err?.message === 'string' ? err.message : `HTTP ${status}`;
    const extra = {
      status,
      body,
      endpoint,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
    const Typed = typedErrors[code];
    return Typed ? new Typed(message, extra) : new RaftkvError(code, message, extra);
  }
}

type ErrorExtra = ConstructorParameters<typeof RaftkvError>[2];

/**
 * 401: no credentials, wrong ones, or a token that expired or was
 * invalidated (its user deleted, its password or roles changed, auth
 * re-enabled). A client configured with a name and password has already
 * fetched a fresh token and retried once before reporting this.
 */
export class UnauthenticatedError extends RaftkvError {
  override readonly code = 'unauthenticated' as const;
  constructor(message: string, extra: ErrorExtra = {}) {
    super('unauthenticated', message, { status: 401, ...extra });
    this.name = 'UnauthenticatedError';
  }
}

/** 403: the credentials are good, but their user's roles do not permit this request. */
export class PermissionDeniedError extends RaftkvError {
  override readonly code = 'permission_denied' as const;
  constructor(message: string, extra: ErrorExtra = {}) {
    super('permission_denied', message, { status: 403, ...extra });
    this.name = 'PermissionDeniedError';
  }
}

/**
 * 429: backpressure, or too many failed token requests for one name.
 * `retryAfterMs` is the server's Retry-After, when it sent one.
 */
export class TooManyRequestsError extends RaftkvError {
  override readonly code = 'too_many_requests' as const;
  constructor(message: string, extra: ErrorExtra = {}) {
    super('too_many_requests', message, { status: 429, ...extra });
    this.name = 'TooManyRequestsError';
  }
}

/** The subclass fromResponse builds for a code, so callers can use instanceof as well as `code`. */
const typedErrors: Partial<
  Record<string, new (message: string, extra?: ErrorExtra) => RaftkvError>
> = {
  unauthenticated: UnauthenticatedError,
  permission_denied: PermissionDeniedError,
  too_many_requests: TooManyRequestsError,
};

function httpFallback(status: number): RaftkvErrorCode {
  return status >= 500 ? 'internal' : 'invalid_request';
}

export function isRaftkvError(err: unknown, code?: RaftkvErrorCode): err is RaftkvError {
  return err instanceof RaftkvError && (code === undefined || err.code === code);
}

/** key_not_found (or any other *_not_found code). */
export function isNotFound(err: unknown): err is RaftkvError {
  return err instanceof RaftkvError && err.code.endsWith('_not_found');
}
