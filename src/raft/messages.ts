/**
 * The vocabulary of the Raft core: entries, persistent state, snapshots and
 * messages. Plain data only, so that every layer above can encode it as it likes.
 */

/** Member ids are strings (API.md: no 53-bit precision games). */
export type NodeId = string;

/** "No node": no leader known, no vote cast. */
export const NONE: NodeId = '';

export type EntryType = 'normal' | 'confChange';

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque to Raft for normal entries; an encoded ConfChange for confChange entries. Empty = no-op. */
  data: Uint8Array;
}

/** What must be on stable storage before any message that depends on it is sent. */
export interface HardState {
  term: number;
  /** Candidate voted for in `term`, or NONE. */
  vote: NodeId;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** The application's state at metadata.index, opaque to Raft. */
  data: Uint8Array;
}

export type ConfChangeType = 'addNode' | 'addLearner' | 'removeNode';

/**
 * One membership change at a time (Raft dissertation §4.1). `addNode` on a
 * learner promotes it. `context` carries what the application needs to reach
 * the member (its URLs); Raft does not look inside.
 */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  context?: string;
}

export type MessageType =
  // Local inputs, never sent on the wire.
  | 'hup' // start an election
  | 'beat' // leader: send heartbeats
  | 'checkQuorum' // leader: step down unless a quorum was heard from
  | 'prop' // proposal; a follower refuses it (the server forwards to the leader over HTTP)
  | 'unreachable'
  | 'snapStatus'
  // Wire messages.
  | 'app'
  | 'appResp'
  | 'vote'
  | 'voteResp'
  | 'preVote'
  | 'preVoteResp'
  | 'snap'
  | 'heartbeat'
  | 'heartbeatResp'
  | 'readIndex'
  | 'readIndexResp'
  | 'timeoutNow'
  | 'transferLeader';

export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** app: term of the entry at `index`. vote/preVote: term of the candidate's last entry. appResp reject: hint term. */
  logTerm: number;
  /** app: index of the entry preceding `entries`. appResp: last index matched (or rejected index). */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** appResp reject: the follower's hint of where the logs may agree (fast backtracking). */
  rejectHint: number;
  snapshot?: Snapshot;
  /** heartbeat/heartbeatResp: the leader's ReadIndex confirmation round. */
  readRound?: number;
  /** readIndex/readIndexResp: the requester's context, echoed back. */
  readCtx?: string;
  /** vote: this election was started by a leadership transfer, so leader leases are ignored. */
  transfer?: boolean;
}

export function message(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...fields,
  };
}

export function isLocalMessage(type: MessageType): boolean {
  return (
    type === 'hup' ||
    type === 'beat' ||
    type === 'checkQuorum' ||
    type === 'prop' ||
    type === 'unreachable' ||
    type === 'snapStatus'
  );
}

export function isResponseMessage(type: MessageType): boolean {
  return (
    type === 'appResp' ||
    type === 'voteResp' ||
    type === 'preVoteResp' ||
    type === 'heartbeatResp' ||
    type === 'readIndexResp'
  );
}

/** Approximate payload size, for bounding messages and batches. */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength + 24;
}

export function entriesSizeBytes(entries: readonly Entry[]): number {
  let sizeBytes = 0;
  for (const e of entries) sizeBytes += entrySizeBytes(e);
  return sizeBytes;
}

/** A linearizable read point handed to the application: once `index` is applied, serve reads for `ctx`. */
export interface ReadState {
  index: number;
  ctx: string;
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
