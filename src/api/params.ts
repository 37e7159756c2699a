import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';
import type { ApiService, WriteOptions } from './service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** A single-write request's options, stamped for the latency accounting (null otherwise). */
    writeStamps: WriteOptions | null;
  }
}

/** Query strings arrive as strings: parse them strictly here rather than let a validator coerce. */
export type Query = Record<string, string | string[] | undefined>;

export function rejectUnknown(query: Query, allowed: readonly string[]): void {
  for (const name of Object.keys(query)) {
    if (!allowed.includes(name))
      throw new ApiError('invalid_request', `unknown query parameter "${name}"`);
  }
}

function single(query: Query, name: string): string | undefined {
  const v = query[name];
  if (Array.isArray(v))
    throw new ApiError('invalid_request', `query parameter "${name}" given more than once`);
  return v;
}

export function intParam(query: Query, name: string, min: number): number | undefined {
  const raw = single(query, name);
  if (raw === undefined) return undefined;
  if (!/^-?\d+$/.test(raw))
    throw new ApiError('invalid_request', `${name} must be an integer, got "${raw}"`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min)
    throw new ApiError('invalid_request', `${name} must be an integer ≥ ${min}`);
  return n;
}

export function boolParam(query: Query, name: string): boolean {
  const raw = single(query, name);
  if (raw === undefined) return false;
  if (raw === 'true' || raw === '1' || raw === '') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ApiError('invalid_request', `${name} must be true or false, got "${raw}"`);
}

export function stringParam(query: Query, name: string): string | undefined {
  return single(query, name);
}

export function consistencyParam(query: Query): 'linearizable' | 'serializable' {
  const raw = single(query, 'consistency');
  if (raw === undefined || raw === 'linearizable') return 'linearizable';
  if (raw === 'serializable') return 'serializable';
  throw new ApiError(
    'invalid_request',
    `consistency must be linearizable or serializable, got "${raw}"`,
  );
}

/** API.md: 1 to 128 printable ASCII characters. */
export function idempotencyKeyOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header))
    throw new ApiError('invalid_request', 'Idempotency-Key given more than once');
  if (header.length < 1 || header.length > 128 || !/^[\x20-\x7e]+$/.test(header)) {
    throw new ApiError(
      'invalid_request',
      'Idempotency-Key must be 1 to 128 printable ASCII characters',
    );
  }
  return header;
}

/** The key of a /v1/kv/{key} path: everything after the prefix, already URL-decoded by the router. */
export function keyParam(params: unknown): string {
  const key = (params as { '*'?: string })['*'] ?? '';
  if (key === '') throw new ApiError('invalid_request', 'the key must not be empty');
  if (key.startsWith('\u0000')) {
    throw new ApiError(
      'invalid_request',
      'keys starting with U+0000 are reserved for the registry, locks and elections',
    );
  }
  return key;
}

/**
 * The options of a write made by `req`: its deadline, its user, and for an
 * Idempotency-Key a digest of what the request was (method, URL, body), so
 * the same key on another request is refused rather than answered with the
 * first one's result.
 */
export function writeOptionsOf(req: FastifyRequest, service: ApiService): WriteOptions {
  const opts: WriteOptions = { signal: service.requestDeadline() };
  const idempotencyKey = idempotencyKeyOf(req.headers['idempotency-key']);
  if (idempotencyKey) {
    opts.idempotencyKey = idempotencyKey;
    opts.requestDigest = createHash('sha256')
      .update(`${req.method} ${req.url}\n${req.body === undefined ? '' : JSON.stringify(req.body)}`)
      .digest('base64url')
      .slice(0, 22); // 128 bits: collisions between a user's own requests are not a concern
  }
  return Object.assign(opts, requesterOf(req));
}

/**
 * writeOptionsOf for a request that is exactly one write (PUT and DELETE of a key, a txn):
 * the server stamps these options, and the response hook puts the request into the
 * latency accounting (src/server/write-accounting.ts).
 */
export function timedWriteOptionsOf(req: FastifyRequest, service: ApiService): WriteOptions {
  const opts = writeOptionsOf(req, service);
  opts.proposedMs = Number.NaN;
  opts.appliedMs = Number.NaN;
  req.writeStamps = opts;
  return opts;
}

/** Who a write is made for: the user, or an anonymous client (never the system). */
export function requesterOf(req: FastifyRequest): { user: string } | { anonymous: true } {
  const user = req.principal?.user;
  return user !== undefined ? { user } : { anonymous: true };
}
