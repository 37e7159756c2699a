/**
 * The key layout of a node's LevelDB database. Every key lives in one
 * sublevel (abstract-level prefixes it with `!name!`); keys outside these
 * sublevels mean the database is not ours.
 *
 *   !log!<index: 8 bytes big-endian>  → encoded entry (codec.ts)
 *   !raft!hardState                   → encoded hard state
 *   !raft!confState                   → membership as of the applied index (JSON)
 *   !raft!snapshot                    → snapshot metadata: index, term, confState (JSON)
 *   !raft!logStart                    → index and term of the entry just before the log
 *   !raft!applied                     → applied index of the kv sublevel
 *   !raft!installing                  → present only while replaceKv writes in chunks
 *   !meta!formatVersion|clusterId|nodeId|nodeName|createdAt → UTF-8 text
 *   !meta!kvResealedThrough          → present only while open() re-seals a format 1/2 dir's kv records
 *   !members!<member id>              → JSON {name, peerUrls, clientUrls}
 *   !kv!<key>                         → the KV state machine's bytes, sealed (codec.ts)
 */

export const SUBLEVEL = {
  log: 'log',
  raft: 'raft',
  meta: 'meta',
  members: 'members',
  kv: 'kv',
} as const;

export const RAFT_KEY = {
  hardState: 'hardState',
  confState: 'confState',
  snapshot: 'snapshot',
  logStart: 'logStart',
  applied: 'applied',
  installing: 'installing',
} as const;

export const META_KEY = {
  formatVersion: 'formatVersion',
  clusterId: 'clusterId',
  nodeId: 'nodeId',
  nodeName: 'nodeName',
  createdAt: 'createdAt',
  createdWith: 'createdWith',
  /** Ids of members removed from the cluster (never reused): their traffic is refused. */
  removedMembers: 'removedMembers',
  /**
   * While open() upgrades a dir to format 3: the last kv key re-sealed so far
   * (sealed JSON {"through": key | null}); the kv records after it are still bare.
   */
  kvResealedThrough: 'kvResealedThrough',
} as const;

export const LOG_KEY_BYTES = 8;

/** Big-endian, so LevelDB's byte order is index order and a range scan reads the log in order. */
export function encodeLogKey(index: number): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`log index ${index} is not a non-negative safe integer`);
  }
  const key = new Uint8Array(LOG_KEY_BYTES);
  const view = new DataView(key.buffer);
  view.setUint32(0, Math.floor(index / 2 ** 32));
  view.setUint32(4, index >>> 0);
  return key;
}

/** The index of a log key, or undefined if the key is not one we write. */
export function maybeDecodeLogKey(key: Uint8Array): number | undefined {
  if (key.byteLength !== LOG_KEY_BYTES) return undefined;
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  const index = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
  return Number.isSafeInteger(index) ? index : undefined;
}
