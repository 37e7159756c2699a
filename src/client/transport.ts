import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { Credentials } from './credentials.js';
import { RaftkvError, UnauthenticatedError } from './errors.js';
import { type ClientTlsOptions, checkTlsOptions, describeTlsFailure } from './tls.js';

export interface TransportOptions {
  endpoints: string[];
  /** Per attempt: connect, send, and receive the whole response. */
  timeoutMs: number;
  /** Further attempts after the first one, across endpoints. */
  retries: number;
  /** First backoff between attempts on an endpoint already tried; doubles, with jitter. */
  backoffMs: number;
  backoffMaxMs: number;
  /** A server's Retry-After is honoured up to this. */
  retryAfterMaxMs: number;
  /** For https:// endpoints; with it, an endpoint without a scheme is https. */
  tls?: ClientTlsOptions | undefined;
  /**
   * Aborts every call (each of its attempts, backoffs and failovers) and every
   * watch connection, now and later: a deadline over everything the client
   * does (kvctl's --command-timeout). See Transport.call for what a call it
   * aborts rejects with.
   */
  signal?: AbortSignal | undefined;
}

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

export interface CallSpec {
  method: Method;
  /** Path and query string, e.g. `/v1/kv/a/b?revision=3`. */
  path: string;
  body?: unknown;
  /**
   * Writes: sent as the Idempotency-Key header on every attempt. A call is
   * retried after an ambiguous failure (a reset after sending, a timeout,
   * 504) only if it is a GET or carries a key.
   */
  idempotencyKey?: string;
  signal?: AbortSignal | undefined;
  /** Talk to this endpoint only (at most one retry, for a stale keep-alive socket). */
  endpoint?: string | undefined;
  /** A successful answer's body is bytes (a Uint8Array), not JSON. */
  binary?: boolean;
  /** With `binary`: told the bytes received so far (and the Content-Length, if any) as they arrive. */
  onBinaryProgress?: ((receivedBytes: number, totalBytes: number | undefined) => void) | undefined;
  /** Statuses to return rather than treat as errors (e.g. 503 for /health). */
  accept?: readonly number[];
  /** This call's per-attempt timeout, instead of the client's (e.g. a lock that waits in line). */
  timeoutMs?: number | undefined;
  /** Send no Authorization header (the token request itself). */
  anonymous?: boolean;
  /** Retrying after an ambiguous failure is harmless although it is no GET and has no key. */
  retrySafe?: boolean;
  /** false: a 429 is thrown at once instead of retried (a throttled token request). Default true. */
  retryThrottled?: boolean;
}

export interface CallResult<T> {
  status: number;
  body: T;
  endpoint: string;
}

/** Errors of a connection that was never established: the request cannot have been seen. */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Normalises `host:port` or `http://host:port/` to `http://host:port` (a path
 * prefix is kept); `defaultScheme` is used when the endpoint has none.
 */
export function normalizeEndpoint(
  endpoint: string,
  defaultScheme: 'http' | 'https' = 'http',
): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint)
    ? endpoint
    : `${defaultScheme}://${endpoint}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new RaftkvError('invalid_request', `bad endpoint "${endpoint}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new RaftkvError('invalid_request', `bad endpoint "${endpoint}": http or https only`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** Milliseconds a Retry-After header asks for (delta-seconds or an HTTP date), if any. */
export function parseRetryAfter(header: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw === undefined || raw.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(raw)) return Number(raw) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export function newIdempotencyKey(): string {
  return randomUUID();
}

/** The result of one attempt: a response, or a failure and whether retrying it is sensible. */
type Attempt<T> =
  | { ok: true; result: CallResult<T> }
  | {
      ok: false;
      error: RaftkvError;
      retry: boolean;
      rotate: boolean;
      /** Retry only on an endpoint not tried yet in this call (a certificate problem repeats). */
      untriedOnly?: boolean;
      /** The request cannot have been applied (never sent, or a definite refusal). */
      notApplied?: boolean;
    };

/** What a call went through so far: for the error of a call cut short by the client's signal. */
interface CallProgress {
  lastError: RaftkvError | undefined;
  /** An attempt is on the wire. */
  inFlight: boolean;
  /** An attempt failed in a way that leaves its outcome unknown (timeout, reset, 504). */
  ambiguous: boolean;
}

function newProgress(): CallProgress {
  return { lastError: undefined, inFlight: false, ambiguous: false };
}

/** For a write cut short: could any attempt have been applied? undefined for a read. */
function writeOutcome(spec: CallSpec, p: CallProgress): 'not applied' | 'unknown' | undefined {
  if (spec.method === 'GET') return undefined;
  return p.inFlight || p.ambiguous ? 'unknown' : 'not applied';
}

