/**
 * A transfer moves cents between two accounts in ONE raftkv txn:
 *
 *   compare  from.modRevision == what we read     (nobody changed it since we
 *            to.modRevision   == what we read      checked the funds)
 *            transfer record  version == 0        (this id never applied)
 *   success  put from = from − amount, put to = to + amount, put the record
 *   failure  get the record                       (was it applied already?)
 *
 * All three puts land in one revision or none does, so money is never lost
 * or made, and the funds check holds at the revision the debit lands in, so
 * no account is overdrawn. A false compare means someone else got there
 * first: read again and retry, a bounded number of times, with backoff.
 *
 * Exactly once: the client names each transfer (its Idempotency-Key on POST
 * /transfers), and the record under that id is the proof it was applied. A
 * retried POST — after a client timeout, a 504, an instance that died —
 * finds the record and answers with it instead of moving money again,
 * whichever instance it reaches and however late.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { readAccount } from './accounts.js';
import { BankError, fromRaftkv } from './errors.js';
import { accountKey, transferKey } from './keys.js';
import { type Cents, encodeCents } from './money.js';
import { type Client, isNotFound } from './raftkv.js';
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
    // Read after the balances: if they already show this transfer, so does this read,
    // so "insufficient funds" below is never said of a transfer that in fact landed.
    const earlier = await readTransfer(client, request.id);
    if (earlier) return replay(earlier.transfer, earlier.revision, request);
    if (from.account.balanceCents < request.amountCents)
      throw new BankError(
        'insufficient_funds',
        `account ${request.from} holds ${from.account.balanceCents} cents, ${request.amountCents} asked`,
      );
    const record: TransferRecord = { ...request, instance };
    const fromKey = accountKey(request.from);
    const toKey = accountKey(request.to);
    const recordKey = transferKey(request.id);
    let res: Awaited<ReturnType<Client['txn']>>;
    try {
      res = await client.txn(
        {
          compare: [
            { key: fromKey, target: 'modRevision', op: '==', value: from.account.modRevision },
            { key: toKey, target: 'modRevision', op: '==', value: to.account.modRevision },
            { key: recordKey, target: 'version', op: '==', value: 0 },
          ],
          success: [
            {
              op: 'put',
              key: fromKey,
              value: encodeCents(from.account.balanceCents - request.amountCents),
            },
            {
              op: 'put',
              key: toKey,
              value: encodeCents(to.account.balanceCents + request.amountCents),
            },
            { op: 'put', key: recordKey, value: JSON.stringify(record) },
          ],
          failure: [{ op: 'get', key: recordKey }],
        },
        // The same id and the same balances always make the same txn body, so the
        // client library's retries of this txn (after a 504 or a failover) are
        // answered with the first attempt's result instead of being judged again.
        {
          idempotencyKey: `tsbank/${request.id}/${from.account.modRevision}/${to.account.modRevision}`,
        },
      );
    } catch (err) {
      throw fromRaftkv(err, true);
    }
    if (res.succeeded) return { transfer: record, revision: res.revision, replayed: false };
    const got = res.results[0];
    const kv = got?.op === 'get' ? got.kvs[0] : undefined;
    if (kv) return replay(decodeTransfer(kv.value, kv.key), kv.modRevision, request);
    // A balance moved under us: read again.
  }
  throw new BankError(
    'busy',
    `transfer ${request.id} lost the race for its accounts ${retry.attemptsMax} times; not applied, retry later`,
  );
}

/** The transfer with this id, if it was applied. */
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

/** An applied transfer answering a retry: only if the retry asks for the same thing. */
function replay(done: TransferRecord, revision: number, request: TransferRequest): TransferResult {
  if (
    done.from !== request.from ||
    done.to !== request.to ||
    done.amountCents !== request.amountCents
  )
    throw new BankError(
      'idempotency_key_reused',
      `transfer ${request.id} was applied with other accounts or another amount`,
    );
  return { transfer: done, revision, replayed: true };
}

/** Exponential, capped, with full jitter so that racing instances spread out. */
function backoff(retry: RetryPolicy, attempt: number): number {
  const cap = Math.min(retry.backoffMaxMs, retry.backoffMs * 2 ** (attempt - 1));
  return Math.random() * cap;
}
