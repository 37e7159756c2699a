/**
 * The one error class of the transport. `code` is stable (tests, logs and the
 * peer port's error bodies rely on it); `message` is for humans.
 */
export type TransportErrorCode =
  | 'bad_message' // input that does not decode: garbage, truncated, trailing bytes, unknown tags
  | 'unsupported_version' // a batch whose format version byte this node does not know
  | 'invalid_message' // a Message that cannot be encoded (local type, number not a safe integer)
  | 'too_large' // a body, batch or snapshot beyond the configured limit
  | 'wrong_cluster' // x-raftkv-cluster-id missing or not ours
  | 'wrong_node' // a message addressed to another node id
  | 'member_removed' // the sender was removed from the cluster: it must stop, not retry
  | 'unknown_peer' // no address known for the destination
  | 'unreachable' // the request failed: connection, timeout, or a non-2xx answer
  | 'snapshot_busy' // receiver: no memory budget left for another incomplete snapshot
  | 'snapshot_out_of_order' // receiver: a chunk for an unknown transfer or at an unexpected offset
  | 'closed'; // the transport was closed

/** HTTP status the peer routes answer with, for each code a request can cause. */
export const transportErrorStatus: Readonly<Record<TransportErrorCode, number>> = {
  bad_message: 400,
  unsupported_version: 400,
  invalid_message: 400,
  too_large: 413,
  wrong_cluster: 403,
  wrong_node: 421,
  member_removed: 410,
  unknown_peer: 400,
  unreachable: 502,
  snapshot_busy: 503,
  snapshot_out_of_order: 409,
  closed: 503,
};

export class TransportError extends Error {
  readonly code: TransportErrorCode;
  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransportError';
    this.code = code;
  }
}

export function isTransportError(err: unknown): err is TransportError {
  return err instanceof TransportError;
}
