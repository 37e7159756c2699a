/**
 * A transfer moves cents between two accounts in ONE raftkv txn:
 *
 *   compare  from.modRevision == what we read     (nobody changed it since we
 *            to.modRevision   == what we read      checked the funds)
 *            transfer record  version == 0        (this id has no outcome yet)
 *   success  put from = from − amount, put to = to + amount, put the record
 *   failure  get the record                       (decided already?)
 *
 * All three puts land in one revision or none does, so money is never lost
 * or made, and the funds check holds at the revision the debit lands in, so
 * no account is overdrawn. A false compare means someone else got there
 * first: read again and retry, a bounded number of times, with backoff.
 *
 * Exactly once: the client names each transfer (its Idempotency-Key on POST
 * /transfers), and the record under that name is its one outcome, written
 * once. A retried POST — after a client timeout, a 504, an instance that
 * died — finds the record and answers with it instead of moving money again,
 * whichever instance it reaches and however late. A refusal for short funds
 * is recorded the same way (in a txn that compares the debited balance), so
 * an earlier attempt of the same transfer still in flight somewhere cannot
 * land after the client was told "no".
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Account, readAccount } from './accounts.js';
import { BankError, fromRaftkv } from './errors.js';
import { accountKey, transferKey } from './keys.js';
import { type Cents, encodeCents } from './money.js';
import { type Client, isNotFound, type TxnOp } from './raftkv.js';
import { decodeTransfer, type TransferRecord } from './records.js';

export interface TransferRequest {
  id: string;
  from: string;
  to: string;
  amountCents: Cents;
}

export interface TransferResult {
  transfer: TransferRecord;
  /** The revision the transfer landed in (for a replay, its record's). */
  revision: number;
  /** True when this request found the transfer already applied. */
  replayed: boolean;
}

/** Bounds on the compare_failed retry loop. */
export interface RetryPolicy {
  attemptsMax: number;
  backoffMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attemptsMax: 16, backoffMs: 5, backoffMaxMs: 200 };

export async function transfer(
  client: Client,
  request: TransferRequest,
  instance: string,
  retry: RetryPolicy = DEFAULT_RETRY,
): Promise<TransferResult> {
  if (request.from === request.to)
    throw new BankError('invalid_request', 'from and to must be different accounts');
  for (let attempt = 0; attempt < retry.attemptsMax; attempt++) {
    if (attempt > 0) await sleep(backoff(retry, attempt));
    const [from, to] = await Promise.all([
      readAccount(client, request.from),
      readAccount(client, request.to),
    ]);
    // Read after the balances: if they already show this transfer, so does this read.
    const earlier = await readTransfer(client, request.id);
    if (earlier) return replay(earlier.transfer, earlier.revision, request);
    const decided =
      from.account.balanceCents < request.amountCents
        ? await decide(client, request, instance, 'refused', from.account)
        : await decide(client, request, instance, 'applied', from.account, to.account);
    if (decided) return decided;
    // A balance moved under us: read again.
  }
  throw new BankError(
    'busy',
    `transfer ${request.id} lost the race for its accounts ${retry.attemptsMax} times; not applied, retry later`,
  );
}

/**
 * Writes the transfer's outcome in one txn guarded by the balances it was
 * decided on: `applied` moves the money, `refused` moves none. Undefined when
 * a balance changed meanwhile (decide again); a replay when the record exists.
 */
async function decide(
  client: Client,
  request: TransferRequest,
  instance: string,
  status: TransferRecord['status'],
  from: Account,
  to?: Account,
): Promise<TransferResult | undefined> {
  const record: TransferRecord = { ...request, status, instance };
  const recordKey = transferKey(request.id);
  const guarded = to ? [from, to] : [from];
  const moves: TxnOp[] = to
    ? [
        {
          op: 'put',
          key: accountKey(from.id),
          value: encodeCents(from.balanceCents - request.amountCents),
        },
        {
          op: 'put',
          key: accountKey(to.id),
          value: encodeCents(to.balanceCents + request.amountCents),
        },
      ]
    : [];
  let res: Awaited<ReturnType<Client['txn']>>;
  try {
    res = await client.txn(
      {
        compare: [
          ...guarded.map((a) => ({
            key: accountKey(a.id),
            target: 'modRevision' as const,
            op: '==' as const,
            value: a.modRevision,
          })),
          { key: recordKey, target: 'version', op: '==', value: 0 },
        ],
        success: [...moves, { op: 'put', key: recordKey, value: JSON.stringify(record) }],
        failure: [{ op: 'get', key: recordKey }],
      },
      // The same id and the same balances always make the same txn body, so the
      // client library's retries of this txn (after a 504 or a failover) are
      // answered with the first attempt's result instead of being judged again.
      {
        idempotencyKey: `tsbank/${request.id}/${guarded.map((a) => a.modRevision).join('/')}`,
      },
    );
  } catch (err) {
    throw fromRaftkv(err, true);
  }
  if (res.succeeded)
    return replayOrResult({ transfer: record, revision: res.revision, replayed: false });
  const got = res.results[0];
  const kv = got?.op === 'get' ? got.kvs[0] : undefined;
  if (kv) return replay(decodeTransfer(kv.value, kv.key), kv.modRevision, request);
  return undefined;
}

/** The transfer with this id, if it was decided. */
export async function readTransfer(
  client: Client,
  id: string,
): Promise<{ transfer: TransferRecord; revision: number } | undefined> {
  try {
    const { kv } = await client.get(transferKey(id));
    return { transfer: decodeTransfer(kv.value, kv.key), revision: kv.modRevision };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw fromRaftkv(err, false);
  }
}

/** A decided transfer answering a retry: only if the retry asks for the same thing. */
function replay(done: TransferRecord, revision: number, request: TransferRequest): TransferResult {
  if (
    done.from !== request.from ||
    done.to !== request.to ||
    done.amountCents !== request.amountCents
  )
    throw new BankError(
      'idempotency_key_reused',
      `transfer ${request.id} was made with other accounts or another amount`,
    );
  return replayOrResult({ transfer: done, revision, replayed: true });
}

/** A refusal is an error to the caller, whether decided now or earlier. */
function replayOrResult(result: TransferResult): TransferResult {
  if (result.transfer.status === 'refused')
    throw new BankError(
      'insufficient_funds',
      `transfer ${result.transfer.id}: account ${result.transfer.from} could not cover ${result.transfer.amountCents} cents (decided at revision ${result.revision})`,
    );
  return result;
}

/** Exponential, capped, with full jitter so that racing instances spread out. */
function backoff(retry: RetryPolicy, attempt: number): number {
  const cap = Math.min(retry.backoffMaxMs, retry.backoffMs * 2 ** (attempt - 1));
  return Math.random() * cap;
}
