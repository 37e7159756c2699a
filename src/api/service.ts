import type { AuthRole, AuthUser, Permission } from '../kv/auth.js';
import type { Compare, TxnOp } from '../kv/commands.js';
import type { KvErrorCode } from '../kv/errors.js';
import type { KeyValue, RevisionChange } from '../kv/mvcc/key-value.js';
import type {
  AuthDeleteResult,
  AuthEnabledResult,
  AuthRolePutResult,
  AuthUserPutResult,
  DeleteResult,
  ErrorResult,
  PutResult,
  TxnResult,
} from '../kv/results.js';
import type { AuthStateView, Principal } from '../server/auth.js';
import type { MemberChange } from '../server/membership.js';

/**
 * The narrow interface the HTTP layer consumes (rqlite style): the server
 * implements it, tests can fake it. Errors are thrown as ServerError (codes
 * in src/server/errors.ts) or returned as KV ErrorResults.
 */
export interface ApiService {
  readonly requestTimeoutMs: number;
  /** A signal that aborts after requestTimeoutMs (cheaper than a timer per request). */
  requestDeadline(): AbortSignal;

  put(req: PutRequest, opts: WriteOptions): Promise<PutResult | ErrorResult>;
  delete(req: DeleteRequest, opts: WriteOptions): Promise<DeleteResult | ErrorResult>;
  txn(req: TxnRequest, opts: WriteOptions): Promise<TxnResult | ErrorResult>;
  compact(
    revision: number,
    opts: WriteOptions,
  ): Promise<{ ok: true; revision: number; compactRevision: number } | ErrorResult>;

  /** POST /v1/sync: a no-op through the log (raftkv 0.2.0; refused below that cluster version). */
  sync(opts: WriteOptions): Promise<{ ok: true; revision: number } | ErrorResult>;

  get(
    key: string,
    opts: ReadOptions,
  ): Promise<{ kv: KeyValue | null; revision: number } | ErrorResult>;
  range(
    req: RangeRequest,
    opts: ReadOptions,
  ): Promise<{ kvs: KeyValue[]; more: boolean; revision: number } | ErrorResult>;

  /** Streams changes; the server guarantees no gap and no duplicate. */
  watch(req: WatchRequest, sink: WatchSink): Promise<WatchHandle>;

  leaseGrant(
    req: { ttl: number; id?: string },
    opts: WriteOptions,
  ): Promise<{ ok: true; id: string; ttl: number } | ErrorResult>;
  leaseKeepAlive(
    id: string,
    opts: WriteOptions,
  ): Promise<{ ok: true; id: string; ttl: number } | ErrorResult>;
  leaseRevoke(
    id: string,
    opts: WriteOptions,
  ): Promise<{ ok: true; revoked: true; deleted: number } | ErrorResult>;
  /** undefined when there is no such lease. */
  leaseInfo(id: string, signal?: AbortSignal): Promise<LeaseView | undefined>;
  leaseList(signal?: AbortSignal): Promise<Omit<LeaseView, 'keys'>[]>;

  /** Waits in line (bounded by timeoutMs) until first; lock_timeout gives up the place in line. */
  lockAcquire(
    name: string,
    lease: string,
    timeoutMs: number,
    requester?: Pick<WriteOptions, 'user' | 'anonymous'>,
  ): Promise<
    | { ok: true; name: string; key: string; fencingToken: number }
    | { ok: false; code: 'lock_timeout' | 'lease_not_found'; message: string }
  >;
  lockRelease(
    name: string,
    key: string,
    opts: WriteOptions,
  ): Promise<{ ok: true; revision: number } | { ok: false; code: KvErrorCode; message: string }>;

  campaign(
    name: string,
    lease: string,
    value: string,
    timeoutMs: number,
    requester?: Pick<WriteOptions, 'user' | 'anonymous'>,
  ): Promise<
    | { ok: true; leader: ElectionLeader }
    | { ok: false; code: 'lock_timeout' | 'lease_not_found'; message: string }
  >;
  electionLeader(name: string, signal?: AbortSignal): Promise<ElectionLeader | undefined>;
  proclaim(
    name: string,
    key: string,
    value: string,
    opts: WriteOptions,
  ): Promise<
    { ok: true; leader: ElectionLeader } | { ok: false; code: KvErrorCode; message: string }
  >;
  resign(
    name: string,
    key: string,
    opts: WriteOptions,
  ): Promise<{ ok: true; revision: number } | { ok: false; code: KvErrorCode; message: string }>;

