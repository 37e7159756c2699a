import { RaftkvError } from './errors.js';
import { encodeKey, queryString } from './paths.js';
import { type CallSpec, Transport } from './transport.js';
import type {
  CompactResponse,
  DeleteOptions,
  DeleteResponse,
  EndpointOptions,
  GetResponse,
  HealthResponse,
  KeyValue,
  ListOptions,
  ListResponse,
  MembersResponse,
  PutOptions,
  PutResponse,
  ReadOptions,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  WatchOptions,
  WriteOptions,
} from './types.js';
import { WatchStream } from './watch.js';

export interface ClientOptions {
  /** Client URLs of the cluster's nodes, e.g. `http://127.0.0.1:7379` (`host:port` is accepted). */
  endpoints: string[];
  /** Per attempt (connect, send, whole response). Default 10 000 ms: above the server's own 5 s request timeout, so its 504 normally arrives first. */
  timeoutMs?: number;
  /** Attempts after the first, across endpoints. Default 6. */
  retries?: number;
  /** Backoff between attempts on an endpoint already tried: starts here, doubles, jittered. Default 50 ms. */
  backoffMs?: number;
  /** Default 1 000 ms. */
  backoffMaxMs?: number;
  /** A server's Retry-After is honoured up to this. Default 2 000 ms. */
  retryAfterMaxMs?: number;
  /** A watch stream with no byte for this long is reconnected (servers send progress at least every 10 s). Default 30 000 ms. */
  watchIdleTimeoutMs?: number;
}

/**
 * A raftkv client over API.md, with one keep-alive undici Pool per endpoint.
 *
 * Failover and retries: a call goes to the endpoint that last answered. On a
 * connection failure, a reset or timeout before the response, a 503
 * (`unavailable`), a 429 (`too_many_requests`, same endpoint) or a 504
 * (`timeout`), it is retried — on the next endpoint at once if that one was
 * not tried yet in this call, otherwise after a backoff or the server's
 * Retry-After (capped) — at most `retries` times. Other errors are thrown at
 * once as RaftkvError.
 *
 * Writes (put, delete, txn, compact) carry an Idempotency-Key header, random
 * per logical call and the same on each of its retries. That is what makes
 * retrying a write whose outcome is unknown (a reset after sending, a client
 * timeout, a 504) safe: the servers apply one key at most once and answer the
 * retry with the first attempt's result. Pass `idempotencyKey` to choose it
 * yourself (e.g. to retry across process restarts). When every retry fails,
 * a `timeout` or status-0 `unavailable` error means the write's outcome is
 * unknown; every other error means it was not applied.
 */
export class Client {
  readonly transport: Transport;
  private readonly watches = new Set<WatchStream>();
  private readonly watchIdleTimeoutMs: number;

  constructor(options: ClientOptions) {
    this.transport = new Transport({
      endpoints: options.endpoints,
      timeoutMs: positive(options.timeoutMs, 10_000, 'timeoutMs'),
      retries: nonNegative(options.retries, 6, 'retries'),
      backoffMs: nonNegative(options.backoffMs, 50, 'backoffMs'),
      backoffMaxMs: nonNegative(options.backoffMaxMs, 1_000, 'backoffMaxMs'),
      retryAfterMaxMs: nonNegative(options.retryAfterMaxMs, 2_000, 'retryAfterMaxMs'),
    });
    this.watchIdleTimeoutMs = positive(options.watchIdleTimeoutMs, 30_000, 'watchIdleTimeoutMs');
  }

  /** The normalised endpoints, in order. */
  get endpoints(): readonly string[] {
    return this.transport.endpoints;
  }

  // ------------------------------------------------------------------ KV

  /** The key's current (or `revision`'s) version. Throws RaftkvError `key_not_found` (with `revision`). */
  async get(key: string, options: ReadOptions = {}): Promise<GetResponse> {
    return this.read<GetResponse>(`/v1/kv/${encodeKey(key)}`, options, {});
  }

  /** Keys in order; `more` says whether `limit` cut the listing (continue with `after`). */
  async list(options: ListOptions = {}): Promise<ListResponse> {
    return this.read<ListResponse>('/v1/kv', options, {
      prefix: options.prefix || undefined,
      limit: options.limit,
      after: options.after,
      keysOnly: options.keysOnly,
    });
  }

  /** Every key under `prefix`, fetched `pageSize` at a time, all at one revision. */
  async *listAll(
    options: Omit<ListOptions, 'after' | 'limit'> & { pageSize?: number } = {},
  ): AsyncGenerator<KeyValue, void, undefined> {
    const { pageSize = 500, ...rest } = options;
    let after: string | undefined;
    let revision = rest.revision;
    for (;;) {
      const page = await this.list({
        ...rest,
        limit: pageSize,
        ...(after !== undefined ? { after } : {}),
        ...(revision !== undefined ? { revision } : {}),
      });
      revision = page.revision;
      yield* page.kvs;
      if (!page.more || page.kvs.length === 0) return;
      after = page.kvs[page.kvs.length - 1]!.key;
    }
  }

