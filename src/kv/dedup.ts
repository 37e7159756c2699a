import { assert } from './errors.js';
import type { MutationLog } from './mutations.js';
import { dedupRecordKey } from './record-keys.js';
import type { CommandResult } from './results.js';
import { DEDUP_OVERHEAD_BYTES } from './state-size.js';
import { utf8Decode } from './text.js';

/** Must be the same on every replica: they decide what is forgotten. */
export interface DedupOptions {
  /** API.md promises at least 10 minutes. */
  readonly retentionMs: number;
  /** Beyond this many remembered results, the oldest are forgotten first. */
  readonly entriesMax: number;
}

export const DEFAULT_DEDUP_OPTIONS: DedupOptions = {
  retentionMs: 10 * 60 * 1000,
  entriesMax: 100_000,
};

interface DedupEntry {
  /** Order of insertion, so that load() restores the eviction order exactly. */
  readonly seq: number;
  /** State machine clock when the first attempt was applied. */
  readonly atMs: number;
  /** What the first request was (route and body digest); absent in records written before it existed. */
  readonly digest?: string;
  readonly result: CommandResult;
}

/**
 * The table's key for an Idempotency-Key: results belong to the user who made
 * the write (API.md), so another user's key is another entry. The tab cannot
 * occur in a key or a user name, so the two parts never run together.
 */
export function dedupKeyOf(idempotencyKey: string, user: string | undefined): string {
  return user === undefined ? idempotencyKey : `${user}\t${idempotencyKey}`;
}

/**
 * Results of commands that carried an Idempotency-Key, so that a retry gets
 * the first attempt's result and changes nothing. Bounded in time and count;
 * time is the state machine clock, which never goes backwards, so the Map's
 * insertion order is also age order and expiry only looks at its front.
 */
export class DedupTable {
  private readonly entries = new Map<string, DedupEntry>();
  private seq = 0;
  /** Estimated heap bytes of the remembered results (state-size.ts), for the space quota. */
  private bytes = 0;

  constructor(
    private readonly log: MutationLog,
    private readonly options: DedupOptions,
  ) {
    assert(options.retentionMs > 0 && options.entriesMax > 0, 'dedup: bad options');
  }

  get size(): number {
    return this.entries.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** Sequence number of the next remembered result (persisted in the meta record). */
  get nextSeq(): number {
    return this.seq;
  }

  /**
   * The first request's result, or `mismatch` when the key was first used for
   * another request (its digest differs), or undefined when the key is new.
   */
  lookup(
    idempotencyKey: string,
    digest: string | undefined,
  ): CommandResult | 'mismatch' | undefined {
    const entry = this.entries.get(idempotencyKey);
    if (entry === undefined) return undefined;
    if (entry.digest !== undefined && digest !== undefined && entry.digest !== digest)
      return 'mismatch';
    return entry.result;
  }

  remember(
    idempotencyKey: string,
    nowMs: number,
    digest: string | undefined,
    result: CommandResult,
  ): void {
    assert(!this.entries.has(idempotencyKey), 'dedup: key remembered twice');
    const entry: DedupEntry = {
      seq: this.seq++,
      atMs: nowMs,
      ...(digest === undefined ? {} : { digest }),
      result,
    };
    this.entries.set(idempotencyKey, entry);
    const text = encodeEntry(entry);
    this.bytes += entryBytes(idempotencyKey, text);
    this.log.put(dedupRecordKey(idempotencyKey), text);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.options.entriesMax) break;
      this.forget(oldest);
    }
  }

  /** Forgets results remembered retentionMs or more before nowMs. */
  expire(nowMs: number): void {
    for (const [key, entry] of this.entries) {
      if (nowMs - entry.atMs < this.options.retentionMs) break;
      this.forget(key);
    }
  }

  *records(): Generator<[string, string], void, undefined> {
    for (const [key, entry] of this.entries) yield [dedupRecordKey(key), encodeEntry(entry)];
  }

  /** Rebuilds the table from `d/<key>` records (key without the prefix). */
  static fromRecords(
    log: MutationLog,
    options: DedupOptions,
    records: Iterable<[string, Uint8Array]>,
    nextSeq: number,
  ): DedupTable {
    const table = new DedupTable(log, options);
    const entries = [...records].map(([key, bytes]) => [key, decodeEntry(bytes)] as const);
    entries.sort((a, b) => a[1].seq - b[1].seq);
    for (const [key, entry] of entries) {
      assert(entry.seq < nextSeq, 'dedup: entry newer than the persisted sequence');
      table.entries.set(key, entry);
      table.bytes += entryBytes(key, encodeEntry(entry));
    }
    table.seq = nextSeq;
    return table;
  }

  private forget(idempotencyKey: string): void {
    const entry = this.entries.get(idempotencyKey);
    if (entry !== undefined) this.bytes -= entryBytes(idempotencyKey, encodeEntry(entry));
    this.entries.delete(idempotencyKey);
    this.log.del(dedupRecordKey(idempotencyKey));
  }
}

/** The same for an entry remembered here or loaded: its JSON text is the same. */
function entryBytes(idempotencyKey: string, text: string): number {
  return idempotencyKey.length + text.length + DEDUP_OVERHEAD_BYTES;
}

function encodeEntry(entry: DedupEntry): string {
  return JSON.stringify(entry);
}

function decodeEntry(bytes: Uint8Array): DedupEntry {
  const entry = JSON.parse(utf8Decode(bytes)) as DedupEntry;
  assert(
    typeof entry.seq === 'number' &&
      typeof entry.atMs === 'number' &&
      (entry.digest === undefined || typeof entry.digest === 'string') &&
      typeof entry.result === 'object' &&
      entry.result !== null,
    'dedup record: malformed',
  );
  return entry;
}
