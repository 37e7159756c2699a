/** Stable codes for the errors the Raft core reports to its caller. */
export type RaftErrorCode =
  | 'compacted' // the requested index is before the first available entry
  | 'unavailable' // the requested index is past the last entry
  | 'snapshot_out_of_date'
  | 'not_leader'
  | 'proposal_dropped' // e.g. during a leadership transfer, or a conf change while one is pending
  | 'invariant'; // a broken internal invariant: stop the node

export class RaftError extends Error {
  readonly code: RaftErrorCode;
  constructor(code: RaftErrorCode, message: string) {
    super(message);
    this.name = 'RaftError';
    this.code = code;
  }
}

/** Assertions stay on in production: a Raft node that broke an invariant must stop, not limp on. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new RaftError('invariant', message);
}