/**
 * A call's own signal that aborts when `a` or `b` does, with its reason;
 * dispose() removes the listeners, so a long-lived `b` (the client's signal)
 * keeps nothing of a finished call (AbortSignal.any would tie each attempt's
 * composite signal to it).
 */
function linkSignals(
  a: AbortSignal | undefined,
  b: AbortSignal,
): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const fromA = () => controller.abort(a?.reason);
  const fromB = () => controller.abort(b.reason);
  if (a?.aborted) fromA();
  else if (b.aborted) fromB();
  else {
    a?.addEventListener('abort', fromA, { once: true });
    b.addEventListener('abort', fromB, { once: true });
  }
  return {
    signal: controller.signal,
    dispose() {
      a?.removeEventListener('abort', fromA);
      b.removeEventListener('abort', fromB);
    },
  };
}

/**
 * Endpoints, one keep-alive undici Pool each, and the retry/failover loop.
 * The endpoint that last answered is preferred by later calls.
 */
export class Transport {
  readonly endpoints: readonly string[];
  /** Where Authorization headers come from; undefined sends none. Set once, by the Client. */
  credentials: Credentials | undefined;
  private readonly pools = new Map<string, { pool: Pool; base: string }>();
  private preferred = 0;
  private closed = false;

  constructor(readonly options: TransportOptions) {
    if (options.endpoints.length === 0)
      throw new RaftkvError('invalid_request', 'at least one endpoint is needed');
    const scheme = options.tls ? 'https' : 'http';
    this.endpoints = [...new Set(options.endpoints.map((e) => normalizeEndpoint(e, scheme)))];
    if (options.tls) {
      checkTlsOptions(options.tls);
      const plain = this.endpoints.find((e) => e.startsWith('http:'));
      if (plain)
        throw new RaftkvError(
          'invalid_request',
          `endpoint ${plain} is plain HTTP, but TLS options were given: use https://`,
        );
    }
  }

  /**
   * The Authorization header for a request, if the client has credentials
   * (fetching or renewing a token first when needed).
   */
  async authorization(): Promise<string | undefined> {
    return this.credentials?.header();
  }

  /**
   * After a 401 `unauthenticated` answer to a request sent with
   * `authorization`: true when a fresh token is worth one more try (the
   * credentials can fetch one), after forgetting the refused one.
   */
  reauthenticate(error: RaftkvError, authorization: string | undefined): boolean {
    const credentials = this.credentials;
    if (!credentials?.renewable || authorization === undefined) return false;
    if (error.status !== 401 || error.code !== 'unauthenticated') return false;
    credentials.invalidate(authorization);
    return true;
  }

  /** The endpoint the next call starts with. */
  get current(): string {
    return this.endpoints[this.preferred]!;
  }

  /** Moves the preference on after `endpoint` failed (used by watches). */
  rotateFrom(endpoint: string): string {
    const i = this.endpoints.indexOf(endpoint);
    if (i >= 0 && i === this.preferred) this.preferred = (i + 1) % this.endpoints.length;
    return this.current;
  }

  markGood(endpoint: string): void {
    const i = this.endpoints.indexOf(endpoint);
    if (i >= 0) this.preferred = i;
  }

  pool(endpoint: string): { pool: Pool; base: string } {
    if (this.closed) throw new RaftkvError('unavailable', 'the client is closed');
    let entry = this.pools.get(endpoint);
    if (!entry) {
      const url = new URL(endpoint);
      const tls = this.options.tls;
      entry = {
        pool: new Pool(url.origin, {
          connect: {
            timeout: this.options.timeoutMs,
            ...(url.protocol === 'https:' && tls
              ? {
                  ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
                  ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
                  ...(tls.key !== undefined ? { key: tls.key } : {}),
                  ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
                }
              : {}),
          },
          keepAliveTimeout: 4_000,
        }),
        base: url.pathname.replace(/\/+$/, ''),
      };
      this.pools.set(endpoint, entry);
    }
    return entry;
  }

  backoff(retry: number): number {
    const { backoffMs, backoffMaxMs } = this.options;
    const ms = Math.min(backoffMaxMs, backoffMs * 2 ** Math.min(retry, 20));
    return Math.round(ms * (0.5 + Math.random() / 2));
  }

