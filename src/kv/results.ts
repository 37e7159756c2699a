import type { Alarm } from './alarms.js';
import type { AuthRole } from './auth.js';
import type { KvErrorCode } from './errors.js';
import type { KeyValue, RevisionChange } from './mvcc/key-value.js';

/**
 * What apply() and the reads return. Outcomes are values, never exceptions, so
 * every replica computes the same result. Every result carries `revision`, the
 * store revision right after the command (or at the read), as API.md's bodies do.
 * Results are plain JSON data: the dedup table stores and persists them.
 */

export interface ErrorResult {
  readonly ok: false;
  readonly code: KvErrorCode;
  readonly message: string;
  readonly revision: number;
  /** compare_failed of a put or delete: the key's current version, null if it does not exist. */
  readonly kv?: KeyValue | null;
  /** compacted: the store's compaction point. */
  readonly compactRevision?: number;
}

export interface PutResult {
  readonly ok: true;
  readonly op: 'put';
  readonly revision: number;
  readonly kv: KeyValue;
  readonly prevKv: KeyValue | null;
}

export interface DeleteResult {
  readonly ok: true;
  readonly op: 'delete';
  /** Unchanged when nothing was deleted. */
  readonly revision: number;
  readonly deleted: number;
  readonly prevKvs: readonly KeyValue[];
}

/** A txn op's result, as in API.md's `POST /v1/txn`. */
export type TxnOpResult =
  | { readonly op: 'put'; readonly kv: KeyValue }
  | { readonly op: 'get'; readonly kvs: readonly KeyValue[] }
  | { readonly op: 'delete'; readonly deleted: number };

export interface TxnResult {
  readonly ok: true;
  readonly op: 'txn';
  readonly revision: number;
  /** Whether every compare held, i.e. whether the success branch ran. */
  readonly succeeded: boolean;
  /** Results of the branch that ran, in op order. */
  readonly results: readonly TxnOpResult[];
}

export interface CompactResult {
  readonly ok: true;
  readonly op: 'compact';
  readonly revision: number;
  readonly compactRevision: number;
}

export interface LeaseGrantResult {
  readonly ok: true;
  readonly op: 'leaseGrant';
  readonly revision: number;
  readonly id: string;
  readonly ttlMs: number;
}

export interface LeaseRevokeResult {
  readonly ok: true;
  readonly op: 'leaseRevoke';
  readonly revision: number;
  readonly id: string;
  /** Keys deleted with the lease, all in one revision. */
  readonly deleted: number;
}

export interface LeaseKeepAliveResult {
  readonly ok: true;
  readonly op: 'leaseKeepAlive';
  readonly revision: number;
  readonly id: string;
  readonly ttlMs: number;
}

export interface LeaseCheckpointResult {
  readonly ok: true;
  readonly op: 'leaseCheckpoint';
  readonly revision: number;
  /** Leases updated; unknown ids (revoked meanwhile) are ignored. */
  readonly updated: number;
}

export interface AuthUserPutResult {
  readonly ok: true;
  readonly op: 'authUserPut';
  readonly revision: number;
  readonly created: boolean;
  readonly user: { readonly name: string; readonly roles: readonly string[] };
}

export interface AuthRolePutResult {
  readonly ok: true;
  readonly op: 'authRolePut';
  readonly revision: number;
  readonly created: boolean;
  readonly role: AuthRole;
}

export interface AuthDeleteResult {
  readonly ok: true;
  readonly op: 'authUserDelete' | 'authRoleDelete';
  readonly revision: number;
  readonly name: string;
}

export interface AuthEnabledResult {
  readonly ok: true;
  readonly op: 'authEnable' | 'authDisable';
  readonly revision: number;
  readonly enabled: boolean;
}

export type AuthResult =
  | AuthUserPutResult
  | AuthRolePutResult
  | AuthDeleteResult
  | AuthEnabledResult;

/** An empty Raft entry (a new leader's no-op). */
export interface NoopResult {
  readonly ok: true;
  readonly op: 'noop';
  readonly revision: number;
}

/** A `sync` barrier went through the log: the revision as of its entry. */
export interface SyncResult {
  readonly ok: true;
  readonly op: 'sync';
  readonly revision: number;
}

/** An alarm raised or cleared: what changed, and every alarm active after the command. */
export interface AlarmResult {
  readonly ok: true;
  readonly op: 'alarm';
  readonly revision: number;
  /** The alarms this command raised or cleared (empty: it changed nothing). */
  readonly changed: readonly Alarm[];
  readonly alarms: readonly Alarm[];
}

export type CommandResult =
  | PutResult
  | DeleteResult
  | TxnResult
  | CompactResult
  | LeaseGrantResult
  | LeaseRevokeResult
  | LeaseKeepAliveResult
  | LeaseCheckpointResult
  | NoopResult
  | SyncResult
  | AlarmResult
  | AuthResult
  | ErrorResult;

/** An entry at or below the applied index: already part of the state (replay after a snapshot). */
export interface SkippedResult {
  readonly skipped: true;
}

export type ApplyResult = CommandResult | SkippedResult;

export function isSkipped(result: ApplyResult): result is SkippedResult {
  return 'skipped' in result;
}

export type ReadResult<T> = ({ readonly ok: true; readonly revision: number } & T) | ErrorResult;

export type GetResult = ReadResult<{ readonly kv: KeyValue | null }>;
export type RangeResult = ReadResult<{ readonly kvs: readonly KeyValue[]; readonly more: boolean }>;
export type ChangesResult = ReadResult<{ readonly changes: readonly RevisionChange[] }>;

export function errorResult(
  code: KvErrorCode,
  message: string,
  revision: number,
  extra?: { kv?: KeyValue | null; compactRevision?: number },
): ErrorResult {
  return { ok: false, code, message, revision, ...extra };
}
