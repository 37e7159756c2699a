/**
 * Whether a data dir has been initialized, asked before a node starts on it
 * (founding-member discovery runs on a first start only). Reads, never
 * creates: a missing directory or one without a LevelDB database is new.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { ioError, StorageError } from './errors.js';
import { openDatabase, openSublevels, readIdentity, type StorageIdentity } from './load.js';

/**
 * The identity initialize() wrote, or undefined when the data dir does not
 * exist, holds no database yet, or holds a database that was never
 * initialized (a first start that stopped before initialize(): a start
 * treats it as new too). Throws StorageError for a dir that is locked by a
 * running node, foreign or damaged, as opening it to start would.
 */
export async function peekIdentity(dataDir: string): Promise<StorageIdentity | undefined> {
  const dir = path.resolve(dataDir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(dir, 'listing the directory', err);
  }
  // Without CURRENT, opening would create a database: leave that to the start.
  if (!names.includes('CURRENT')) return undefined;
  const db = await openDatabase(dir);
  try {
    return await readIdentity(dir, db, openSublevels(db));
  } catch (err) {
    throw err instanceof StorageError ? err : ioError(dir, 'reading the database', err);
  } finally {
    await db.close().catch(() => undefined);
  }
}
