import type { FastifyReply } from 'fastify';

/** API.md's error table: every wire code and its status. The one place codes become statuses. */
export const statusOfCode: Record<string, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  permission_denied: 403,
  key_not_found: 404,
  lease_not_found: 404,
  member_not_found: 404,
  no_leader_elected: 404,
  compare_failed: 409,
  name_taken: 409,
  lock_timeout: 409,
  compacted: 410,
  too_large: 413,
  too_many_requests: 429,
  // Beyond API.md's table (additions): no such route or method; a documented endpoint not built yet.
  not_found: 404,
  not_implemented: 501,
  unavailable: 503,
  timeout: 504,
};

/** A request the API itself rejects (validation), with API.md's code. */
export class ApiError extends Error {
  readonly code: string;
  readonly extra: Record<string, unknown>;
  constructor(code: string, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.extra = extra;
  }
}

/** Sends `{"error": {"code", "message"}, ...extra}` with the code's status (and Retry-After for 429/503). */
export function sendError(
  reply: FastifyReply,
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
  retryAfterSeconds?: number,
): FastifyReply {
  const status = statusOfCode[code] ?? 500;
  if ((status === 429 || status === 503) && reply.getHeader('retry-after') === undefined) {
    reply.header('retry-after', String(retryAfterSeconds ?? 1));
  }
  return reply.code(status).send({ error: { code, message }, ...extra });
}
