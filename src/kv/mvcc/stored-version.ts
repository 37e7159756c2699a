import type { KeyValue } from './key-value.js';

/**
 * One entry of the MVCC history: a put (the full KeyValue) or a delete
 * (a tombstone). Identified by (revision, sub): sub orders the changes inside
 * one revision (a txn or a prefix delete changes several keys at once).
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
 * Index of the last version with revision ≤ `revision` in a key's history
 * (ascending by revision, at most one version per revision), or -1.
 */
export function indexAtRevision(history: readonly StoredVersion[], revision: number): number {
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
export function kvAtRevision(history: readonly StoredVersion[], revision: number): KeyValue | null {
  const i = indexAtRevision(history, revision);
  if (i < 0) return null;
  const version = history[i]!;
  return version.kind === 'put' ? version.kv : null;
}
