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
import { versionBytes } from '../state-size.js';
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
import {
  indexAtRevision,
  kvAtRevision,
  type StoredVersion,
  Version,
  versionKey,
} from './stored-version.js';
import { encodeVersion } from './version-record.js';

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

/** Histories shorter than this grow by copy, not push (see append()). */
const HISTORY_COPY_MAX = 8;

/**
 * A key's versions ascending by revision: the Version itself while it has one
 * (most keys, once compacted), so such a key costs no array.
 */
type History = Version | Version[];

/** What one compaction dropped (for the log; not part of the replicated state). */
export interface CompactionCounts {
  /** Versions of keys older than the compaction revision, tombstones included. */
  versionsRemoved: number;
  /** Keys deleted before the compaction revision, whose whole history went. */
  keysRemoved: number;
}

/**
 * The MVCC store of the etcd v3 model, in memory, with every record-level
 * change reported to a MutationLog for persistence.
 *
 * - histories: key → its versions ascending by revision, at most one per
 *   revision, including tombstones (etcd's key index with generations,
 *   flattened: a tombstone ends a generation); a lone version is held
 *   without an array (see History).
 * - byRevision: each revision [compactRevision, revision] → the key it wrote
 *   (or the keys, in sub order, when it wrote several); this is what watches
 *   replay and what compaction walks. The compaction revision itself stays
 *   replayable (API.md: history BEFORE it is dropped, so a watch from it
 *   replays its changes, deletes included); revisions before it have no entry.
 *
 * Memory: history stays in memory until compaction, so each version costs
 * what it must and little more: one flat Version (no key, no KeyValue
 * wrapper), one array slot if its key has several, and while uncompacted one
 * Map entry per revision holding a key string, not an array (most revisions
 * change one key). A compacted key with one version costs its Version, its
 * key and value strings, and its entries in histories and sortedKeys.
 * - sortedKeys: every key with any history, for ordered range scans (a key
 *   deleted but not yet compacted stays, so past revisions can be read).
 *
 * Invariants: compactRevision ≤ revision; versions with revision <
 * compactRevision are only each key's latest one ≤ compactRevision, never a
 * tombstone, and, for a key that revision compactRevision changed, the live
 * version it replaced (the replay's prevKv); byRevision has an entry for
 * exactly the revisions in [compactRevision, revision] that kept a version;
 * keysByLease holds exactly the live keys with a lease.
 */
export class MvccStore {
  private readonly histories = new Map<string, History>();
  private readonly byRevision = new Map<number, string | string[]>();
  private readonly sortedKeys = new SortedKeys();
  private readonly keysByLease = new Map<string, Set<string>>();
  private currentRevision = 0;
  private compactedRevision = 0;
  /** The running size estimate of every version held (state-size.ts), for the space quota. */
  private versionBytesTotal = 0;
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

  /** Estimated heap bytes of the history held (state-size.ts): the same on every replica. */
  get sizeBytes(): number {
    return this.versionBytesTotal;
  }

  /** Keys with any uncompacted history (live or deleted). */
  get keyCount(): number {
    return this.sortedKeys.size;
  }

  // ---- reads ----------------------------------------------------------------

  /** The latest version of a key, including changes of a write in progress. */
  latest(key: string): KeyValue | null {
    const last = this.latestVersion(key);
    return last === undefined || last.value === null ? null : last.kv(key);
  }

