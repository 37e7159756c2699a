import type { AlarmType } from './alarms.js';
import type { Permission } from './auth.js';
import { utf8Encode } from './text.js';

/**
 * The commands the server proposes to Raft, one JSON envelope per entry
 * (UTF-8). The envelope is versioned so that a newer node can keep reading
 * entries written by an older one. Everything here is plain data.
 */
export interface CommandEnvelope {
  readonly v: 1;
  /** The proposer's wall clock (ms since the epoch): the only source of time in src/kv. */
  readonly atMs: number;
  /** API.md's Idempotency-Key (1–128 printable ASCII): a retry gets the first result. */
  readonly idempotencyKey?: string;
  /**
   * What the request was (a digest of its route and body, made by the API): a
   * reused Idempotency-Key with another digest is refused, never answered with
   * the first request's result.
   */
  readonly requestDigest?: string;
  /** The authenticated user who made the request; absent for anonymous requests and the system. */
  readonly user?: string;
  /**
   * A client's request admitted without credentials because auth was off on
   * the member that took it. Refused if auth is on when it applies (that member
   * may not have applied the enable yet); the system's own proposals carry neither field.
   */
  readonly anonymous?: true;
  readonly cmd: Command;
}

export type Command =
  | PutCommand
  | DeleteCommand
  | TxnCommand
  | CompactCommand
  | LeaseGrantCommand
  | LeaseRevokeCommand
  | LeaseKeepAliveCommand
  | LeaseCheckpointCommand
  | SyncCommand
  | AlarmCommand
  | AuthCommand;

/** Changes of the auth state (API.md "Security"); the API lets only root propose them. */
export type AuthCommand =
  | AuthUserPutCommand
  | AuthUserDeleteCommand
  | AuthRolePutCommand
  | AuthRoleDeleteCommand
  | AuthEnableCommand
  | AuthDisableCommand;

/** Creates or updates a user; fields left out keep their value. Roles must exist. */
export interface AuthUserPutCommand {
  readonly type: 'authUserPut';
  readonly name: string;
  /** The server's salted slow hash; null removes the password (certificate-only user). */
  readonly passwordHash?: string | null;
  readonly roles?: readonly string[];
}

export interface AuthUserDeleteCommand {
  readonly type: 'authUserDelete';
  readonly name: string;
}

export interface AuthRolePutCommand {
  readonly type: 'authRolePut';
  readonly name: string;
  readonly permissions: readonly Permission[];
}

export interface AuthRoleDeleteCommand {
  readonly type: 'authRoleDelete';
  readonly name: string;
}

/** Needs a user root holding the role root. The proposer picks a fresh token-signing key. */
export interface AuthEnableCommand {
  readonly type: 'authEnable';
  readonly signingKey: string;
}

export interface AuthDisableCommand {
  readonly type: 'authDisable';
}

/** `PUT /v1/kv/{key}`. Both guards must hold when both are given. */
export interface PutCommand {
  readonly type: 'put';
  readonly key: string;
  readonly value: string;
  /** Attaches the key to this lease (which must exist); absent detaches it from any lease. */
  readonly lease?: string;
  /** CAS on modRevision; 0 = the key must not exist. */
  readonly prevRevision?: number;
  /** CAS on the value; false if the key does not exist. */
  readonly prevValue?: string;
}

