import { assert } from '../errors.js';
import { compareKeys } from '../key-order.js';
import type { MutationLog } from '../mutations.js';
import { versionRecordKey } from '../record-keys.js';
import {
  type ChangesResult,
  type ErrorResult,
  errorResult,
  type GetResult,
  type RangeResult,
} from '../results.js';
import {
  type KeyFilter,
  type KeyValue,
  matchesFilter,
  type RevisionChange,
  tombstoneKv,
  type WatchEvent,
  withoutValue,
} from './key-value.js';
import { SortedKeys } from './sorted-keys.js';
import { indexAtRevision, kvAtRevision, type StoredVersion, versionKey } from './stored-version.js';
import { encodeVersionRecord } from './version-record.js';

export interface GetOptions {
  /** Read as of this revision; absent or 0 = the current revision (as in etcd). */
  readonly revision?: number;
  readonly keysOnly?: boolean;
}

export interface RangeOptions extends GetOptions {
  /** Only keys starting with this; '' or absent = all keys. */
  readonly prefix?: string;
  /** Only keys strictly after this one (pagination). */
  readonly after?: string;
  /** At most this many kvs; absent or 0 = no limit. `more` tells whether some were left out. */
  readonly limit?: number;
}

/**
 * The MVCC store of the etcd v3 model, in memory, with every record-level
 * change reported to a MutationLog for persistence.
 *
 * - histories: key → its versions ascending by revision, at most one per
 *   revision, including tombstones (etcd's key index with generations,
 *   flattened: a tombstone ends a generation).
 * - byRevision: revision → the versions it wrote, in sub order; this is what
 *   watches replay and what compaction walks.
 * - sortedKeys: every key with any history, for ordered range scans (a key
 *   deleted but not yet compacted stays, so past revisions can be read).
 *
 * Invariants: compactRevision ≤ revision; versions with revision ≤
 * compactRevision are only each key's latest one ≤ compactRevision, and never
 * a tombstone; keysByLease holds exactly the live keys with a lease.
 */
export class MvccStore {
  private readonly histories = new Map<string, StoredVersion[]>();
  private readonly byRevision = new Map<number, StoredVersion[]>();
  private readonly sortedKeys = new SortedKeys();
  private readonly keysByLease = new Map<string, Set<string>>();
  private currentRevision = 0;
  private compactedRevision = 0;
  /** Set between beginWrite() and endWrite(). */
  private write: { revision: number; sub: number; events: WatchEvent[] } | null = null;

  constructor(private readonly log: MutationLog) {}

  /** Increases by one with each write that changed something. */
  get revision(): number {
    return this.currentRevision;
  }

  /** Reads before this revision fail with `compacted`; 0 = never compacted. */
  get compactRevision(): number {
    return this.compactedRevision;
  }

  /** Keys with any uncompacted history (live or deleted). */
  get keyCount(): number {
    return this.sortedKeys.size;
  }

  // ---- reads ----------------------------------------------------------------

  /** The latest version of a key, including changes of a write in progress. */
  latest(key: string): KeyValue | null {
    const history = this.histories.get(key);
    if (history === undefined) return null;
    const last = history[history.length - 1]!;
    return last.kind === 'put' ? last.kv : null;
  }

  get(key: string, options: GetOptions = {}): GetResult {
    const revision = this.checkReadRevision(options.revision);
    if (typeof revision !== 'number') return revision;
    const history = this.histories.get(key);
    const kv = history === undefined ? null : kvAtRevision(history, revision);
    return {
      ok: true,
      revision: this.currentRevision,
      kv: kv !== null && options.keysOnly ? withoutValue(kv) : kv,
    };
  }

