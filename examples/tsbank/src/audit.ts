/**
 * GET /audit: do the books balance? Every balance, every opening deposit and
 * every night of interest sit under one prefix (keys.ts), read in a single
 * linearizable range read, so they are all seen at one revision: no transfer
 * can be half-counted, whatever runs meanwhile.
 *
 *   sum(balances) == sum(money created by openings) + sum(interest paid)
 */
import { accountOf } from './accounts.js';
import { fromRaftkv } from './errors.js';
import { ACCOUNTS_PREFIX, BOOKS_PREFIX, CREATED_PREFIX, NIGHTS_PREFIX } from './keys.js';
import { addCents, type Cents, decodeCents } from './money.js';
import type { Client } from './raftkv.js';
import { readRange } from './range.js';
import { decodeNight } from './records.js';

export interface AuditReport {
  revision: number;
  accounts: number;
  balancesCents: Cents;
  createdCents: Cents;
  interestCents: Cents;
  nightsPaid: number;
  lastNight: number;
  /** Accounts whose balance is below zero (there must be none). */
  negative: string[];
  balanced: boolean;
}

export async function audit(client: Client): Promise<AuditReport> {
  let books: Awaited<ReturnType<typeof readRange>>;
  try {
    books = await readRange(client, BOOKS_PREFIX);
  } catch (err) {
    throw fromRaftkv(err, false);
  }
  const report: AuditReport = {
    revision: books.revision,
    accounts: 0,
    balancesCents: 0,
    createdCents: 0,
    interestCents: 0,
    nightsPaid: 0,
    lastNight: 0,
    negative: [],
    balanced: false,
  };
  for (const kv of books.kvs) {
    if (kv.key.startsWith(ACCOUNTS_PREFIX)) {
      const account = accountOf(kv);
      report.accounts += 1;
      report.balancesCents = addCents(report.balancesCents, account.balanceCents);
      if (account.balanceCents < 0) report.negative.push(account.id);
    } else if (kv.key.startsWith(CREATED_PREFIX)) {
      report.createdCents = addCents(report.createdCents, decodeCents(kv.value, kv.key));
    } else if (kv.key.startsWith(NIGHTS_PREFIX)) {
      const night = decodeNight(kv.value, kv.key);
      report.interestCents = addCents(report.interestCents, night.totalCents);
      report.nightsPaid += 1;
      report.lastNight = Math.max(report.lastNight, night.night);
    }
  }
  report.balanced =
    report.negative.length === 0 &&
    report.balancesCents === report.createdCents + report.interestCents;
  return report;
}