/** `DELETE /v1/kv/{key}`. prevRevision (0 = must not exist) only without prefix. */
export interface DeleteCommand {
  readonly type: 'delete';
  /** With prefix, '' deletes every key. */
  readonly key: string;
  readonly prefix?: boolean;
  readonly prevRevision?: number;
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision' | 'lease';
export type CompareOp = '==' | '!=' | '<' | '>';

/**
 * A missing key compares as version/createRevision/modRevision 0, value null,
 * lease null. value and lease compare as strings (code point order); number
 * targets compare numbers. `<` and `>` against null are false.
 */
export interface KeyCompare {
  readonly key: string;
  readonly target: CompareTarget;
  readonly op: CompareOp;
  readonly value: string | number | null;
}

/** API.md's fenced write: true only while lock `lock` is held with fencing token `token`. */
export interface FenceCompare {
  readonly lock: string;
  readonly token: number;
}

export type Compare = KeyCompare | FenceCompare;

export type TxnOp =
  | { readonly op: 'put'; readonly key: string; readonly value: string; readonly lease?: string }
  | { readonly op: 'get'; readonly key: string; readonly prefix?: boolean }
  | { readonly op: 'delete'; readonly key: string; readonly prefix?: boolean };

/**
 * `POST /v1/txn`. Compares see the state before the txn; ops run in order and
 * see the txn's earlier ops (as in etcd); all writes land in one revision. A
 * branch may not write a key twice (two puts, or a put and a delete covering
 * it): like etcd, that is invalid_request. Overlapping deletes are fine.
 */
export interface TxnCommand {
  readonly type: 'txn';
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
}

/** `POST /v1/compact`: history before `revision` is dropped. */
export interface CompactCommand {
  readonly type: 'compact';
  readonly revision: number;
}

/** The server picks the id (API.md: the client may); granting an existing id is invalid_request. */
export interface LeaseGrantCommand {
  readonly type: 'leaseGrant';
  readonly id: string;
  readonly ttlMs: number;
  /** The user who granted it: only they (or root) may use it while auth is enabled. */
  readonly owner?: string;
}

/** Deletes the lease and all its keys in one revision. Proposed by a client or by the leader on expiry. */
export interface LeaseRevokeCommand {
  readonly type: 'leaseRevoke';
  readonly id: string;
  /**
   * An expiry decided by the leader: revoke only if the lease's last renewal
   * (LeaseState.renewedAtIndex) is still the one that expiry was computed
   * from. A keepalive ordered before this entry in the log then wins
   * (compare_failed).
   */
  readonly ifRenewedAtIndex?: number;
  /**
   * The same condition by the renewal's time, as builds before
   * `ifRenewedAtIndex` wrote it: still honoured when their log entries are
   * replayed, never proposed (two renewals can share a time).
   */
  readonly ifRenewedAtMs?: number;
}

/** Restarts the TTL: records lastRenewedAtMs and renewedAtIndex and clears any checkpoint. */
export interface LeaseKeepAliveCommand {
  readonly type: 'leaseKeepAlive';
  readonly id: string;
}

/**
 * The leader's record of how much TTL each lease had left, so that a new
 * leader does not hand out a full TTL again after every election (etcd's lease
 * checkpointing). State only: when a lease expires is the server's decision.
 */
export interface LeaseCheckpointCommand {
  readonly type: 'leaseCheckpoint';
  /**
   * `renewedAtIndex`: the renewal the remaining TTL was computed from; a later
   * renewal makes the entry void. `renewedAtMs`: the same by time, only in
   * entries written by earlier builds (see LeaseRevokeCommand).
   */
  readonly leases: readonly {
    readonly id: string;
    readonly remainingMs: number;
    readonly renewedAtIndex?: number;
    readonly renewedAtMs?: number;
  }[];
}

/**
 * `POST /v1/sync` (raftkv 0.2.0): a log barrier. Changes nothing; its result's
 * revision is at least that of every write acknowledged before it was proposed.
 */
export interface SyncCommand {
  readonly type: 'sync';
}

/**
 * Raises or clears an alarm (alarms.ts). A member raises `nospace` for itself
 * when its state outgrows its quota and clears it once back under; an
 * operator's disarm clears without memberId (every member's) or one member's.
 */
export interface AlarmCommand {
  readonly type: 'alarm';
  readonly action: 'raise' | 'clear';
  readonly alarm: AlarmType;
  /** Required to raise; absent in a clear means every member's alarm of this type. */
  readonly memberId?: string;
}

export function encodeCommand(envelope: CommandEnvelope): Uint8Array {
  return utf8Encode(JSON.stringify(envelope));
}

export function isFenceCompare(compare: Compare): compare is FenceCompare {
  return 'lock' in compare;
}
