/**
 * TSBank's errors: one class with a stable code, and one table from code to
 * HTTP status, so every route answers a failure the same way:
 * `{"error": {"code", "message"}}`.
 *
 * As in raftkv's API, every code means "nothing was applied" except
 * `outcome_unknown` (504): retry the same request with the same
 * Idempotency-Key and the bank answers with what happened.
 */
import { isRaftkvError } from './raftkv.js';

export type BankErrorCode =
  | 'invalid_request'
  | 'account_not_found'
  | 'account_exists'
  | 'transfer_not_found'
  | 'insufficient_funds'
  | 'idempotency_key_reused'
  | 'busy'
  | 'unavailable'
  | 'outcome_unknown';

const statusOf: Record<BankErrorCode, number> = {
  invalid_request: 400,
  account_not_found: 404,
  transfer_not_found: 404,
  account_exists: 409,
  insufficient_funds: 409,
  idempotency_key_reused: 422,
  busy: 503,
  unavailable: 503,
  outcome_unknown: 504,
};

export class BankError extends Error {
  readonly code: BankErrorCode;
  constructor(code: BankErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BankError';
    this.code = code;
  }

  get status(): number {
    return statusOf[this.code];
  }
}

/**
 * What a failed raftkv call means for a bank request. The client library
 * already retried and failed over; what is left is either "certainly not
 * applied" (503 here) or, for a write, "may have been applied" (504), which
 * the client reports as `timeout` or as `unavailable` with status 0.
 */
export function fromRaftkv(err: unknown, wasWrite: boolean): BankError {
  if (err instanceof BankError) return err;
  if (isRaftkvError(err)) {
    const unknown = err.code === 'timeout' || (err.code === 'unavailable' && err.status === 0);
    if (wasWrite && unknown)
      return new BankError('outcome_unknown', `raftkv: ${err.message}`, { cause: err });
    return new BankError('unavailable', `raftkv: ${err.message}`, { cause: err });
  }
  return new BankError('unavailable', `raftkv: ${String(err)}`, { cause: err });
}
