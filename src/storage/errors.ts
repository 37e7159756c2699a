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

/** The failures of the file system that get advice of their own (see ioError). */
export type IoErrno = 'ENOSPC' | 'EDQUOT' | 'EIO' | 'EROFS' | 'EACCES' | 'EPERM';

// LevelDB reports the C library's strerror text, not the errno name.
const ERRNO_TEXT: readonly [IoErrno, RegExp][] = [
  ['ENOSPC', /No space left on device/i],
  ['EDQUOT', /Disk quota exceeded/i],
  ['EIO', /Input\/output error/i],
  ['EROFS', /Read-only file system/i],
  ['EACCES', /Permission denied/i],
  ['EPERM', /Operation not permitted/i],
];

/** Which failure of the file system `err` (or one of its causes) is, if a known one. */
export function ioErrno(err: unknown): IoErrno | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; depth++, e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    const known = ERRNO_TEXT.find(([name]) => name === code);
    if (known) return known[0];
  }
  const detail = errorDetail(err);
  return ERRNO_TEXT.find(([, text]) => text.test(detail))?.[0];
}

/** A StorageError 'io' whose `errno` says which failure of the file system it was, if known. */
export class StorageIoError extends StorageError {
  readonly errno: IoErrno | undefined;

  constructor(dataDir: string, message: string, errno: IoErrno | undefined, cause: unknown) {
    super('io', dataDir, message, cause);
    this.errno = errno;
  }
}

/**
 * A read or write of the data dir failed. A full disk (or quota) and a disk
 * error are said plainly, with what to do; a member whose write failed stops
 * (fail-stop), so the message also says why it does.
 */
export function ioError(dataDir: string, doing: string, cause: unknown): StorageIoError {
  const errno = ioErrno(cause);
  const failed = `${doing} in data dir ${dataDir} failed (${errorDetail(cause)})`;
  const stops = 'the member stops so that it never acknowledges a write it could not store';
  let message: string;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    message =
      `disk full: ${failed}: free space in ${dataDir} (or raise the quota), or move the data ` +
      `dir to a larger disk, then start the member again; ${stops}`;
  } else if (errno === 'EIO') {
    message =
      `disk error: ${failed}: check the disk (the kernel log, dmesg; SMART); if it is failing, ` +
      `remove this member and add it back with an empty data dir on another disk; ${stops}`;
  } else if (errno === 'EROFS') {
    message =
      `read-only file system: ${failed}: the file system under ${dataDir} is mounted read-only ` +
      `(the kernel may have remounted it after disk errors: check dmesg); ${stops}`;
  } else if (errno === 'EACCES' || errno === 'EPERM') {
    message =
      `permission denied: ${failed}: make ${dataDir} and its files writable by the user ` +
      'raftkv runs as, then start the member again';
  } else {
    message =
      `${failed}: check that the disk is not full, that the directory is writable by this ` +
      'user, and restart the node';
  }
  return new StorageIoError(dataDir, message, errno, cause);
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
