import type { RaftkvError } from './errors.js';

/**
 * The wire types of API.md, declared on the client side so that the client
 * depends on the HTTP contract only, never on the server's modules.
 */

/** One version of a key (etcd v3 model). */
export interface KeyValue {
  key: string;
  /** '' when listed with keysOnly. */
  value: string;
  /** Revision of the put that created this generation of the key. */
  createRevision: number;
  /** Revision of the last put (for a delete event: the deleting revision). */
  modRevision: number;
  /** Puts since creation: 1 after creation. */
  version: number;
  /** Lease id, or null. */
  lease: string | null;
}

export type Consistency = 'linearizable' | 'serializable';

export interface ReadOptions {
  /** Read the store as of this revision (history must not be compacted). */
  revision?: number;
  /** Default linearizable; serializable is served from the contacted node's applied state. */
  consistency?: Consistency;
  /** The serving node first waits until it has applied this revision (read-your-writes). */
  minRevision?: number;
  signal?: AbortSignal;
}

export interface GetResponse {
  kv: KeyValue;
  revision: number;
}

export interface ListOptions extends ReadOptions {
  /** Keys starting with this; '' or absent lists every key. */
  prefix?: string;
  limit?: number;
  /** Continue a listing after this key. */
  after?: string;
  keysOnly?: boolean;
}

export interface ListResponse {
  kvs: KeyValue[];
  more: boolean;
  revision: number;
}

