/**
 * The data model of API.md (etcd v3): every write that changes something makes
 * one new store revision; every key carries its own revisions and version.
 */

/** One version of a key, as the API returns it. Objects are shared: never mutate them. */
export interface KeyValue {
  readonly key: string;
  /** '' when read with keysOnly. */
  readonly value: string;
  /** Revision of the put that created this generation of the key. */
  readonly createRevision: number;
  /** Revision of the last put; equals createRevision right after creation. */
  readonly modRevision: number;
  /** Puts since creation: 1 after creation, reset by delete. */
  readonly version: number;
  /** The lease the key is attached to, or null. */
  readonly lease: string | null;
}

/**
 * A watch event. For a delete, `kv` is a tombstone: the key and the deleting
 * revision as modRevision, everything else empty/zero (as etcd reports it).
 * `prevKv` is the version just before this one, when the key existed.
 */
export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KeyValue;
  readonly prevKv?: KeyValue;
}

/** Everything one revision changed, in the order the command made the changes. Never split. */
export interface RevisionChange {
  readonly revision: number;
  readonly events: readonly WatchEvent[];
}

/** Which keys a watch (or a changes() query) is interested in. `key: '', prefix: true` is all keys. */
export interface KeyFilter {
  readonly key: string;
  readonly prefix: boolean;
}

export function matchesFilter(filter: KeyFilter, key: string): boolean {
  return filter.prefix ? key.startsWith(filter.key) : key === filter.key;
}

export function tombstoneKv(key: string, revision: number): KeyValue {
  return { key, value: '', createRevision: 0, modRevision: revision, version: 0, lease: null };
}

export function withoutValue(kv: KeyValue): KeyValue {
  return { ...kv, value: '' };
}
