import type { KeyValue } from './key-value.js';

/**
 * One entry of the MVCC history as persisted and snapshotted: a put (the full
 * KeyValue) or a delete (a tombstone). Identified by (revision, sub): sub
 * orders the changes inside one revision (a txn or a prefix delete changes
 * several keys at once). The store keeps a compact Version in memory instead
 * and builds these only to persist or snapshot.
 */
export type StoredVersion = PutVersion | DeleteVersion;

export interface PutVersion {
  readonly kind: 'put';
  readonly revision: number;
  readonly sub: number;
  readonly kv: KeyValue;
}

export interface DeleteVersion {
  readonly kind: 'delete';
  readonly revision: number;
  readonly sub: number;
  readonly key: string;
}

export function versionKey(version: StoredVersion): string {
  return version.kind === 'put' ? version.kv.key : version.key;
}

/**
 * One version of a key as the store keeps it in memory. Memory per version
 * is what bounds a node (history stays until compaction), so this is a single
 * flat object: no key (the key's history holds it), no modRevision (it is the
 * revision), no wrapper around a KeyValue. KeyValues are built on read.
 */
export class Version {
  readonly revision: number;
  readonly sub: number;
  /** null for a tombstone (a delete). */
  readonly value: string | null;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: string | null;

  constructor(
    revision: number,
    sub: number,
    value: string | null,
    createRevision: number,
    version: number,
    lease: string | null,
  ) {
    this.revision = revision;
    this.sub = sub;
    this.value = value;
    this.createRevision = createRevision;
    this.version = version;
    this.lease = lease;
  }

  static tombstone(revision: number, sub: number): Version {
    return new Version(revision, sub, null, 0, 0, null);
  }

  static fromStored(stored: StoredVersion): Version {
    if (stored.kind === 'delete') return Version.tombstone(stored.revision, stored.sub);
    const { value, createRevision, version, lease } = stored.kv;
    return new Version(stored.revision, stored.sub, value, createRevision, version, lease);
  }

  /** The live KeyValue; the caller checks value !== null. */
  kv(key: string): KeyValue {
    return {
      key,
      value: this.value ?? '',
      createRevision: this.createRevision,
      modRevision: this.revision,
      version: this.version,
      lease: this.lease,
    };
  }

  toStored(key: string): StoredVersion {
    return this.value === null
      ? { kind: 'delete', revision: this.revision, sub: this.sub, key }
      : { kind: 'put', revision: this.revision, sub: this.sub, kv: this.kv(key) };
  }
}

/**
 * Index of the last version with revision ≤ `revision` in a key's history
 * (ascending by revision, at most one version per revision), or -1.
 */
export function indexAtRevision(
  history: readonly { readonly revision: number }[],
  revision: number,
): number {
  // Most reads are of the latest version: check it before searching.
  const last = history.length - 1;
  if (last >= 0 && history[last]!.revision <= revision) return last;
  let lo = 0;
  let hi = history.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (history[mid]!.revision <= revision) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The live KeyValue of a key at `revision`, or null if it did not exist then. */
export function kvAtRevision(
  key: string,
  history: readonly Version[],
  revision: number,
): KeyValue | null {
  const i = indexAtRevision(history, revision);
  if (i < 0) return null;
  const version = history[i]!;
  return version.value === null ? null : version.kv(key);
}