  status(): Promise<StatusView>;
  /** GET /v1/alarms: the active alarms, after a linearizable read barrier. */
  alarms(signal: AbortSignal): Promise<{ alarms: AlarmView[]; revision: number }>;
  /** POST /v1/alarms/disarm: clears nospace alarms (of one member, or all); returns those cleared. */
  disarmAlarms(
    memberId: string | undefined,
    opts: WriteOptions,
  ): Promise<
    { ok: true; disarmed: AlarmView[]; alarms: AlarmView[]; revision: number } | ErrorResult
  >;
  /**
   * The members and the leader, after a read barrier unless `serializable`
   * (this member's own view, which answers without a leader, and may lag).
   */
  members(opts?: Pick<ReadOptions, 'consistency' | 'signal'>): Promise<MembersView>;
  /** A backup of the state machine after a linearizable read barrier (GET /v1/snapshot). */
  backup(
    signal: AbortSignal,
  ): Promise<{ header: { revision: number; appliedIndex: number }; bytes: Uint8Array }>;
  /** One membership change, answered once applied: the member, or `{ removed: id }`. */
  changeMembers(
    change: MemberChange,
    signal: AbortSignal,
  ): Promise<MemberView | { removed: string }>;
  /** Hands leadership to `to` (or the most caught-up voter); resolves once it moved. */
  transferLeader(
    to: string | undefined,
    signal: AbortSignal,
  ): Promise<{ leader: string; term: number }>;
  /** 200 when the node has a leader and its applied index is caught up. */
  health(): Promise<{ healthy: boolean; reason?: string }>;
  /** GET /readyz: leader known, caught up, not removed, not stopping. */
  readiness(): { ready: boolean; reason?: string };
  /** GET /livez: the process and its Raft loop run (whatever the quorum). */
  liveness(): { live: boolean; reason?: string; detail?: string };
  /** Why this member knows it was removed from the cluster (it then serves nothing), or undefined. */
  removed(): string | undefined;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Counts one answered request: its route pattern ('unmatched' when none) and duration. */
  observeRequest?(method: string, route: string, status: number, seconds: number): void;
  /**
   * Latency accounting of one answered write (timedWriteOptionsOf): its stamps, how long
   * the request took and when its response went out (performance.now() ms).
   */
  observeWrite?(stamps: WriteOptions, totalMs: number, respondedMs: number): void;

  // ---- security (API.md "Security: TLS, authentication, permissions")

  /** The store revision this node has applied. */
  currentRevision(): number;
  /** This node's applied users, roles and enabled flag (read locally, never asked of another member). */
  readonly authState: AuthStateView;
  /** Who sent a request; throws AuthError (401, 429) for missing or bad credentials. */
  authenticate(
    authorization: string | undefined,
    certificateName: string | undefined,
  ): Promise<Principal>;
  /** Calls `listener` after users, roles or the enabled flag change; returns the unsubscribe function. */
  onAuthChange(listener: () => void): () => void;
  /** The user who granted lease `id`, null if granted while auth was off, undefined if no such lease. */
  leaseOwner(id: string, signal?: AbortSignal): Promise<string | null | undefined>;
  authStatus(): Promise<{ enabled: boolean }>;
  /** Users and roles after a linearizable read barrier. */
  authRead(signal?: AbortSignal): Promise<{
    user(name: string): AuthUser | undefined;
    role(name: string): AuthRole | undefined;
    allUsers(): AuthUser[];
    allRoles(): AuthRole[];
  }>;
  userPut(
    name: string,
    change: { password?: string; roles?: string[] },
    opts: WriteOptions,
  ): Promise<AuthUserPutResult | ErrorResult>;
  userDelete(name: string, opts: WriteOptions): Promise<AuthDeleteResult | ErrorResult>;
  rolePut(
    name: string,
    permissions: Permission[],
    opts: WriteOptions,
  ): Promise<AuthRolePutResult | ErrorResult>;
  roleDelete(name: string, opts: WriteOptions): Promise<AuthDeleteResult | ErrorResult>;
  authEnable(opts: WriteOptions): Promise<AuthEnabledResult | ErrorResult>;
  authDisable(opts: WriteOptions): Promise<AuthEnabledResult | ErrorResult>;
  /** POST /v1/auth/token: throws AuthError (401 wrong name or password, 429 throttled). */
  issueToken(name: string, password: string): Promise<{ token: string; ttl: number }>;
}