  range(options: RangeOptions = {}): RangeResult {
    const revision = this.checkReadRevision(options.revision);
    if (typeof revision !== 'number') return revision;
    const limit = options.limit ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      return errorResult(
        'invalid_request',
        'limit must be a non-negative integer',
        this.currentRevision,
      );
    }
    const { kvs, more } = this.scan(options.prefix ?? '', options.after, limit, revision);
    return {
      ok: true,
      revision: this.currentRevision,
      kvs: options.keysOnly ? kvs.map(withoutValue) : kvs,
      more,
    };
  }

  /** Live keys under a prefix at the latest state ('' = all), in key order. */
  rangeLatest(prefix: string): KeyValue[] {
    return this.scan(prefix, undefined, 0, Number.POSITIVE_INFINITY).kvs;
  }

  /**
   * What revisions fromRevision..toRevision (default: the current one) changed
   * under `filter`, one entry per revision that touched it. Fails with
   * `compacted` if fromRevision ≤ compactRevision: that revision's tombstones
   * and overwritten versions are gone. A watcher registered on the WatchHub
   * before calling this (synchronously) sees every later revision exactly once.
   */
  changes(fromRevision: number, filter: KeyFilter, toRevision?: number): ChangesResult {
    if (!Number.isSafeInteger(fromRevision) || fromRevision < 0) {
      return errorResult(
        'invalid_request',
        'fromRevision must be a non-negative integer',
        this.currentRevision,
      );
    }
    const from = Math.max(fromRevision, 1); // revision 0 is the empty store: it changed nothing
    if (from <= this.compactedRevision) return this.compactedError(fromRevision);
    const to = Math.min(toRevision ?? this.currentRevision, this.currentRevision);
    const changes: RevisionChange[] = [];
    if (!filter.prefix) {
      // One key: its own history is shorter than the revision log.
      const history = this.histories.get(filter.key) ?? [];
      for (let i = indexAtRevision(history, from - 1) + 1; i < history.length; i++) {
        const version = history[i]!;
        if (version.revision > to) break;
        changes.push({ revision: version.revision, events: [eventOf(history, i)] });
      }
      return { ok: true, revision: this.currentRevision, changes };
    }
    for (let revision = from; revision <= to; revision++) {
      const versions = this.byRevision.get(revision);
      if (versions === undefined) continue;
      const events: WatchEvent[] = [];
      for (const version of versions) {
        const key = versionKey(version);
        if (!matchesFilter(filter, key)) continue;
        const history = this.histories.get(key)!;
        events.push(eventOf(history, indexAtRevision(history, revision)));
      }
      if (events.length > 0) changes.push({ revision, events });
    }
    return { ok: true, revision: this.currentRevision, changes };
  }

  /** Live keys attached to a lease, in key order. */
  keysOfLease(leaseId: string): string[] {
    const keys = this.keysByLease.get(leaseId);
    return keys === undefined ? [] : [...keys].sort(compareKeys);
  }

  /** Ids of the leases that have live keys attached. */
  attachedLeases(): IterableIterator<string> {
    return this.keysByLease.keys();
  }

  // ---- writes ---------------------------------------------------------------

  /**
   * Starts a write at revision + 1. Reads of the latest state (latest(),
   * rangeLatest()) see its changes at once, so a txn's get after its put sees
   * the put, as in etcd. The caller validates everything first: a write cannot
   * be rolled back, it simply changes nothing if it puts and deletes nothing.
   */
  beginWrite(): void {
    assert(this.write === null, 'mvcc: nested write');
    this.write = { revision: this.currentRevision + 1, sub: 0, events: [] };
  }

  /** Puts a key in the current write. A key may change at most once per write. */
  put(key: string, value: string, lease: string | null): { kv: KeyValue; prevKv: KeyValue | null } {
    const write = this.write;
    assert(write !== null, 'mvcc: put outside a write');
    const prevKv = this.latest(key);
    const kv: KeyValue = {
      key,
      value,
      createRevision: prevKv === null ? write.revision : prevKv.createRevision,
      modRevision: write.revision,
      version: prevKv === null ? 1 : prevKv.version + 1,
      lease,
    };
    this.append({ kind: 'put', revision: write.revision, sub: write.sub++, kv }, prevKv);
    write.events.push(prevKv === null ? { type: 'put', kv } : { type: 'put', kv, prevKv });
    return { kv, prevKv };
  }

  /** Deletes a key in the current write; returns the deleted version, or null if it did not exist. */
  delete(key: string): KeyValue | null {
    const write = this.write;
    assert(write !== null, 'mvcc: delete outside a write');
    const prevKv = this.latest(key);
    if (prevKv === null) return null;
    this.append({ kind: 'delete', revision: write.revision, sub: write.sub++, key }, prevKv);
    write.events.push({ type: 'delete', kv: tombstoneKv(key, write.revision), prevKv });
    return prevKv;
  }

  /** Ends the write: the revision advances only if something changed. Returns what changed. */
  endWrite(): RevisionChange | null {
    const write = this.write;
    assert(write !== null, 'mvcc: endWrite without beginWrite');
    this.write = null;
    if (write.events.length === 0) return null;
    this.currentRevision = write.revision;
    return { revision: write.revision, events: write.events };
  }

  /**
   * Drops history before `revision`, keeping each key's latest version ≤
   * revision unless it is a tombstone. Only keys written after the previous
   * compaction can have anything to drop, so the cost is proportional to the
   * history compacted, not to the store size.
   */
  compact(revision: number): void {
    assert(this.write === null, 'mvcc: compact during a write');
    assert(
      revision > this.compactedRevision && revision <= this.currentRevision,
      `mvcc: compact(${revision}) outside (${this.compactedRevision}, ${this.currentRevision}]`,
    );
    const touched = new Set<string>();
    for (let r = this.compactedRevision + 1; r <= revision; r++) {
      for (const version of this.byRevision.get(r) ?? []) touched.add(versionKey(version));
    }
    const dropped = new Set<StoredVersion>();
    for (const key of touched) {
      const history = this.histories.get(key)!;
      const keep = indexAtRevision(history, revision);
      const dropCount = history[keep]!.kind === 'delete' ? keep + 1 : keep;
      for (let i = 0; i < dropCount; i++) dropped.add(history[i]!);
      if (dropCount === history.length) {
        this.histories.delete(key);
        this.sortedKeys.remove(key);
      } else if (dropCount > 0) {
        history.splice(0, dropCount);
      }
    }
    const revisions = new Set<number>();
    for (const version of dropped) {
      revisions.add(version.revision);
      this.log.del(versionRecordKey(version.revision, version.sub));
    }
    for (const r of revisions) {
      const kept = this.byRevision.get(r)!.filter((version) => !dropped.has(version));
      if (kept.length === 0) this.byRevision.delete(r);
      else this.byRevision.set(r, kept);
    }
    this.compactedRevision = revision;
  }

  // ---- persistence ----------------------------------------------------------

  /** Every version, ascending by (revision, sub). */
  *versions(): Generator<StoredVersion, void, undefined> {
    const revisions = [...this.byRevision.keys()].sort((a, b) => a - b);
    for (const revision of revisions) yield* this.byRevision.get(revision)!;
  }

  /**
   * Rebuilds the store from persisted versions (any order) and meta. Nothing is
   * logged: the records are already persisted.
   */
  static fromVersions(
    log: MutationLog,
    versions: StoredVersion[],
    revision: number,
    compactRevision: number,
  ): MvccStore {
    const store = new MvccStore(log);
    versions.sort((a, b) => a.revision - b.revision || a.sub - b.sub);
    for (const version of versions) {
      const history = store.histories.get(versionKey(version));
      const prev = history?.[history.length - 1];
      store.append(version, prev?.kind === 'put' ? prev.kv : null, true);
    }
    store.sortedKeys.bulkLoad([...store.histories.keys()]);
    const last = versions[versions.length - 1];
    assert(
      compactRevision <= revision && (last === undefined || last.revision <= revision),
      'mvcc: persisted meta is behind the persisted versions',
    );
    store.currentRevision = revision;
    store.compactedRevision = compactRevision;
    return store;
  }

  // ---- internals ------------------------------------------------------------

  /** `loading`: the records are already persisted, and fromVersions() indexes the keys at the end. */
  private append(version: StoredVersion, prevKv: KeyValue | null, loading = false): void {
    const key = versionKey(version);
    let history = this.histories.get(key);
    if (history === undefined) {
      history = [];
      this.histories.set(key, history);
      if (!loading) this.sortedKeys.insert(key);
    }
    const last = history[history.length - 1];
    assert(
      last === undefined || last.revision < version.revision,
      `mvcc: key ${JSON.stringify(key)} changed twice in revision ${version.revision}`,
    );
    history.push(version);
    let atRevision = this.byRevision.get(version.revision);
    if (atRevision === undefined) {
      atRevision = [];
      this.byRevision.set(version.revision, atRevision);
    }
    atRevision.push(version);
    if (prevKv?.lease != null) this.detachLease(prevKv.lease, key);
    if (version.kind === 'put' && version.kv.lease !== null) {
      let keys = this.keysByLease.get(version.kv.lease);
      if (keys === undefined) {
        keys = new Set();
        this.keysByLease.set(version.kv.lease, keys);
      }
      keys.add(key);
    }
    if (!loading)
      this.log.put(versionRecordKey(version.revision, version.sub), encodeVersionRecord(version));
  }

  private detachLease(leaseId: string, key: string): void {
    const keys = this.keysByLease.get(leaseId);
    if (keys === undefined) return;
    keys.delete(key);
    if (keys.size === 0) this.keysByLease.delete(leaseId);
  }

  /** Live kvs under `prefix`, strictly after `after`, at `revision`; limit 0 = all. */
  private scan(
    prefix: string,
    after: string | undefined,
    limit: number,
    revision: number,
  ): { kvs: KeyValue[]; more: boolean } {
    const kvs: KeyValue[] = [];
    const startAfter = after !== undefined && compareKeys(after, prefix) >= 0;
    for (const key of this.sortedKeys.from(startAfter ? after : prefix, startAfter)) {
      if (!key.startsWith(prefix)) break;
      const kv = kvAtRevision(this.histories.get(key)!, revision);
      if (kv === null) continue;
      if (limit > 0 && kvs.length === limit) return { kvs, more: true };
      kvs.push(kv);
    }
    return { kvs, more: false };
  }

  /** The revision to read at, or the error to return. */
  private checkReadRevision(revision: number | undefined): number | ErrorResult {
    if (revision === undefined || revision === 0) return this.currentRevision;
    if (!Number.isSafeInteger(revision) || revision < 0) {
      return errorResult(
        'invalid_request',
        'revision must be a non-negative integer',
        this.currentRevision,
      );
    }
    if (revision < this.compactedRevision) return this.compactedError(revision);
    if (revision > this.currentRevision) {
      return errorResult(
        'future_revision',
        `revision ${revision} is after the current revision ${this.currentRevision}`,
        this.currentRevision,
      );
    }
    return revision;
  }

  private compactedError(revision: number): ErrorResult {
    return errorResult(
      'compacted',
      `revision ${revision} has been compacted (compactRevision ${this.compactedRevision})`,
      this.currentRevision,
      { compactRevision: this.compactedRevision },
    );
  }
}

/** The watch event for history[i], with the version before it as prevKv. */
function eventOf(history: readonly StoredVersion[], i: number): WatchEvent {
  const version = history[i]!;
  const prev = history[i - 1];
  const prevKv = prev?.kind === 'put' ? prev.kv : undefined;
  if (version.kind === 'put') {
    return prevKv === undefined
      ? { type: 'put', kv: version.kv }
      : { type: 'put', kv: version.kv, prevKv };
  }
  const kv = tombstoneKv(version.key, version.revision);
  return prevKv === undefined ? { type: 'delete', kv } : { type: 'delete', kv, prevKv };
}
