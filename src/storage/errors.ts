/**
 * Operational errors of the node's data dir. Each code is stable (the server
 * and the API map them; operators grep for them) and each message says what
 * is wrong AND what to do about it.
 *
 * | code                 | meaning                                                          |
 * |----------------------|------------------------------------------------------------------|
 * | `corrupt`            | records are undecodable or contradict each other                 |
 * | `foreign`            | the dir holds something raftkv did not create                    |
 * | `format_too_new`     | written by a newer raftkv than this binary                       |
 * | `install_incomplete` | the process stopped while installing a snapshot from the leader  |
 * | `locked`             | another process has the database open                            |
 * | `io`                 | the file system refused a read or write                          |
 */
export type StorageErrorCode =
  | 'corrupt'
  | 'foreign'
  | 'format_too_new'
  | 'install_incomplete'
  | 'locked'
  | 'io';

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  readonly dataDir: string;

  constructor(code: StorageErrorCode, dataDir: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'StorageError';
    this.code = code;
    this.dataDir = dataDir;
  }
}

// What brings a member with a damaged or incomplete data dir back (README "Storage and
// durability"): its data is replicated, so it is re-added empty and catches up from the others.
const REJOIN_ADVICE =
  'remove this member and add it back with an empty data dir (kvctl member remove <id>, then ' +
  'kvctl member add and start it with --join on a new --data-dir); the other members keep ' +
  'serving meanwhile as long as a majority of them is healthy. If no healthy majority is ' +
  'left, restore from a backup (GET /v1/snapshot, kvctl snapshot) with `raftkv restore`';

export function corruptError(dataDir: string, what: string, cause?: unknown): StorageError {
  return new StorageError(
    'corrupt',
    dataDir,
    `data dir ${dataDir} is damaged (${what}): do not edit it by hand; ${REJOIN_ADVICE}`,
    cause,
  );
}

export function foreignError(dataDir: string, what: string): StorageError {
  return new StorageError(
    'foreign',
    dataDir,
    `data dir ${dataDir} is not a raftkv data dir (${what}): point --data-dir at an empty or ` +
      'missing directory, or at the directory this member used before',
  );
}

export function formatTooNewError(
  dataDir: string,
  foundVersion: number,
  supportedVersion: number,
): StorageError {
  return new StorageError(
    'format_too_new',
    dataDir,
    `data dir ${dataDir} holds raftkv format ${foundVersion} but this binary reads up to ` +
      `${supportedVersion}: upgrade raftkv, or point --data-dir elsewhere`,
  );
}

export function installIncompleteError(dataDir: string, what: string): StorageError {
  return new StorageError(
    'install_incomplete',
    dataDir,
    `data dir ${dataDir} was installing a snapshot from the leader when the process stopped ` +
      `(${what}), so its key-value state is incomplete: ${REJOIN_ADVICE}`,
  );
}

export function lockedError(dataDir: string, cause: unknown): StorageError {
  return new StorageError(
    'locked',
    dataDir,
    `data dir ${dataDir} is locked: is another raftkv using this data dir? Stop it, ` +
      'or give each member its own --data-dir',
    cause,
  );
}

export function ioError(dataDir: string, doing: string, cause: unknown): StorageError {
  return new StorageError(
    'io',
    dataDir,
    `${doing} in data dir ${dataDir} failed (${errorDetail(cause)}): check that the disk is not full, ` +
      'that the directory is writable by this user, and restart the node',
    cause,
  );
}

/** The messages of an error and its causes: level wraps the LevelDB status in `cause`. */
export function errorDetail(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e !== undefined && depth < 5; depth++) {
    if (!(e instanceof Error)) {
      parts.push(String(e));
      break;
    }
    parts.push(e.message);
    e = e.cause;
  }
  return parts.join(': ');
}