  /** Throws RaftkvError `compare_failed` (with the current `kv` and `revision`) when a guard is false. */
  async put(key: string, value: string, options: PutOptions = {}): Promise<PutResponse> {
    const body: Record<string, unknown> = { value };
    if (options.lease !== undefined) body.lease = options.lease;
    if (options.prevRevision !== undefined) body.prevRevision = options.prevRevision;
    if (options.prevValue !== undefined) body.prevValue = options.prevValue;
    return this.write<PutResponse>('PUT', `/v1/kv/${encodeKey(key)}`, body, options);
  }

  /** Deletes `key`, or every key starting with it when `prefix`. */
  async delete(key: string, options: DeleteOptions = {}): Promise<DeleteResponse> {
    const path = `/v1/kv/${encodeKey(key)}${queryString({
      prefix: options.prefix,
      prevRevision: options.prevRevision,
    })}`;
    return this.write<DeleteResponse>('DELETE', path, undefined, options);
  }

  /** Atomic compare/then/else. A false compare is `succeeded: false`, not an error. */
  async txn(request: TxnRequest, options: WriteOptions = {}): Promise<TxnResponse> {
    const body = {
      compare: request.compare ?? [],
      success: request.success ?? [],
      failure: request.failure ?? [],
    };
    return this.write<TxnResponse>('POST', '/v1/txn', body, options);
  }

  /** Drops history before `revision`. */
  async compact(revision: number, options: WriteOptions = {}): Promise<CompactResponse> {
    return this.write<CompactResponse>('POST', '/v1/compact', { revision }, options);
  }

  // ------------------------------------------------------------------ watch

  /**
   * Changes to `key` (or every key under it with `prefix`) from
   * `fromRevision` on, as an async iterator; see WatchStream for the
   * no-gap/no-duplicate guarantee across reconnections.
   *
   *   for await (const { revision, events } of client.watch('app/', { prefix: true })) …
   */
  watch(key: string, options: WatchOptions = {}): WatchStream {
    const n = this.transport.endpoints.length;
    const w = new WatchStream(
      this.transport,
      key,
      options,
      {
        timeoutMs: this.transport.options.timeoutMs,
        idleTimeoutMs: this.watchIdleTimeoutMs,
        maxFailures: Math.max(1, this.transport.options.retries) * n,
      },
      (done) => this.watches.delete(done),
    );
    this.watches.add(w);
    return w;
  }

  // ------------------------------------------------------------------ cluster

  /** The status of one node: `endpoint`, or whichever answers first. */
  async status(options: EndpointOptions = {}): Promise<StatusResponse> {
    return this.node<StatusResponse>('/v1/status', options);
  }

  async members(options: EndpointOptions = {}): Promise<MembersResponse> {
    return this.node<MembersResponse>('/v1/cluster/members', options);
  }

  /**
   * One node's health (`endpoint`, or whichever answers first): an unhealthy
   * node's 503 is an answer here, not an error. Throws only when no node
   * answers.
   */
  async health(options: EndpointOptions = {}): Promise<HealthResponse> {
    const res = await this.transport.call<{ status?: string; reason?: string } | undefined>({
      method: 'GET',
      path: '/health',
      accept: [503],
      signal: options.signal,
      endpoint: options.endpoint,
    });
    const status = typeof res.body?.status === 'string' ? res.body.status : 'unknown';
    return {
      healthy: res.status === 200,
      status,
      ...(typeof res.body?.reason === 'string' ? { reason: res.body.reason } : {}),
    };
  }

  /** Ends every watch and closes the connections (after in-flight calls finish). */
  async close(): Promise<void> {
    for (const w of [...this.watches]) w.close();
    this.watches.clear();
    await this.transport.close();
  }

  // ------------------------------------------------------------------ internals

  private async read<T>(
    path: string,
    options: ReadOptions,
    extra: Record<string, string | number | boolean | undefined>,
  ): Promise<T> {
    const query = queryString({
      ...extra,
      revision: options.revision,
      consistency: options.consistency,
      minRevision: options.minRevision,
    });
    const res = await this.transport.call<T>({
      method: 'GET',
      path: path + query,
      signal: options.signal,
    });
    return res.body;
  }

  private async write<T>(
    method: CallSpec['method'],
    path: string,
    body: unknown,
    options: WriteOptions,
  ): Promise<T> {
    const res = await this.transport.call<T>({
      method,
      path,
      body,
      idempotencyKey: options.idempotencyKey ?? this.transport.newKey(),
      signal: options.signal,
    });
    return res.body;
  }

  private async node<T>(path: string, options: EndpointOptions): Promise<T> {
    const res = await this.transport.call<T>({
      method: 'GET',
      path,
      signal: options.signal,
      endpoint: options.endpoint,
    });
    return res.body;
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0)
    throw new RaftkvError('invalid_request', `${name} must be a positive number`);
  return value;
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0)
    throw new RaftkvError('invalid_request', `${name} must be a non-negative number`);
  return value;
}
