import { assert } from '../errors.js';
import { utf8Decode } from '../text.js';
import type { StoredVersion, Version } from './stored-version.js';

/**
 * The value of a `k/<revision>/<sub>` record. The revision and sub live in the
 * record key; modRevision is the revision, so it is not repeated.
 *   put:    {"key","value","createRevision","version","lease"}
 *   delete: {"key","deleted":true}
 */
export function encodeVersionRecord(version: StoredVersion): string {
  if (version.kind === 'delete') return JSON.stringify({ key: version.key, deleted: true });
  const { key, value, createRevision, version: keyVersion, lease } = version.kv;
  return JSON.stringify({ key, value, createRevision, version: keyVersion, lease });
}

/** encodeVersionRecord of an in-memory Version: the same bytes, without building a StoredVersion. */
export function encodeVersion(key: string, version: Version): string {
  if (version.value === null) return JSON.stringify({ key, deleted: true });
  const { value, createRevision, version: keyVersion, lease } = version;
  return JSON.stringify({ key, value, createRevision, version: keyVersion, lease });
}

/** Throws KvInvariantError on a corrupt record: persisted state is trusted, so this is not a user error. */
export function decodeVersionRecord(
  revision: number,
  sub: number,
  bytes: Uint8Array,
): StoredVersion {
  const record = JSON.parse(utf8Decode(bytes)) as Record<string, unknown>;
  const key = record.key;
  assert(typeof key === 'string', `version record ${revision}/${sub}: key`);
  if (record.deleted === true) return { kind: 'delete', revision, sub, key };
  const { value, createRevision, version, lease } = record;
  assert(
    typeof value === 'string' &&
      typeof createRevision === 'number' &&
      typeof version === 'number' &&
      (lease === null || typeof lease === 'string'),
    `version record ${revision}/${sub}: malformed`,
  );
  return {
    kind: 'put',
    revision,
    sub,
    kv: { key, value, createRevision, modRevision: revision, version, lease },
  };
}