export interface WriteOptions {
  idempotencyKey?: string;
  /** What the request was (route and body), so a reused Idempotency-Key is recognised as another write. */
  requestDigest?: string;
  /** The authenticated user making the write; absent while auth is off. */
  user?: string;
  /** Admitted without credentials (auth was off here): refused if auth is on when it applies. */
  anonymous?: true;
  signal?: AbortSignal;
  /**
   * Latency accounting, stamped by the server (performance.now() ms): when the command
   * was proposed (or forwarded to the leader) and applied (or answered by it). Only
   * requests that set both to NaN are stamped (timedWriteOptionsOf).
   */
  proposedMs?: number;
  appliedMs?: number;
}

export interface ReadOptions {
  consistency: 'linearizable' | 'serializable';
  revision?: number;
  minRevision?: number;
  signal?: AbortSignal;
}

export interface PutRequest {
  key: string;
  value: string;
  lease?: string;
  prevRevision?: number;
  prevValue?: string;
}

export interface DeleteRequest {
  key: string;
  prefix: boolean;
  prevRevision?: number;
}

export interface TxnRequest {
  compare: Compare[];
  success: TxnOp[];
  failure: TxnOp[];
}

export interface RangeRequest {
  prefix: string;
  after?: string;
  limit?: number;
  keysOnly: boolean;
  revision?: number;
}

export interface WatchRequest {
  key: string;
  prefix: boolean;
  /** First revision to deliver; undefined = current revision + 1. */
  fromRevision?: number;
  prevKv: boolean;
}

export interface WatchSink {
  change(change: RevisionChange): void;
  progress(revision: number): void;
  compacted(compactRevision: number): void;
  /** The server ended the stream (slow consumer, shutdown); the client may resume with Last-Event-ID. */
  closed(reason: string, revision: number): void;
  /** Bytes buffered towards the client: the server drops watchers that fall too far behind. */
  bufferedBytes(): number;
}

export interface WatchHandle {
  cancel(): void;
}

export interface StatusView {
  id: string;
  name: string;
  role: 'leader' | 'follower' | 'candidate' | 'learner';
  leader: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  revision: number;
  compactRevision: number;
  members: number;
  dbSizeBytes: number;
  /** This member's raftkv version. */
  version: string;
  /** The lowest of the members' versions: what the cluster may use (an addition to API.md). */
  clusterVersion: string;
  /** The replicated state's estimated heap size, which the space quota compares (an addition). */
  stateSizeBytes: number;
  /** This member's space quota (--quota-bytes, or its default from the heap; an addition). */
  quotaBytes: number;
  /** The active alarms, cluster-wide (an addition to API.md). */
  alarms: AlarmView[];
  /** V8's heap in use and its limit in this process (additions to API.md). */
  heapUsedBytes: number;
  heapLimitBytes: number;
}

/** An active alarm: `nospace` is raised by a member whose state outgrew its space quota. */
export interface AlarmView {
  memberId: string;
  alarm: 'nospace';
}

export interface MemberView {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  /** The version the member published; null until it has (an addition to API.md). */
  version: string | null;
  role: 'voter' | 'learner';
}

export interface MembersView {
  leader: string | null;
  members: MemberView[];
}

export interface LeaseView {
  id: string;
  /** Who granted it (absent: granted while auth was off). Not part of API.md's body. */
  owner?: string;
  ttl: number;
  /** Seconds left on the leader's clock, rounded up. */
  remaining: number;
  keys: string[];
}

export interface ElectionLeader {
  key: string;
  value: string;
  /** The revision at which the leader joined (its key's createRevision). */
  revision: number;
}