  /**
   * Sends one logical call, retrying and failing over as described in the
   * client docs. With credentials, a 401 `unauthenticated` is answered once
   * per call by fetching a fresh token and sending again (not counted as a
   * retry); a second 401 is thrown as UnauthenticatedError.
   */
  async call<T>(spec: CallSpec): Promise<CallResult<T>> {
    const cutoff = this.options.signal;
    if (cutoff === undefined) return this.callWith<T>(spec, spec.signal, newProgress());
    const linked = linkSignals(spec.signal, cutoff);
    const progress = newProgress();
    try {
      return await this.callWith<T>(spec, linked.signal, progress);
    } catch (err) {
      if (err === cutoff.reason && !spec.signal?.aborted)
        throw this.cutShort(err, progress.lastError, writeOutcome(spec, progress));
      throw err;
    } finally {
      linked.dispose();
    }
  }

  /**
   * The error a call (or watch) cut short by the client's `signal` rejects
   * with: the signal's reason as is, or, when that is a RaftkvError (kvctl's
   * deadline), the same code with what the last failed attempt said and, for
   * a write, whether it may have been applied.
   */
  cutShort(
    reason: unknown,
    lastError: RaftkvError | undefined,
    write?: 'not applied' | 'unknown',
  ): unknown {
    if (!(reason instanceof RaftkvError)) return reason;
    const last = lastError ? `; last attempt: ${lastError.code}: ${lastError.message}` : '';
    const outcome =
      write === 'not applied'
        ? ' (the write was not applied)'
        : write === 'unknown'
          ? ' (the write may or may not have been applied)'
          : '';
    return new RaftkvError(reason.code, `${reason.message}${last}${outcome}`, {
      status: reason.status,
      ...(lastError?.endpoint !== undefined ? { endpoint: lastError.endpoint } : {}),
      cause: lastError ?? reason,
    });
  }

