import { randomBytes } from 'node:crypto';
import { getHeapStatistics } from 'node:v8';
import type { Permission } from '../kv/auth.js';
import type { AlarmCommand, Command, Compare, TxnOp } from '../kv/commands.js';
import type {
  AlarmResult,
  AuthDeleteResult,
  AuthEnabledResult,
  AuthRolePutResult,
  AuthUserPutResult,
  CompactResult,
  DeleteResult,
  ErrorResult,
  LeaseGrantResult,
  LeaseKeepAliveResult,
  LeaseRevokeResult,
  PutResult,
  SyncResult,
  TxnResult,
} from '../kv/results.js';
import {
  AuthError,
  Authenticator,
  type AuthStateView,
  hashPassword,
  newSigningKey,
} from './auth.js';
import { ServerError } from './errors.js';
import { electionPrefix, KeyQueue, lockPrefix, type Requester } from './locks.js';
import type { MemberChange } from './membership.js';
import type { RaftKvNode, WriteContext } from './node.js';
import type { WatchParams, WatchSink } from './watches.js';

type WriteOpts = WriteContext;
type ReadOpts = {
  consistency: 'linearizable' | 'serializable';
  revision?: number;
  minRevision?: number;
  signal?: AbortSignal;
};

/**
 * The service the HTTP API consumes (it matches src/api's ApiService
 * structurally; the server does not import the API layer). Translates API
 * requests into commands and reads on a RaftKvNode.
 */
export class KvService {
  private readonly queue: KeyQueue;
  /** Verifies credentials against the replicated users and signing key, on this node alone. */
  readonly authenticator: Authenticator;

  constructor(readonly node: RaftKvNode) {
    this.queue = new KeyQueue(node);
    this.authenticator = new Authenticator(() => this.node.store.auth, {
      tokenTtlSeconds: node.config.authTokenTtlSeconds ?? 300,
    });
  }

  /** This node's applied auth state (serializable: a lagging member may be behind by a few entries). */
  get authState(): AuthStateView {
    return this.node.store.auth;
  }

  /**
   * Credentials that do not verify against this member's state are tried once
   * more after a linearizable barrier: a user (or password) just created through
   * another member may not have been applied here yet.
   */
  async authenticate(authorization: string | undefined, certificateName: string | undefined) {
    return this.retryAfterCatchingUp(() =>
      this.authenticator.authenticate(authorization, certificateName),
    );
  }

