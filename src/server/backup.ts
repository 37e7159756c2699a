import { crc32 } from '../kv/crc32.js';

/**
 * The file `GET /v1/snapshot` serves and `raftkv restore` reads: the KV state
 * machine as of one applied index, with a header saying where it came from.
 *
 *   "RAFTKVBK" | u32 header length | header (JSON) | u32 state length | state | u32 CRC-32 of all before
 *
 * The member table is not in it: a restore founds a new cluster with the
 * members its command line names, as `etcdctl snapshot restore` does.
 */
export interface BackupHeader {
  /** File format version. */
  v: 1;
  clusterId: string;
  /** The member that wrote it. */
  memberId: string;
  appliedIndex: number;
  revision: number;
  compactRevision: number;
  /** ISO 8601. */
  takenAt: string;
}

export interface Backup {
  header: BackupHeader;
  /** KvStateMachine.snapshot() bytes. */
  state: Uint8Array;
}

const MAGIC = new TextEncoder().encode('RAFTKVBK');

export class BackupError extends Error {
  override readonly name = 'BackupError';
}

export function encodeBackup({ header, state }: Backup): Uint8Array {
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(MAGIC.length + 4 + headerBytes.length + 4 + state.length + 4);
  const view = new DataView(out.buffer);
  let at = 0;
  const put = (bytes: Uint8Array) => {
    view.setUint32(at, bytes.length);
    out.set(bytes, at + 4);
    at += 4 + bytes.length;
  };
  out.set(MAGIC, 0);
  at = MAGIC.length;
  put(headerBytes);
  put(state);
  view.setUint32(at, crc32(out, at));
  return out;
}

/** Throws BackupError saying what is wrong with `bytes`. */
export function decodeBackup(bytes: Uint8Array): Backup {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (n: number, what: string) => {
    if (bytes.length < n) throw new BackupError(`truncated: the file ends inside the ${what}`);
  };
  need(MAGIC.length, 'file type marker');
  if (!MAGIC.every((b, i) => bytes[i] === b)) {
    throw new BackupError('not a raftkv backup (it does not start with RAFTKVBK)');
  }
  let at = MAGIC.length;
  need(at + 4, 'header length');
  const headerLength = view.getUint32(at);
  at += 4;
  need(at + headerLength + 4, 'header');
  const headerBytes = bytes.subarray(at, at + headerLength);
  at += headerLength;
  const stateLength = view.getUint32(at);
  at += 4;
  need(at + stateLength + 4, 'state');
  const state = bytes.subarray(at, at + stateLength);
  at += stateLength;
  if (bytes.length !== at + 4) throw new BackupError('unexpected bytes after the checksum');
  if (view.getUint32(at) !== crc32(bytes, at)) {
    throw new BackupError('checksum mismatch: the file is damaged');
  }
  let header: BackupHeader;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch {
    throw new BackupError('the header is not valid JSON');
  }
  if (header?.v !== 1) {
    throw new BackupError(`backup format ${String(header?.v)} is not one this raftkv reads (1)`);
  }
  return { header, state };
}
