import type { MemberRecord } from '../storage/index.js';

/**
 * Entries the server applies itself rather than the KV state machine. Their
 * data starts with the byte 0x01, which no KV command (a JSON object, '{')
 * starts with, so telling them apart costs one byte comparison.
 */
export const SERVER_COMMAND_TAG = 0x01;

export type ServerCommand = { type: 'memberAttributes'; id: string; clientUrls: string[] };

export function isServerCommand(data: Uint8Array): boolean {
  return data.byteLength > 0 && data[0] === SERVER_COMMAND_TAG;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A Raft snapshot of a node: the KV state machine and the member table (a
 * new member learns peers' addresses from it). Versioned JSON header + KV bytes.
 */
export function encodeNodeSnapshot(
  kv: Uint8Array,
  members: MemberRecord[],
  removed: string[] = [],
): Uint8Array {
  // `removed` is a later field: a reader that does not know it reads the rest as before.
  const header = encoder.encode(JSON.stringify({ v: 1, members, removed }));
  const out = new Uint8Array(4 + header.byteLength + kv.byteLength);
  new DataView(out.buffer).setUint32(0, header.byteLength);
  out.set(header, 4);
  out.set(kv, 4 + header.byteLength);
  return out;
}

export function decodeNodeSnapshot(data: Uint8Array): {
  kv: Uint8Array;
  members: MemberRecord[];
  removed: string[];
} {
  if (data.byteLength === 0) return { kv: data, members: [], removed: [] };
  if (data.byteLength < 4) throw new Error('snapshot too short');
  const headerBytes = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
  if (4 + headerBytes > data.byteLength) throw new Error('snapshot header truncated');
  const header = JSON.parse(decoder.decode(data.subarray(4, 4 + headerBytes))) as {
    v: number;
    members: MemberRecord[];
    removed?: unknown;
  };
  if (header.v !== 1)
    throw new Error(`snapshot format ${header.v} is newer than this raftkv understands`);
  const removed = Array.isArray(header.removed)
    ? header.removed.filter((id): id is string => typeof id === 'string')
    : [];
  return { kv: data.subarray(4 + headerBytes), members: header.members, removed };
}

export function encodeServerCommand(cmd: ServerCommand): Uint8Array {
  const body = encoder.encode(JSON.stringify(cmd));
  const out = new Uint8Array(body.byteLength + 1);
  out[0] = SERVER_COMMAND_TAG;
  out.set(body, 1);
  return out;
}

export function decodeServerCommand(data: Uint8Array): ServerCommand | undefined {
  try {
    return JSON.parse(decoder.decode(data.subarray(1))) as ServerCommand;
  } catch {
    return undefined;
  }
}
