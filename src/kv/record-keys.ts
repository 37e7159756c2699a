import { hex } from './text.js';

/**
 * The persisted layout: every piece of KV state is one record (string key →
 * UTF-8 JSON value), so the server can write an apply batch's changes and the
 * applied index in one atomic LevelDB batch, and load() can rebuild the state.
 *
 *   m/meta                        revision, compactRevision, clock, dedup sequence
 *   k/<revision 16 hex>/<sub 8 hex>  one MVCC version (put or tombstone); the
 *                                    hex makes records sort by (revision, sub)
 *   l/<leaseId>                   one lease
 *   d/<idempotencyKey>            one remembered command result (user-scoped: <user>\0<key>)
 *   a/meta                        auth: enabled flag, auth revision, token-signing key
 *   a/u/<name>                    one user;  a/r/<name>  one role
 *   q/<memberId>/<type>           one active alarm (alarms.ts; q for quota)
 */
export const META_RECORD_KEY = 'm/meta';
export const VERSION_RECORD_PREFIX = 'k/';
export const LEASE_RECORD_PREFIX = 'l/';
export const DEDUP_RECORD_PREFIX = 'd/';
export const AUTH_META_RECORD_KEY = 'a/meta';
export const AUTH_USER_RECORD_PREFIX = 'a/u/';
export const AUTH_ROLE_RECORD_PREFIX = 'a/r/';
export const ALARM_RECORD_PREFIX = 'q/';

export function versionRecordKey(revision: number, sub: number): string {
  return `${VERSION_RECORD_PREFIX}${hex(revision, 16)}/${hex(sub, 8)}`;
}

const VERSION_RECORD_KEY = /^k\/([0-9a-f]{16})\/([0-9a-f]{8})$/;

export function parseVersionRecordKey(key: string): { revision: number; sub: number } | undefined {
  const match = VERSION_RECORD_KEY.exec(key);
  if (match === null) return undefined;
  return { revision: Number.parseInt(match[1]!, 16), sub: Number.parseInt(match[2]!, 16) };
}

export function leaseRecordKey(id: string): string {
  return LEASE_RECORD_PREFIX + id;
}

export function dedupRecordKey(idempotencyKey: string): string {
  return DEDUP_RECORD_PREFIX + idempotencyKey;
}

export function authUserRecordKey(name: string): string {
  return AUTH_USER_RECORD_PREFIX + name;
}

export function authRoleRecordKey(name: string): string {
  return AUTH_ROLE_RECORD_PREFIX + name;
}

export function alarmRecordKey(memberId: string, alarm: string): string {
  return `${ALARM_RECORD_PREFIX}${memberId}/${alarm}`;
}
