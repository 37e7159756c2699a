import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import type { Test } from 'tap';
import type { Entry, EntryType, RaftStorage } from '../../src/raft/index.js';
import { LevelRaftStorage, type LevelStorageOptions } from '../../src/storage/index.js';
import { META_KEY, SUBLEVEL } from '../../src/storage/keys.js';

const encoder = new TextEncoder();

export function ent(
  index: number,
  term: number,
  data = `e${index}`,
  type: EntryType = 'normal',
): Entry {
  return { index, term, type, data: encoder.encode(data) };
}

/** Entries lo..hi inclusive, the term of each given by `termOf`. */
export function ents(lo: number, hi: number, termOf: (index: number) => number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(ent(i, termOf(i)));
  return out;
}

/** A fresh directory under the OS temp dir, removed when the test ends. */
export async function tempDir(t: Test, prefix = 'raftkv-storage-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export const IDENTITY = { clusterId: 'cluster-a', nodeId: 'n1', nodeName: 'node-1' };

/** An initialized LevelRaftStorage in a fresh temp dir, closed when the test ends. */
export async function openFresh(
  t: Test,
  bootstrapVoters: string[] | undefined = ['n1', 'n2', 'n3'],
  options: LevelStorageOptions = {},
): Promise<{ dir: string; storage: LevelRaftStorage }> {
  const dir = await tempDir(t);
  const storage = await LevelRaftStorage.open(dir, options);
  t.teardown(() => storage.close());
  await storage.initialize(IDENTITY, bootstrapVoters);
  return { dir, storage };
}

/** Everything the core can read from a storage, as plain data to compare. */
export function observe(s: RaftStorage) {
  const first = s.firstIndex();
  const last = s.lastIndex();
  return {
    initialState: s.initialState(),
    firstIndex: first,
    lastIndex: last,
    termBeforeFirst: s.term(first - 1),
    entries: last >= first ? s.entries(first, last + 1) : [],
    snapshotMetadata: s.snapshot().metadata,
  };
}

/** Resolves `promise`, or rejects after `ms` with `what` in the message: every wait is bounded. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A test-only wrapper below the storage: the next `times` batch writes of `storage`'s
 * database reject with `error`; the ones after them go to the disk again.
 */
export function failWrites(storage: LevelRaftStorage, error: Error, times = Infinity): void {
  const db = (storage as unknown as { db: { batch(): { write(): Promise<void> } } }).db;
  const batch = db.batch.bind(db);
  let left = times;
  db.batch = () => {
    const b = batch();
    if (left-- > 0) b.write = () => Promise.reject(error);
    return b;
  };
}

/**
 * A data dir of format 2 holding `records` as its kv sublevel: an initialized
 * dir whose kv records are written bare and whose format record says 2. The
 * two formats differ in nothing else (format 3 only seals the kv records).
 */
export async function format2DirWith(
  t: Test,
  records: Iterable<readonly [string, Uint8Array]>,
): Promise<string> {
  const dir = await tempDir(t);
  const s = await LevelRaftStorage.open(dir);
  await s.initialize(IDENTITY, ['n1']);
  await s.close();
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    const text = { keyEncoding: 'utf8', valueEncoding: 'view' } as const;
    const kv = { sublevel: db.sublevel<string, Uint8Array>(SUBLEVEL.kv, text) };
    const batch = db.batch();
    for (const [key, value] of records) batch.put(key, value, kv);
    await batch.write();
    await db
      .sublevel<string, Uint8Array>(SUBLEVEL.meta, text)
      .put(META_KEY.formatVersion, encoder.encode('2'));
  } finally {
    await db.close();
  }
  return dir;
}

/** A fresh copy of test/storage/fixtures/<name> (a data dir written by an older format) in a temp dir. */
export async function fixtureDir(t: Test, name: string): Promise<string> {
  const dir = await tempDir(t);
  await cp(path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', name), dir, {
    recursive: true,
  });
  return dir;
}