export interface WriteOptions {
  /**
   * Sent as the Idempotency-Key header. Default: a fresh random key per
   * logical call, reused by every retry of that call.
   */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

export interface PutOptions extends WriteOptions {
  lease?: string;
  /** Compare-and-swap on modRevision; 0 = the key must not exist. */
  prevRevision?: number;
  /** Compare-and-swap on the value. */
  prevValue?: string;
}

export interface PutResponse {
  revision: number;
  kv: KeyValue;
  prevKv: KeyValue | null;
}

export interface DeleteOptions extends WriteOptions {
  /** Delete every key starting with the given key. */
  prefix?: boolean;
  prevRevision?: number;
}

export interface DeleteResponse {
  deleted: number;
  revision: number;
  prevKvs: KeyValue[];
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision' | 'lease';
export type CompareOp = '==' | '!=' | '<' | '>';

/** A guard on a key (a missing key has version/createRevision/modRevision 0, value and lease null). */
export interface KeyCompare {
  key: string;
  target: CompareTarget;
  op: CompareOp;
  value: string | number | null;
}

/** True only while lock `lock` is held with fencing token `token`. */
export interface FenceCompare {
  lock: string;
  token: number;
}

export type Compare = KeyCompare | FenceCompare;

export type TxnOp =
  | { op: 'put'; key: string; value: string; lease?: string }
  | { op: 'get'; key: string; prefix?: boolean }
  | { op: 'delete'; key: string; prefix?: boolean };

export type TxnOpResult =
  | { op: 'put'; kv: KeyValue }
  | { op: 'get'; kvs: KeyValue[] }
  | { op: 'delete'; deleted: number };

export interface TxnRequest {
  compare?: Compare[];
  success?: TxnOp[];
  failure?: TxnOp[];
}

export interface TxnResponse {
  succeeded: boolean;
  revision: number;
  /** Results of the branch that ran, in order. */
  results: TxnOpResult[];
}

export interface CompactResponse {
  revision: number;
  compactRevision: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
  prevKv?: KeyValue;
}

/**
 * One revision's changes to the watched range, never split. With the
 * `progress` watch option, idle progress notifications are yielded as
 * `{revision, events: [], progress: true}`.
 */
export interface WatchResponse {
  revision: number;
  events: WatchEvent[];
  progress?: true;
}

export interface WatchOptions {
  /** Watch every key starting with `key`. */
  prefix?: boolean;
  /**
   * First revision to deliver (history is replayed first). Default: the
   * revision after a linearizable read made when the watch starts, so no
   * write acknowledged before watch() was called is reported, and none after.
   */
  fromRevision?: number;
  /** Include each event's previous version. */
  prevKv?: boolean;
  /** Also yield progress notifications (as responses with no events). */
  progress?: boolean;
  /** Ends the watch (the iterator finishes without error). */
  signal?: AbortSignal /**
   * Called each time a stream is open (the server accepted it), before any
   * of its events: at the start, and after each reconnection.
   */;
  onOpen?: (endpoint: string) => void;
}

export interface StatusResponse {
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
  /** The lowest raftkv version among the members: what the cluster may use. */
  clusterVersion: string;
  /** The replicated state's estimated heap size, which the space quota compares. */
  stateSizeBytes?: number;
  /** This member's space quota. */
  quotaBytes?: number;
  /** The active alarms, cluster-wide. */
  alarms?: Alarm[];
  /** V8's heap in use and its limit on this member. */
  heapUsedBytes?: number;
  heapLimitBytes?: number;
}

/** An active alarm: `nospace` is raised by a member whose state outgrew its space quota. */
export interface Alarm {
  memberId: string;
  alarm: 'nospace';
}

export interface AlarmsResponse {
  alarms: Alarm[];
  revision: number;
}

export interface DisarmResponse {
  /** The alarms this call cleared. */
  disarmed: Alarm[];
  /** The alarms still active after it. */
  alarms: Alarm[];
  revision: number;
}

export interface Member {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  /** The raftkv version the member published; null until it has. */
  version: string | null;
  role: 'voter' | 'learner';
}

export interface MembersResponse {
  leader: string | null;
  members: Member[];
}

/** POST /v1/cluster/leader: who leads once leadership moved, and in which term. */
export interface MoveLeaderResponse {
  leader: string;
  term: number;
}

export interface HealthResponse {
  /** true when the node answered 200: it has a leader and its applied index is caught up. */
  healthy: boolean;
  /** The body's status: 'ok' or 'unhealthy'. */
  status: string;
  reason?: string;
}

/** Targets one node instead of whichever endpoint answers first. */
export interface EndpointOptions {
  /** One of the client's endpoints, or any other client URL. */
  endpoint?: string;
  signal?: AbortSignal;
}

export interface SnapshotOptions extends EndpointOptions {
  /**
   * Called as the backup arrives: bytes received so far and, when the server
   * said (Content-Length), the total. Starts again from 0 if the call is retried.
   */
  onProgress?: (receivedBytes: number, totalBytes: number | undefined) => void;
}

// ------------------------------------------------------------------ leases

export interface LeaseGrantResponse {
  id: string;
  /** Seconds; may be more than asked (the server's minimum TTL). */
  ttl: number;
}

export type LeaseKeepAliveResponse = LeaseGrantResponse;

export interface LeaseInfo {
  id: string;
  ttl: number;
  /** Seconds left before the lease expires unless kept alive. */
  remaining: number;
  /** Keys attached to the lease. */
  keys: string[];
}

export interface LeaseSummary {
  id: string;
  ttl: number;
  remaining: number;
}

export interface LeasesResponse {
  leases: LeaseSummary[];
}

export interface LeaseRevokeResponse {
  revoked: boolean;
  /** Keys deleted with the lease, in one revision. */
  deleted: number;
}

export interface GrantLeaseOptions extends WriteOptions {
  /** Choose the lease id (1 to 128 of A-Z a-z 0-9 . _ -); default: the server picks one. */
  id?: string;
}

export interface KeepLeaseAliveOptions {
  /** The lease's TTL in seconds: renewals happen every ttl/3, and the lease is lost ttl after its last acknowledged renewal. */
  ttlSeconds: number;
  /** Called once, at once, when the lease is lost (not after stop()). */
  onLost?: (err: RaftkvError) => void;
}

/** A running keep-alive of one lease (see Client.keepLeaseAlive). */
export interface LeaseKeeper {
  /** Resolves with the reason when the lease is lost; stays pending after stop(). Never rejects. */
  readonly lost: Promise<RaftkvError>;
  /** Stops renewing (does not revoke); resolves once no renewal is in flight. */
  stop(): Promise<void>;
}

// ------------------------------------------------------------------ registry

/** API.md's registry Entry. */
export interface RegistryEntry {
  name: string;
  value: string;
  lease: string | null;
  createRevision: number;
  modRevision: number;
}

export interface RegistryListResponse {
  entries: RegistryEntry[];
  revision: number;
}

export interface UnregisterOptions extends WriteOptions {
  /** Only unregister if this lease owns the name (else compare_failed). */
  lease?: string;
}

export interface UnregisterResponse {
  deleted: number;
  revision: number;
}

export interface RegistryEvent {
  type: 'put' | 'delete';
  entry: RegistryEntry;
}

/** One revision's changes to the watched registry names. */
export interface RegistryWatchResponse {
  revision: number;
  events: RegistryEvent[];
  progress?: true;
}

export interface RegistryWatchOptions {
  /** First revision to deliver; default: after a linearizable read made when the watch starts. */
  fromRevision?: number;
  /** Also yield progress notifications (as responses with no events). */
  progress?: boolean;
  signal?: AbortSignal /**
   * Called each time a stream is open (the server accepted it), before any
   * of its events: at the start, and after each reconnection.
   */;
  onOpen?: (endpoint: string) => void;
}

// ------------------------------------------------------------------ locks and elections

export interface LockOptions {
  /** The lease that owns the lock: revoking it (or its expiry) releases the lock. */
  lease: string;
  /** Give up waiting in line after this long (lock_timeout); default: the server's request timeout. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A held lock. */
export interface Lock {
  name: string;
  /** The holder key: pass it to unlock. */
  key: string;
  /** Strictly increasing from one holder to the next (the key's createRevision). */
  fencingToken: number;
}

export interface UnlockResponse {
  released: boolean;
  revision: number;
}

export interface ElectionLeader {
  key: string;
  value: string;
  revision: number;
}

export interface CampaignOptions {
  lease: string;
  value: string;
  /** Give up after this long; default: the server's request timeout. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface LeaderResponse {
  leader: ElectionLeader;
}

export interface ResignResponse {
  resigned: boolean;
  revision: number;
}

/** A change of an election's leader (null: nobody leads). */
export interface LeaderChange {
  revision: number;
  leader: ElectionLeader | null;
}

export interface ObserveOptions {
  signal?: AbortSignal /**
   * Called each time a stream is open (the server accepted it), before any
   * of its events: at the start, and after each reconnection.
   */;
  onOpen?: (endpoint: string) => void;
}

// ------------------------------------------------------------------ security (API.md "Security")

/** What a permission covers. */
export type PermissionResource = 'kv' | 'registry' | 'locks' | 'elections';
export type PermissionAccess = 'read' | 'write' | 'readwrite';

/** Keys (or names) of `resource` that start with `prefix` (`''`: all of them). */
export interface Permission {
  resource: PermissionResource;
  prefix: string;
  access: PermissionAccess;
}

export interface User {
  name: string;
  roles: string[];
}

export interface Role {
  name: string;
  permissions: Permission[];
}

/** PUT /v1/auth/users/{name} or /v1/auth/roles/{name}: `created` is true for 201 (new), false for 200. */
export type Created<T> = T & { created: boolean };

export interface PutUserOptions extends WriteOptions {
  /** Left out: an existing user keeps its password; a new one has none (certificate-only). */
  password?: string;
  /** Left out: an existing user keeps its roles; a new one has none. */
  roles?: string[];
}

export interface AuthStatus {
  enabled: boolean;
}

/**
 * The result of a read-modify-write grant or revoke: the user or role as
 * written, and whether anything had to change (false: it was already so, and
 * nothing was written).
 */
export interface AuthChange<T> {
  changed: boolean;
  value: T;
}
