import { AuthApi, requestToken } from './auth-api.js';
import { type ClientAuth, Credentials } from './credentials.js';
import { RaftkvError } from './errors.js';
import { keepLeaseAlive } from './keepalive.js';
import { encodeKey, queryString } from './paths.js';
import type { ClientTlsOptions } from './tls.js';
import { type CallSpec, Transport } from './transport.js';
import type {
  AlarmsResponse,
  CampaignOptions,
  CompactResponse,
  Consistency,
  DeleteOptions,
  DeleteResponse,
  DisarmResponse,
  ElectionLeader,
  EndpointOptions,
  GetResponse,
  GrantLeaseOptions,
  HealthResponse,
  KeepLeaseAliveOptions,
  KeyValue,
  LeaderChange,
  LeaderResponse,
  LeaseGrantResponse,
  LeaseInfo,
  LeaseKeepAliveResponse,
  LeaseKeeper,
  LeaseRevokeResponse,
  LeaseSummary,
  LeasesResponse,
  ListOptions,
  ListResponse,
  Lock,
  LockOptions,
  Member,
  MembersResponse,
  MoveLeaderResponse,
  ObserveOptions,
  PutOptions,
  PutResponse,
  ReadOptions,
  RegistryEntry,
  RegistryListResponse,
  RegistryWatchOptions,
  RegistryWatchResponse,
  ResignResponse,
  SnapshotOptions,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  UnlockResponse,
  UnregisterOptions,
  UnregisterResponse,
  WatchOptions,
  WatchResponse,
  WriteOptions,
} from './types.js';
import { type StreamItem, type StreamSource, WatchStream } from './watch.js';

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
  /**
   * TLS for https:// endpoints: `ca` to verify the servers by, `cert` and
   * `key` for servers that require a client certificate (PEM strings or
   * Buffers; `tlsFromFiles()` reads them from files). With `tls`, an endpoint
   * written without a scheme is https, and an http:// one is refused.
   */
  tls?: ClientTlsOptions;
  /**
   * Credentials once the cluster has authentication enabled: `{name,
   * password}` (tokens fetched and renewed by the client), `{name, password,
   * basic: true}` or `{token}`. See ClientAuth.
   */
  auth?: ClientAuth;
  /**
   * Aborts everything this client does, now and later: every call (all of its
   * attempts, backoffs and failovers) and every watch connection. A call it
   * cuts short rejects with the signal's reason; when that reason is a
   * RaftkvError (say, `new RaftkvError('timeout', 'deadline reached')`), with a
   * RaftkvError of the same code whose message adds what the last failed
   * attempt said and, for a write, whether it may have been applied. A watch
   * it ends throws likewise instead of finishing quietly. kvctl builds its
   * --command-timeout on this.
   */
  signal?: AbortSignal;
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
  /** Users, roles, enable/disable/status, tokens (API.md "Security"). */
  readonly auth: AuthApi;
  private readonly watches = new Set<{ close(): void }>();
  private readonly watchIdleTimeoutMs: number;

  constructor(options: ClientOptions) {
    this.transport = new Transport({
      endpoints: options.endpoints,
      timeoutMs: positive(options.timeoutMs, 10_000, 'timeoutMs'),
      retries: nonNegative(options.retries, 6, 'retries'),
      backoffMs: nonNegative(options.backoffMs, 50, 'backoffMs'),
      backoffMaxMs: nonNegative(options.backoffMaxMs, 1_000, 'backoffMaxMs'),
      retryAfterMaxMs: nonNegative(options.retryAfterMaxMs, 2_000, 'retryAfterMaxMs'),
      tls: options.tls,
      signal: options.signal,
    });
    const transport = this.transport;
    if (options.auth !== undefined)
      transport.credentials = new Credentials(options.auth, (name, password) =>
        requestToken(transport, name, password),
      );
    this.auth = new AuthApi(transport);
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

  /**
   * A barrier through the Raft log (POST /v1/sync, raftkv 0.2.0): resolves with
   * a revision that includes every write acknowledged before the call. Throws
   * RaftkvError `cluster_version_too_old` while a member runs an older raftkv.
   */
  async sync(options: WriteOptions = {}): Promise<{ revision: number }> {
    return this.write<{ revision: number }>('POST', '/v1/sync', {}, options);
  }

  /** The active alarms (GET /v1/alarms; root's when auth is on). */
  async alarms(options: { signal?: AbortSignal } = {}): Promise<AlarmsResponse> {
    return this.read<AlarmsResponse>('/v1/alarms', options, {});
  }

  /**
   * Clears the nospace alarms, of `memberId` or of every member (POST
   * /v1/alarms/disarm). A member still over its quota raises its alarm again.
   */
  async disarmAlarms(options: WriteOptions & { memberId?: string } = {}): Promise<DisarmResponse> {
    const body = options.memberId === undefined ? {} : { memberId: options.memberId };
    return this.write<DisarmResponse>('POST', '/v1/alarms/disarm', body, options);
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
    return this.stream<WatchResponse>(options, undefined, key);
  }

  /** A WatchStream over `source` (default: the KV watch of `key`), ended by close(). */
  private stream<T extends StreamItem>(
    options: WatchOptions,
    source?: StreamSource,
    key = '',
  ): WatchStream<T> {
    const n = this.transport.endpoints.length;
    const w: WatchStream<T> = new WatchStream<T>(
      this.transport,
      key,
      options,
      {
        timeoutMs: this.transport.options.timeoutMs,
        idleTimeoutMs: this.watchIdleTimeoutMs,
        maxFailures: Math.max(1, this.transport.options.retries) * n,
      },
      (done) => this.watches.delete(done),
      source,
    );
    this.watches.add(w);
    return w;
  }

  /** Per-attempt timeout of a call that waits server-side for up to `waitMs`. */
  private waitTimeout(waitMs: number | undefined): number {
    return (waitMs ?? 0) + this.transport.options.timeoutMs;
  }

  // ------------------------------------------------------------------ leases

  /** A new lease of `ttlSeconds` (the server may raise it to its minimum): `{id, ttl}`. */
  async grantLease(
    ttlSeconds: number,
    options: GrantLeaseOptions = {},
  ): Promise<LeaseGrantResponse> {
    const body: Record<string, unknown> = { ttl: ttlSeconds };
    if (options.id !== undefined) body.id = options.id;
    return this.write<LeaseGrantResponse>('POST', '/v1/leases', body, options);
  }

  /** Restarts the lease's TTL. Throws RaftkvError `lease_not_found` once it expired or was revoked. */
  async keepAlive(id: string, options: WriteOptions = {}): Promise<LeaseKeepAliveResponse> {
    return this.write<LeaseKeepAliveResponse>(
      'POST',
      `/v1/leases/${encodeKey(id)}/keepalive`,
      undefined,
      options,
    );
  }

  /** Revokes the lease; its keys (and registry entries, locks, candidacies) go with it in one revision. */
  async revokeLease(id: string, options: WriteOptions = {}): Promise<LeaseRevokeResponse> {
    return this.write<LeaseRevokeResponse>(
      'DELETE',
      `/v1/leases/${encodeKey(id)}`,
      undefined,
      options,
    );
  }

  /** The lease's TTL, remaining seconds and attached keys. Throws `lease_not_found`. */
  async lease(id: string, options: { signal?: AbortSignal } = {}): Promise<LeaseInfo> {
    return this.read<LeaseInfo>(`/v1/leases/${encodeKey(id)}`, options, {});
  }

  /** Every live lease. */
  async leases(options: { signal?: AbortSignal } = {}): Promise<LeaseSummary[]> {
    return (await this.read<LeasesResponse>('/v1/leases', options, {})).leases;
  }

  /**
   * Keeps lease `id` alive: renews at once, then about every ttl/3, retrying
   * failed renewals until the TTL has passed since the last acknowledged
   * one. When a renewal answers `lease_not_found`, or the TTL passes without
   * one, the lease is lost: `onLost` is called and `lost` resolves at once
   * (`lease_not_found` or `lease_expired`), and renewing stops. stop() ends
   * renewing without revoking. Its timers are unref'd.
   *
   *   const { id } = await client.grantLease(10);
   *   const keeper = client.keepLeaseAlive(id, { ttlSeconds: 10, onLost: (e) => … });
   *   …
   *   await keeper.stop(); await client.revokeLease(id);
   */
  keepLeaseAlive(id: string, options: KeepLeaseAliveOptions): LeaseKeeper {
    return keepLeaseAlive(this.transport, id, options);
  }

  // ------------------------------------------------------------------ registry

  /**
   * Registers `name` for `lease` (201), or updates its value if `lease`
   * already owns it (200). Throws RaftkvError `name_taken`, with the holder's
   * Entry as `entry`, when another lease owns it.
   */
  async register(
    name: string,
    value: string,
    lease: string,
    options: WriteOptions = {},
  ): Promise<RegistryEntry> {
    return this.write<RegistryEntry>(
      'PUT',
      `/v1/registry/${encodeKey(name)}`,
      { value, lease },
      options,
    );
  }

  /** The entry of `name`. Throws `key_not_found` when nobody holds it. */
  async lookup(name: string, options: { signal?: AbortSignal } = {}): Promise<RegistryEntry> {
    return this.read<RegistryEntry>(`/v1/registry/${encodeKey(name)}`, options, {});
  }

  /** Every entry whose name starts with `prefix`, at one revision. */
  async registry(
    prefix = '',
    options: { signal?: AbortSignal } = {},
  ): Promise<RegistryListResponse> {
    return this.read<RegistryListResponse>('/v1/registry', options, {
      prefix: prefix || undefined,
    });
  }

  /**
   * Removes `name`; with `lease`, only if that lease owns it (else
   * `compare_failed` with the holder's `entry`). Throws `key_not_found` when
   * nobody holds it.
   */
  async unregister(name: string, options: UnregisterOptions = {}): Promise<UnregisterResponse> {
    const path = `/v1/registry/${encodeKey(name)}${queryString({ lease: options.lease })}`;
    return this.write<UnregisterResponse>('DELETE', path, undefined, options);
  }

  /**
   * Changes to registry names under `prefix`, as an async iterator of
   * `{revision, events: [{type, entry}]}`, with the same no-gap,
   * no-duplicate guarantee across reconnections as watch().
   */
  watchRegistry(
    prefix = '',
    options: RegistryWatchOptions = {},
  ): WatchStream<RegistryWatchResponse> {
    const transport = this.transport;
    const source: StreamSource = {
      path: '/v1/registry',
      query: (first, cursor) => ({
        prefix: prefix || undefined,
        watch: true,
        fromRevision: first ? cursor + 1 : undefined,
      }),
      start: async (signal) => {
        const from = options.fromRevision;
        if (from !== undefined) {
          if (!Number.isSafeInteger(from) || from < 1)
            throw new RaftkvError('invalid_request', 'fromRevision must be an integer ≥ 1');
          return from - 1;
        }
        const res = await transport.call<RegistryListResponse>({
          method: 'GET',
          path: `/v1/registry${queryString({ prefix: prefix || undefined })}`,
          signal,
        });
        return res.body.revision;
      },
    };
    return this.stream<RegistryWatchResponse>(
      {
        progress: options.progress === true,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onOpen ? { onOpen: options.onOpen } : {}),
      },
      source,
    );
  }

  // ------------------------------------------------------------------ locks

  /**
   * Waits in line for lock `name`, owned by `lease`, for at most `timeoutMs`
   * (default: the server's request timeout): `{name, key, fencingToken}`.
   * Throws RaftkvError `lock_timeout` when not acquired in time (the place in
   * line is given up). Revoking the lease releases the lock.
   */
  async lock(name: string, options: LockOptions): Promise<Lock> {
    const body: Record<string, unknown> = { lease: options.lease };
    if (options.timeoutMs !== undefined) body.timeoutMs = options.timeoutMs;
    const res = await this.transport.call<Lock>({
      method: 'POST',
      path: `/v1/locks/${encodeKey(name)}`,
      body,
      signal: options.signal,
      timeoutMs: this.waitTimeout(options.timeoutMs),
    });
    return res.body;
  }

  /** Releases the lock held with holder key `key` (from lock()). */
  async unlock(name: string, key: string, options: WriteOptions = {}): Promise<UnlockResponse> {
    const path = `/v1/locks/${encodeKey(name)}${queryString({ key })}`;
    return this.write<UnlockResponse>('DELETE', path, undefined, options);
  }

  /**
   * A txn that runs its success branch only while lock `lock` is still held
   * with fencing token `token`: `{lock, token}` is prepended to its compares.
   */
  async fencedTxn(
    lock: string,
    token: number,
    txn: TxnRequest,
    options: WriteOptions = {},
  ): Promise<TxnResponse> {
    return this.txn({ ...txn, compare: [{ lock, token }, ...(txn.compare ?? [])] }, options);
  }

  // ------------------------------------------------------------------ elections

  /**
   * Campaigns in election `name` with `value`, owned by `lease`; resolves
   * with `{leader}` (this candidate) once elected. Throws `lock_timeout` (or
   * `timeout`) when not elected within `timeoutMs`.
   */
  async campaign(name: string, options: CampaignOptions): Promise<LeaderResponse> {
    const body: Record<string, unknown> = { lease: options.lease, value: options.value };
    if (options.timeoutMs !== undefined) body.timeoutMs = options.timeoutMs;
    const res = await this.transport.call<LeaderResponse>({
      method: 'POST',
      path: `/v1/elections/${encodeKey(name)}/campaign`,
      body,
      signal: options.signal,
      timeoutMs: this.waitTimeout(options.timeoutMs),
    });
    return res.body;
  }

  /** The current leader. Throws RaftkvError `no_leader_elected`. */
  async leader(name: string, options: { signal?: AbortSignal } = {}): Promise<ElectionLeader> {
    return (await this.read<LeaderResponse>(`/v1/elections/${encodeKey(name)}`, options, {}))
      .leader;
  }

  /** The leader (holding `key`) announces a new value without losing leadership. */
  async proclaim(
    name: string,
    key: string,
    value: string,
    options: WriteOptions = {},
  ): Promise<LeaderResponse> {
    return this.write<LeaderResponse>(
      'POST',
      `/v1/elections/${encodeKey(name)}/proclaim`,
      { key, value },
      options,
    );
  }

  /** Gives up leadership (or candidacy) held with `key`. */
  async resign(name: string, key: string, options: WriteOptions = {}): Promise<ResignResponse> {
    const path = `/v1/elections/${encodeKey(name)}/leader${queryString({ key })}`;
    return this.write<ResignResponse>('DELETE', path, undefined, options);
  }

  /**
   * The leader of election `name` now, then each change, as an async
   * iterator of `{revision, leader}` (`leader` null: nobody leads). Survives
   * node failures (reconnects); consecutive duplicates are never yielded.
   */
  async *observe(
    name: string,
    options: ObserveOptions = {},
  ): AsyncGenerator<LeaderChange, void, undefined> {
    const source: StreamSource = {
      path: `/v1/elections/${encodeKey(name)}`,
      query: () => ({ watch: true }),
      start: async () => 0,
    };
    const stream = this.stream<LeaderChange>(
      {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onOpen ? { onOpen: options.onOpen } : {}),
      },
      source,
    );
    let last: string | undefined;
    try {
      for await (const change of stream) {
        const leader = change.leader ?? null;
        const text = JSON.stringify(leader);
        if (text === last) continue;
        last = text;
        yield { revision: change.revision, leader };
      }
    } finally {
      stream.close();
    }
  }

  // ------------------------------------------------------------------ cluster

  /** The status of one node: `endpoint`, or whichever answers first. */
  async status(options: EndpointOptions = {}): Promise<StatusResponse> {
    return this.node<StatusResponse>('/v1/status', options);
  }

  /**
   * The members and the leader: linearizable (an acknowledged membership change
   * shows, whichever node answers), or with `consistency: 'serializable'` the
   * answering node's own view, which it gives without a leader too.
   */
  async members(
    options: EndpointOptions & { consistency?: Consistency } = {},
  ): Promise<MembersResponse> {
    const query = options.consistency ? `?consistency=${options.consistency}` : '';
    return this.node<MembersResponse>(`/v1/cluster/members${query}`, options);
  }

  /**
   * Adds a member (as a learner with `learner: true`, the safe way: promote it
   * once it caught up); start it with `raftkv --join`. Resolves once applied.
   */
  async addMember(
    member: { name: string; peerUrl: string; clientUrl: string; learner?: boolean },
    options: { signal?: AbortSignal } = {},
  ): Promise<Member> {
    const res = await this.transport.call<Member>({
      method: 'POST',
      path: '/v1/cluster/members',
      body: member,
      signal: options.signal,
    });
    return res.body;
  }

  /** Makes a learner a voter. */
  async promoteMember(id: string, options: { signal?: AbortSignal } = {}): Promise<Member> {
    const res = await this.transport.call<Member>({
      method: 'POST',
      path: `/v1/cluster/members/${encodeURIComponent(id)}/promote`,
      signal: options.signal,
    });
    return res.body;
  }

  /** Removes a member from the configuration; stop its process afterwards. */
  async removeMember(
    id: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<{ id: string; removed: true }> {
    const res = await this.transport.call<{ id: string; removed: true }>({
      method: 'DELETE',
      path: `/v1/cluster/members/${encodeURIComponent(id)}`,
      signal: options.signal,
    });
    return res.body;
  }

  /**
   * A backup of the cluster's data as of now (GET /v1/snapshot: every write
   * acknowledged before the call is in it), for `raftkv restore`.
   */
  async snapshot(options: SnapshotOptions = {}): Promise<Uint8Array> {
    const res = await this.transport.call<Uint8Array>({
      method: 'GET',
      path: '/v1/snapshot',
      binary: true,
      onBinaryProgress: options.onProgress,
      signal: options.signal,
      endpoint: options.endpoint,
    });
    return res.body;
  }

  /**
   * Hands leadership to member `to`, or without it to the most caught-up
   * voter; resolves once the new leader is in office. 503 when it did not move
   * in time (the old leader still leads), 504 when no leader was seen yet.
   */
  async moveLeader(
    to?: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<MoveLeaderResponse> {
    const res = await this.transport.call<MoveLeaderResponse>({
      method: 'POST',
      path: '/v1/cluster/leader',
      body: to === undefined ? {} : { to },
      signal: options.signal,
    });
    return res.body;
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
      // Open to all (API.md): no token is fetched just to ask.
      anonymous: true,
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