  get(key: string, options: GetOptions = {}): GetResult {
    const revision = this.checkReadRevision(options.revision);
    if (typeof revision !== 'number') return revision;
    const history = this.histories.get(key);
    const kv = history === undefined ? null : kvOf(key, history, revision);
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
   * `compacted` if fromRevision < compactRevision: that revision's tombstones
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
    if (from < this.compactedRevision) return this.compactedError(fromRevision);
    const to = Math.min(toRevision ?? this.currentRevision, this.currentRevision);
    const changes: RevisionChange[] = [];
    if (!filter.prefix) {
      // One key: its own history is shorter than the revision log.
      const entry = this.histories.get(filter.key);
      const history = entry === undefined ? [] : versionsOf(entry);
      for (let i = indexAtRevision(history, from - 1) + 1; i < history.length; i++) {
        const version = history[i]!;
        if (version.revision > to) break;
        changes.push({ revision: version.revision, events: [eventOf(filter.key, history, i)] });
      }
      return { ok: true, revision: this.currentRevision, changes };
    }
    for (let revision = from; revision <= to; revision++) {
      const keys = this.byRevision.get(revision);
      if (keys === undefined) continue;
      const events: WatchEvent[] = [];
      for (const key of keysOf(keys)) {
        if (!matchesFilter(filter, key)) continue;
        const history = versionsOf(this.histories.get(key)!);
        events.push(eventOf(key, history, indexAtRevision(history, revision)));
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
    const prev = this.latestVersion(key);
    const prevKv = prev === undefined || prev.value === null ? null : prev.kv(key);
    const version = new Version(
      write.revision,
      write.sub++,
      value,
      prevKv === null ? write.revision : prevKv.createRevision,
      prevKv === null ? 1 : prevKv.version + 1,
      lease,
    );
    this.append(key, version, prevKv?.lease ?? null);
    const kv = version.kv(key);
    write.events.push(prevKv === null ? { type: 'put', kv } : { type: 'put', kv, prevKv });
    return { kv, prevKv };
  }

  /** Deletes a key in the current write; returns the deleted version, or null if it did not exist. */
  delete(key: string): KeyValue | null {
    const write = this.write;
    assert(write !== null, 'mvcc: delete outside a write');
    const prevKv = this.latest(key);
    if (prevKv === null) return null;
    this.append(key, Version.tombstone(write.revision, write.sub++), prevKv.lease);
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
   * Drops history before `revision`: keeps each key's latest version ≤
   * revision unless it is a tombstone older than `revision`, and keeps what a
   * replay of `revision` itself needs (its tombstones, and the live versions
   * its changes replaced, for prevKv) until the next compaction. Only keys
   * written since the previous compaction revision (included) can have
   * anything to drop, so the cost is proportional to the history compacted,
   * not to the store size.
   */
  compact(revision: number): CompactionCounts {
    assert(this.write === null, 'mvcc: compact during a write');
    assert(
      revision > this.compactedRevision && revision <= this.currentRevision,
      `mvcc: compact(${revision}) outside (${this.compactedRevision}, ${this.currentRevision}]`,
    );
    // Revisions before `revision` leave byRevision (see its invariant); the keys
    // written from the previous compaction revision to this one are the only
    // ones that can have versions to drop.
    const touched = new Set<string>();
    const counts = { versionsRemoved: 0, keysRemoved: 0 };
    for (let r = this.compactedRevision; r <= revision; r++) {
      const keys = this.byRevision.get(r);
      if (keys === undefined) continue;
      for (const key of keysOf(keys)) touched.add(key);
      if (r < revision) this.byRevision.delete(r);
    }
    for (const key of touched) {
      const entry = this.histories.get(key)!;
      const history = versionsOf(entry);
      const keep = indexAtRevision(history, revision);
      const dropCount = firstKept(history, keep, revision);
      for (let i = 0; i < dropCount; i++) {
        const version = history[i]!;
        this.log.del(versionRecordKey(version.revision, version.sub));
        this.versionBytesTotal -= versionBytes(key, version.value, version.lease);
      }
      counts.versionsRemoved += dropCount;
      if (dropCount === history.length) {
        counts.keysRemoved++;
        this.histories.delete(key);
        this.sortedKeys.remove(key);
      } else if (dropCount === history.length - 1) {
        this.histories.set(key, history[dropCount]!);
      } else if (dropCount > 0) {
        (entry as Version[]).splice(0, dropCount);
      }
    }
    this.compactedRevision = revision;
    return counts;
  }

  // ---- persistence ----------------------------------------------------------

  /** Every version, ascending by (revision, sub), built one at a time (snapshots stream them). */
  *versions(): Generator<StoredVersion, void, undefined> {
    // Compacted revisions are not indexed by revision: order every version here.
    const order: { key: string; version: Version }[] = [];
    for (const [key, entry] of this.histories) {
      for (const version of versionsOf(entry)) order.push({ key, version });
    }
    order.sort((a, b) => a.version.revision - b.version.revision || a.version.sub - b.version.sub);
    for (const { key, version } of order) yield version.toStored(key);
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
    // Set first: append() indexes only revisions from the compaction revision on in byRevision.
    store.compactedRevision = compactRevision;
    versions.sort((a, b) => a.revision - b.revision || a.sub - b.sub);
    for (const stored of versions) {
      const key = versionKey(stored);
      const prev = store.latestVersion(key);
      store.append(key, Version.fromStored(stored), prev?.lease ?? null, true);
    }
    store.sortedKeys.bulkLoad([...store.histories.keys()]);
    const last = versions[versions.length - 1];
    assert(
      compactRevision <= revision && (last === undefined || last.revision <= revision),
      'mvcc: persisted meta is behind the persisted versions',
    );
    store.currentRevision = revision;
    return store;
  }

  // ---- internals ------------------------------------------------------------

  /** The newest version of a key (a tombstone included), or undefined if it has no history. */
  private latestVersion(key: string): Version | undefined {
    const history = this.histories.get(key);
    if (history === undefined || !Array.isArray(history)) return history;
    return history[history.length - 1];
  }

  /**
   * `prevLease`: the lease of the key's live version before this one, if any.
   * `loading`: the records are already persisted, and fromVersions() indexes the keys at the end.
   */
  private append(key: string, version: Version, prevLease: string | null, loading = false): void {
    this.versionBytesTotal += versionBytes(key, version.value, version.lease);
    const entry = this.histories.get(key);
    if (entry === undefined) {
      this.histories.set(key, version);
      if (!loading) this.sortedKeys.insert(key);
    } else {
      const history = versionsOf(entry);
      const last = history[history.length - 1]!;
      assert(
        last.revision < version.revision,
        `mvcc: key ${JSON.stringify(key)} changed twice in revision ${version.revision}`,
      );
      // Short histories grow by exact copies: push would reserve 16 more slots for each.
      if (history.length < HISTORY_COPY_MAX) this.histories.set(key, history.concat(version));
      else (entry as Version[]).push(version);
    }
    if (version.revision >= this.compactedRevision) {
      const atRevision = this.byRevision.get(version.revision);
      if (atRevision === undefined) this.byRevision.set(version.revision, key);
      else if (typeof atRevision === 'string')
        this.byRevision.set(version.revision, [atRevision, key]);
      else atRevision.push(key);
    }
    if (prevLease !== null) this.detachLease(prevLease, key);
    if (version.value !== null && version.lease !== null) {
      let keys = this.keysByLease.get(version.lease);
      if (keys === undefined) {
        keys = new Set();
        this.keysByLease.set(version.lease, keys);
      }
      keys.add(key);
    }
    if (!loading)
      this.log.put(versionRecordKey(version.revision, version.sub), encodeVersion(key, version));
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
      const kv = kvOf(key, this.histories.get(key)!, revision);
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

/**
 * A key's versions as an array. A lone version gets a one-slot array that
 * lives only as long as the read that asked (callers never keep it).
 */
function versionsOf(history: History): readonly Version[] {
  return Array.isArray(history) ? history : [history];
}

/** kvAtRevision of a History, without an array for a lone version (range scans read many). */
function kvOf(key: string, history: History, revision: number): KeyValue | null {
  if (Array.isArray(history)) return kvAtRevision(key, history, revision);
  return history.revision <= revision && history.value !== null ? history.kv(key) : null;
}

/**
 * How many of a key's oldest versions a compaction at `revision` drops, given
 * `keep`, the index of its latest version ≤ revision: a version changed AT
 * `revision` stays with the live version it replaced (a replay from
 * `revision` shows it as prevKv); an older one stays unless it is a tombstone.
 */
function firstKept(history: readonly Version[], keep: number, revision: number): number {
  const version = history[keep]!;
  if (version.revision < revision) return version.value === null ? keep + 1 : keep;
  const replaced = history[keep - 1];
  return replaced !== undefined && replaced.value !== null ? keep - 1 : keep;
}

/** The keys of a byRevision entry, in sub order. */
function keysOf(entry: string | readonly string[]): readonly string[] {
  return typeof entry === 'string' ? [entry] : entry;
}

/** The watch event for history[i] of `key`, with the version before it as prevKv. */
function eventOf(key: string, history: readonly Version[], i: number): WatchEvent {
  const version = history[i]!;
  const prev = history[i - 1];
  const prevKv = prev === undefined || prev.value === null ? undefined : prev.kv(key);
  if (version.value !== null) {
    const kv = version.kv(key);
    return prevKv === undefined ? { type: 'put', kv } : { type: 'put', kv, prevKv };
  }
  const kv = tombstoneKv(key, version.revision);
  return prevKv === undefined ? { type: 'delete', kv } : { type: 'delete', kv, prevKv };
}