  private async callWith<T>(
    spec: CallSpec,
    signal: AbortSignal | undefined,
    progress: CallProgress,
  ): Promise<CallResult<T>> {
    const scheme = this.options.tls ? 'https' : 'http';
    const pinned =
      spec.endpoint !== undefined ? normalizeEndpoint(spec.endpoint, scheme) : undefined;
    const order = pinned ? [pinned] : this.endpoints;
    const maxRetries = pinned ? Math.min(1, this.options.retries) : this.options.retries;
    let index = pinned ? 0 : this.preferred;
    const tried = new Set<number>();
    let waited = 0;
    let reauthenticated = false;
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal);
      tried.add(index);
      const endpoint = order[index]!;
      const authorization = spec.anonymous ? undefined : await this.authorization();
      throwIfAborted(signal);
      progress.inFlight = true;
      const outcome = await this.attempt<T>(endpoint, spec, signal, authorization);
      progress.inFlight = false;
      if (outcome.ok) {
        if (!pinned) this.preferred = index;
        return outcome.result;
      }
      const { error } = outcome;
      progress.lastError = error;
      if (!outcome.notApplied) progress.ambiguous = true;
      if (!reauthenticated && this.reauthenticate(error, authorization)) {
        // Nothing was applied (401): send again at once with a fresh token, once.
        reauthenticated = true;
        attempt--;
        continue;
      }
      if (error.status === 401 && authorization !== undefined)
        throw this.refused(error, authorization, reauthenticated);
      if (!outcome.retry || attempt >= maxRetries) throw error;
      if (outcome.rotate) index = (index + 1) % order.length;
      if (outcome.untriedOnly && tried.has(index)) throw error;
      // A fresh endpoint is tried at once; an endpoint tried before waits (backoff or Retry-After).
      if (!outcome.rotate || tried.has(index)) {
        const fromServer =
          error.retryAfterMs !== undefined
            ? Math.min(error.retryAfterMs, this.options.retryAfterMaxMs)
            : 0;
        await sleepUnlessAborted(Math.max(fromServer, this.backoff(waited++)), signal);
      }
    }
  }

  /** The 401 a call ends with, saying what was tried. */
  private refused(error: RaftkvError, authorization: string, renewed: boolean): RaftkvError {
    const user = this.credentials?.user;
    const how = authorization.startsWith('Basic ')
      ? 'name and password'
      : renewed
        ? 'a freshly fetched token'
        : 'the token given';
    return new UnauthenticatedError(
      `${error.message} (sent ${how}${user !== undefined ? ` of user "${user}"` : ''})`,
      {
        status: error.status,
        body: error.body,
        ...(error.endpoint !== undefined ? { endpoint: error.endpoint } : {}),
        cause: error,
      },
    );
  }

  private async attempt<T>(
    endpoint: string,
    spec: CallSpec,
    callSignal: AbortSignal | undefined,
    authorization?: string,
  ): Promise<Attempt<T>> {
    const idempotent =
      spec.method === 'GET' || spec.idempotencyKey !== undefined || spec.retrySafe === true;
    const timeoutMs = spec.timeoutMs ?? this.options.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = callSignal ? AbortSignal.any([callSignal, timeout]) : timeout;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (spec.body !== undefined) headers['content-type'] = 'application/json';
    if (spec.idempotencyKey !== undefined) headers['idempotency-key'] = spec.idempotencyKey;
    if (authorization !== undefined) headers.authorization = authorization;
    try {
      const { pool, base } = this.pool(endpoint);
      const res = await pool.request({
        method: spec.method,
        path: base + spec.path,
        headers,
        body: spec.body === undefined ? null : JSON.stringify(spec.body),
        signal,
        idempotent,
        ...(spec.timeoutMs !== undefined
          ? { headersTimeout: timeoutMs, bodyTimeout: timeoutMs }
          : {}),
      });
      if (spec.binary && res.statusCode >= 200 && res.statusCode < 300) {
        const bytes = spec.onBinaryProgress
          ? await readCounting(res.body, res.headers['content-length'], spec.onBinaryProgress)
          : new Uint8Array(await res.body.arrayBuffer());
        return { ok: true, result: { status: res.statusCode, body: bytes as T, endpoint } };
      }
      const text = await res.body.text();
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = text;
      }
      const { statusCode: status } = res;
      if ((status >= 200 && status < 300) || spec.accept?.includes(status))
        return { ok: true, result: { status, body: body as T, endpoint } };
      const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      const error = RaftkvError.fromResponse(status, body, endpoint, retryAfterMs);
      // 503 and 429: not applied, safe to retry. 504: outcome unknown, safe only when idempotent.
      if (status === 503) return { ok: false, error, retry: true, rotate: true, notApplied: true };
      if (status === 429)
        return {
          ok: false,
          error,
          retry: spec.retryThrottled !== false,
          rotate: false,
          notApplied: true,
        };
      if (status === 504) return { ok: false, error, retry: idempotent, rotate: true };
      return { ok: false, error, retry: false, rotate: false, notApplied: true };
    } catch (err) {
      throwIfAborted(callSignal);
      if (err instanceof RaftkvError) return { ok: false, error: err, retry: false, rotate: false };
      const code = (err as { code?: string }).code ?? '';
      if (code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED' || this.closed) {
        const error = new RaftkvError('unavailable', 'the client is closed', { cause: err });
        return { ok: false, error, retry: false, rotate: false };
      }
      // A connection never made cannot have delivered the request: always safe to retry.
      const notSent = NOT_SENT.has(code);
      const tlsFailure = describeTlsFailure(err, endpoint, this.options.tls);
      if (tlsFailure?.definite)
        return {
          ok: false,
          error: tlsFailure.error,
          retry: true,
          rotate: true,
          untriedOnly: true,
          notApplied: true,
        };
      if (tlsFailure)
        return {
          ok: false,
          error: tlsFailure.error,
          retry: notSent || idempotent,
          rotate: true,
          notApplied: notSent,
        };
      const timedOut = timeout.aborted;
      const error = timedOut
        ? new RaftkvError('timeout', `no answer from ${endpoint} within ${timeoutMs} ms`, {
            endpoint,
            cause: err,
          })
        : new RaftkvError(
            'unavailable',
            `${endpoint}: ${(err as Error).message || code || 'connection failed'}`,
            { endpoint, cause: err },
          );
      return { ok: false, error, retry: notSent || idempotent, rotate: true, notApplied: notSent };
    }
  }

  /** Closes every pool; in-flight requests finish first unless `force`. */
  async close(force = false): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()].map((e) => e.pool);
    this.pools.clear();
    await Promise.all(pools.map((p) => (force ? p.destroy() : p.close()).catch(() => {})));
  }

  newKey(): string {
    return newIdempotencyKey();
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
}

async function sleepUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0) return;
  try {
    await sleep(ms, undefined, signal ? { signal } : {});
  } catch {
    throwIfAborted(signal);
  }
}

/** A body read chunk by chunk, telling `onProgress` the running count. */
async function readCounting(
  body: AsyncIterable<Uint8Array>,
  contentLength: string | string[] | undefined,
  onProgress: (receivedBytes: number, totalBytes: number | undefined) => void,
): Promise<Uint8Array> {
  const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
  const total = Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined;
  const chunks: Uint8Array[] = [];
  let received = 0;
  onProgress(0, total);
  for await (const chunk of body) {
    chunks.push(chunk);
    received += chunk.length;
    onProgress(received, total);
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}
