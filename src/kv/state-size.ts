/**
 * The state size estimate the space quota compares (README "Space quota"):
 * what the replicated state costs in the V8 heap, kept as a running sum that
 * every replica computes alike from the entries it applies (string lengths
 * and fixed per-record costs, never a measurement of this process). Costs are
 * in bytes of heap; string lengths count UTF-16 code units (one byte each for
 * the Latin-1 strings V8 stores one byte per character).
 *
 * VERSION_OVERHEAD_BYTES was measured with `npm run bench:quota` (one
 * process, uncompacted): the heap grew by 202 B per version over key + value
 * for 200k puts of new 16 B keys with 100 B values (also with 1,000 B and
 * 4,000 B values), and by 158 B when 200k puts overwrote 1,000 keys: the
 * Version object, the key's history and sortedKeys slots, the byRevision
 * entry and the string headers. With 200 the estimate is 1.00–1.01 × the
 * heap grown for new keys, and over it for history (never short: a short
 * estimate would let the heap run out before the alarm).
 */
export const VERSION_OVERHEAD_BYTES = 200;
/** A lease record: the object, its id string and its map entry. */
export const LEASE_BYTES = 400;
/** A remembered result (dedup): its JSON length plus the entry object and map slot. */
export const DEDUP_OVERHEAD_BYTES = 200;
/** An auth user or role, or an alarm: small objects, counted by their JSON length plus this. */
export const RECORD_OVERHEAD_BYTES = 200;

/** One MVCC version of `key` (a tombstone has value null). */
export function versionBytes(key: string, value: string | null, lease: string | null): number {
  return key.length + (value?.length ?? 0) + (lease?.length ?? 0) + VERSION_OVERHEAD_BYTES;
}
