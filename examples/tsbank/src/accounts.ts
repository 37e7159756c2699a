/**
 * Accounts: open, balance, list. A balance is one raftkv key holding cents;
 * its modRevision is what transfers compare on.
 */
import { BankError, fromRaftkv } from './errors.js';
import { ACCOUNTS_PREFIX, accountIdOf, accountKey, createdKey, isValidId } from './keys.js';
import { type Cents, decodeCents, encodeCents } from './money.js';
import { type Client, isNotFound, type KeyValue } from './raftkv.js';
import { readRange } from './range.js';

export interface Account {
  id: string;
  balanceCents: Cents;
  /** The revision of the balance's last change: a transfer's compare. */
  modRevision: number;
}

export function accountOf(kv: KeyValue): Account {
  return {
    id: accountIdOf(kv.key),
    balanceCents: decodeCents(kv.value, kv.key),
    modRevision: kv.modRevision,
  };
}

export function checkAccountId(id: unknown, field = 'account'): string {
  if (typeof id !== 'string' || !isValidId(id))
    throw new BankError('invalid_request', `${field} must be 1 to 64 of A-Z a-z 0-9 . _ -`);
  return id;
}

/**
 * Opens `id` with a deposit of `initialCents`, in one txn with its "money
 * created" record, so the audit's books always balance. The txn only runs if
 * the account does not exist yet (version 0), so two instances opening the
 * same id cannot both create money.
 */
export async function openAccount(
  client: Client,
  id: string,
  initialCents: Cents,
): Promise<{ account: Account; revision: number }> {
  const key = accountKey(id);
  let res: Awaited<ReturnType<Client['txn']>>;
  try {
    res = await client.txn(
      {
        compare: [{ key, target: 'version', op: '==', value: 0 }],
        success: [
          { op: 'put', key, value: encodeCents(initialCents) },
          { op: 'put', key: createdKey(id), value: encodeCents(initialCents) },
        ],
      },
      // A retry of this call (by the client library, after a 504) gets the first answer.
      { idempotencyKey: `tsbank/open/${id}/${initialCents}` },
    );
  } catch (err) {
    throw fromRaftkv(err, true);
  }
  if (!res.succeeded) throw new BankError('account_exists', `account ${id} already exists`);
  const put = res.results[0];
  if (put?.op !== 'put') throw new Error('open: the txn did not answer its put');
  return { account: accountOf(put.kv), revision: res.revision };
}

/** The balance now (a linearizable read). */
export async function readAccount(
  client: Client,
  id: string,
): Promise<{ account: Account; revision: number }> {
  try {
    const { kv, revision } = await client.get(accountKey(id));
    return { account: accountOf(kv), revision };
  } catch (err) {
    if (isNotFound(err)) throw new BankError('account_not_found', `no account ${id}`);
    throw fromRaftkv(err, false);
  }
}

/** Every account, all at one revision. */
export async function listAccounts(
  client: Client,
): Promise<{ accounts: Account[]; revision: number }> {
  try {
    const { kvs, revision } = await readRange(client, ACCOUNTS_PREFIX);
    return { accounts: kvs.map(accountOf), revision };
  } catch (err) {
    throw fromRaftkv(err, false);
  }
}