  /**
   * Credentials that do not verify against this member's state are tried once
   * more after a linearizable barrier, if that barrier brought auth changes: a
   * user (or password) just created through another member may not have been
   * applied here yet.
   */
  private async retryAfterCatchingUp<T>(attempt: () => Promise<T>): Promise<T> {
    // Read before the attempt: it awaits a scrypt, during which the change may arrive.
    const before = this.node.store.auth.revision;
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof AuthError) || err.code !== 'unauthenticated') throw err;
      await this.node.readBarrier({ consistency: 'linearizable', signal: this.requestDeadline() });
      if (this.node.store.auth.revision === before) throw err;
      return attempt();
    }
  }

  currentRevision(): number {
    return this.node.store.revision;
  }

  onAuthChange(listener: () => void): () => void {
    return this.node.onAuthChange(listener);
  }

  get requestTimeoutMs(): number {
    return this.node.requestTimeoutMs;
  }

  requestDeadline(): AbortSignal {
    return this.node.deadlines.after(this.node.requestTimeoutMs);
  }

  private async command<T>(cmd: Command, opts: WriteOpts, op: string): Promise<T | ErrorResult> {
    const result = await this.node.write(cmd, opts);
    if (!result.ok) return result;
    // The only way to get another command's result is an Idempotency-Key reused for a
    // different kind of write: the dedup table answered with the first write's result and
    // applied nothing, so this is a definite "not applied" (400), not an unknown outcome.
    if (result.op !== op)
      throw new ServerError(
        'invalid_request',
        `Idempotency-Key was already used for a different request (a ${result.op}, not a ${op}); nothing was applied`,
      );
    return result as T;
  }

  put(
    req: { key: string; value: string; lease?: string; prevRevision?: number; prevValue?: string },
    opts: WriteOpts,
  ) {
    return this.command<PutResult>({ type: 'put', ...req }, opts, 'put');
  }

  delete(req: { key: string; prefix: boolean; prevRevision?: number }, opts: WriteOpts) {
    return this.command<DeleteResult>({ type: 'delete', ...req }, opts, 'delete');
  }

  txn(req: { compare: Compare[]; success: TxnOp[]; failure: TxnOp[] }, opts: WriteOpts) {
    return this.command<TxnResult>({ type: 'txn', ...req }, opts, 'txn');
  }

  sync(opts: WriteOpts) {
    return this.command<SyncResult>({ type: 'sync' }, opts, 'sync');
  }

  compact(revision: number, opts: WriteOpts) {
    return this.command<CompactResult>({ type: 'compact', revision }, opts, 'compact');
  }

  async get(key: string, opts: ReadOpts) {
    await this.node.readBarrier(opts);
    return this.node.store.get(
      key,
      opts.revision !== undefined ? { revision: opts.revision } : undefined,
    );
  }

  async range(
    req: { prefix: string; after?: string; limit?: number; keysOnly: boolean; revision?: number },
    opts: ReadOpts,
  ) {
    await this.node.readBarrier(opts);
    const store = this.node.store;
    let query = req;
    if (req.prefix === '') {
      // Keys of the registry, locks and elections (U+0000…) sort first: start the listing after them.
      const reserved = store.range({
        prefix: '\u0000',
        keysOnly: true,
        ...(req.revision ? { revision: req.revision } : {}),
      });
      const lastReserved = reserved.ok ? reserved.kvs[reserved.kvs.length - 1]?.key : undefined;
      if (lastReserved !== undefined && (req.after === undefined || req.after < lastReserved)) {
        query = { ...req, after: lastReserved };
      }
    }
    const r = store.range(query);
    if (!r.ok) return r;
    return { kvs: [...r.kvs], more: r.more, revision: r.revision };
  }

  async watch(req: WatchParams, sink: WatchSink) {
    return this.node.watch(req, sink);
  }

  async status() {
    const heap = getHeapStatistics();
    return {
      ...(await this.node.status()),
      // The space quota (additions to API.md): the state's estimated size, the quota, the
      // active alarms, and the heap the state lives in.
      stateSizeBytes: this.node.store.sizeBytes,
      quotaBytes: this.node.quota.quotaBytes,
      alarms: this.node.store.alarms(),
      heapUsedBytes: heap.used_heap_size,
      heapLimitBytes: heap.heap_size_limit,
    };
  }

  async alarms(signal: AbortSignal) {
    await this.node.readBarrier({ consistency: 'linearizable', signal });
    return { alarms: this.node.store.alarms(), revision: this.node.store.revision };
  }

  async disarmAlarms(memberId: string | undefined, opts: WriteOpts) {
    const cmd: AlarmCommand = {
      type: 'alarm',
      action: 'clear',
      alarm: 'nospace',
      ...(memberId === undefined ? {} : { memberId }),
    };
    const result = await this.command<AlarmResult>(cmd, opts, 'alarm');
    if (!result.ok) return result;
    return {
      ok: true as const,
      disarmed: [...result.changed],
      alarms: [...result.alarms],
      revision: result.revision,
    };
  }

  async members(opts: Pick<ReadOpts, 'consistency' | 'signal'> = { consistency: 'linearizable' }) {
    // Linearizable by default, like every read: a member removed (or added) by an
    // acknowledged change is gone from (or in) the list whichever member answers.
    await this.node.readBarrier(opts);
    return this.node.membersView();
  }

  async health() {
    return this.node.health();
  }

  readiness() {
    return this.node.readiness();
  }

  liveness() {
    return this.node.liveness();
  }

  removed() {
    return this.node.removed;
  }

  changeMembers(change: MemberChange, signal: AbortSignal) {
    return this.node.changeMembers(change, signal);
  }

  backup(signal: AbortSignal) {
    return this.node.backup(signal);
  }

  transferLeader(to: string | undefined, signal: AbortSignal) {
    return this.node.transferLeader(to, signal);
  }

  metrics() {
    return this.node.metrics.text();
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.node.metrics.httpRequests.observe({ method, route, status }, seconds);
  }

  observeWrite(stamps: WriteOpts, totalMs: number, respondedMs: number): void {
    this.node.metrics.writes.responded(stamps, totalMs, respondedMs);
  }

  // ---- leases (API.md "Leases"): TTLs in seconds on the wire, ms inside.

  async leaseGrant(req: { ttl: number; id?: string }, opts: WriteOpts) {
    const ttlSeconds = Math.max(req.ttl, this.node.minLeaseTtlSeconds);
    const id = req.id ?? randomLeaseId();
    const result = await this.command<LeaseGrantResult>(
      {
        type: 'leaseGrant',
        id,
        ttlMs: ttlSeconds * 1000,
        ...(opts.user !== undefined ? { owner: opts.user } : {}),
      },
      opts,
      'leaseGrant',
    );
    if (!result.ok) return result;
    return { ok: true as const, id: result.id, ttl: Math.round(result.ttlMs / 1000) };
  }

  async leaseKeepAlive(id: string, opts: WriteOpts) {
    const result = await this.command<LeaseKeepAliveResult>(
      { type: 'leaseKeepAlive', id },
      opts,
      'leaseKeepAlive',
    );
    if (!result.ok) return result;
    return { ok: true as const, id: result.id, ttl: Math.round(result.ttlMs / 1000) };
  }

  async leaseRevoke(id: string, opts: WriteOpts) {
    const result = await this.command<LeaseRevokeResult>(
      { type: 'leaseRevoke', id },
      opts,
      'leaseRevoke',
    );
    if (!result.ok) return result;
    return {
      ok: true as const,
      revoked: true as const,
      deleted: result.deleted,
      revision: result.revision,
    };
  }

  async leaseInfo(id: string, signal?: AbortSignal) {
    const [lease] = await this.node.leaseViews(id, signal);
    return lease;
  }

  async leaseList(signal?: AbortSignal) {
    const leases = await this.node.leaseViews(undefined, signal);
    return leases.map(({ id, owner, ttl, remaining }) => ({
      id,
      ...(owner !== undefined ? { owner } : {}),
      ttl,
      remaining,
    }));
  }

  /**
   * Who granted lease `id`: the user, null for a lease granted while auth was off,
   * or undefined when no such lease exists (after a linearizable barrier, so a
   * lease just granted elsewhere is seen).
   */
  async leaseOwner(id: string, signal?: AbortSignal): Promise<string | null | undefined> {
    let lease = this.node.store.lease(id);
    if (lease === undefined) {
      await this.node.readBarrier({ consistency: 'linearizable', ...(signal ? { signal } : {}) });
      lease = this.node.store.lease(id);
    }
    if (lease === undefined) return undefined;
    return lease.owner ?? null;
  }

  // ---- auth (API.md "Security"): the API lets only root call the changes.

  async authStatus() {
    return { enabled: this.node.store.auth.enabled };
  }

  async userPut(
    name: string,
    change: { password?: string; roles?: string[] },
    opts: WriteOpts,
  ): Promise<AuthUserPutResult | ErrorResult> {
    // Hashed here, once: the log and every replica only ever see the salted hash.
    const passwordHash =
      change.password === undefined ? undefined : await hashPassword(change.password);
    return this.command<AuthUserPutResult>(
      {
        type: 'authUserPut',
        name,
        ...(passwordHash !== undefined ? { passwordHash } : {}),
        ...(change.roles !== undefined ? { roles: change.roles } : {}),
      },
      opts,
      'authUserPut',
    );
  }

  async userDelete(name: string, opts: WriteOpts) {
    return this.command<AuthDeleteResult>({ type: 'authUserDelete', name }, opts, 'authUserDelete');
  }

  async rolePut(name: string, permissions: Permission[], opts: WriteOpts) {
    return this.command<AuthRolePutResult>(
      { type: 'authRolePut', name, permissions },
      opts,
      'authRolePut',
    );
  }

  async roleDelete(name: string, opts: WriteOpts) {
    return this.command<AuthDeleteResult>({ type: 'authRoleDelete', name }, opts, 'authRoleDelete');
  }

  async authEnable(opts: WriteOpts) {
    return this.command<AuthEnabledResult>(
      { type: 'authEnable', signingKey: newSigningKey() },
      opts,
      'authEnable',
    );
  }

  async authDisable(opts: WriteOpts) {
    return this.command<AuthEnabledResult>({ type: 'authDisable' }, opts, 'authDisable');
  }

  /** Users and roles after a linearizable barrier: what every acknowledged change left. */
  async authRead(signal?: AbortSignal) {
    await this.node.readBarrier({ consistency: 'linearizable', ...(signal ? { signal } : {}) });
    return this.node.store.auth;
  }

  async issueToken(name: string, password: string) {
    return this.retryAfterCatchingUp(() => this.authenticator.issueToken(name, password));
  }

  // ---- locks (API.md "Locks and elections")

  async lockAcquire(name: string, lease: string, timeoutMs: number, requester?: Requester) {
    const result = await this.queue.waitFirst(lockPrefix(name), lease, '', timeoutMs, requester);
    if (!result.ok) return result;
    return { ok: true as const, name, key: result.key, fencingToken: result.kv.createRevision };
  }

  async lockRelease(name: string, key: string, opts: WriteOpts) {
    if (!key.startsWith(lockPrefix(name))) {
      return {
        ok: false as const,
        code: 'invalid_request' as const,
        message: `key is not a waiter of lock "${name}"`,
      };
    }
    const result = await this.command<DeleteResult>({ type: 'delete', key }, opts, 'delete');
    if (!result.ok) return result;
    if (result.deleted === 0)
      return {
        ok: false as const,
        code: 'key_not_found' as const,
        message: 'no such holder or waiter',
      };
    return { ok: true as const, revision: result.revision };
  }

  // ---- elections (API.md "Locks and elections"): the lowest createRevision under the name leads.

  async campaign(
    name: string,
    lease: string,
    value: string,
    timeoutMs: number,
    requester?: Requester,
  ) {
    const result = await this.queue.waitFirst(
      electionPrefix(name),
      lease,
      value,
      timeoutMs,
      requester,
    );
    if (!result.ok) return result;
    return { ok: true as const, leader: leaderView(result.kv) };
  }

  async electionLeader(name: string, signal?: AbortSignal) {
    const first = await this.queue.first(electionPrefix(name), signal);
    return first ? leaderView(first) : undefined;
  }

  /** The leader updates its value; refused unless `key` is still the leader. */
  async proclaim(name: string, key: string, value: string, opts: WriteOpts) {
    const first = await this.queue.first(electionPrefix(name), opts.signal);
    if (!first || first.key !== key) {
      return {
        ok: false as const,
        code: 'compare_failed' as const,
        message: `${key} is not the leader of "${name}"`,
      };
    }
    const result = await this.command<TxnResult>(
      {
        type: 'txn',
        // Still the same candidacy (not resigned and re-joined) and still first: nobody older exists by construction.
        compare: [{ key, target: 'createRevision', op: '==', value: first.createRevision }],
        success: [{ op: 'put', key, value, ...(first.lease ? { lease: first.lease } : {}) }],
        failure: [],
      },
      opts,
      'txn',
    );
    if (!result.ok) return result;
    if (!result.succeeded)
      return {
        ok: false as const,
        code: 'compare_failed' as const,
        message: 'the leadership was lost',
      };
    const put = result.results[0] as { op: 'put'; kv: import('../kv/mvcc/key-value.js').KeyValue };
    return { ok: true as const, leader: leaderView(put.kv) };
  }

  async resign(name: string, key: string, opts: WriteOpts) {
    if (!key.startsWith(electionPrefix(name))) {
      return {
        ok: false as const,
        code: 'invalid_request' as const,
        message: `key is not a candidate of "${name}"`,
      };
    }
    const result = await this.command<DeleteResult>({ type: 'delete', key }, opts, 'delete');
    if (!result.ok) return result;
    if (result.deleted === 0)
      return { ok: false as const, code: 'key_not_found' as const, message: 'no such candidate' };
    return { ok: true as const, revision: result.revision };
  }
}

/** Server-chosen lease ids: 16 hex digits, unguessable enough that clients cannot collide by accident. */
function randomLeaseId(): string {
  return randomBytes(8).toString('hex');
}

/** An election's leader as API.md shows it: its key, value and the revision it joined at. */
function leaderView(kv: { key: string; value: string; createRevision: number }) {
  return { key: kv.key, value: kv.value, revision: kv.createRevision };
}
