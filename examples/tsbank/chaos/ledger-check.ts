/**
 * The chaos run's verdict: raftkv's history of every bank key, replayed
 * revision by revision from the very first, must tell a story in which
 *
 * 1. every revision that changes a balance carries exactly one reason — an
 *    opening, a transfer or a night of interest — and changes the balances
 *    by exactly what that reason says (nothing else moves);
 * 2. no balance is below zero at any revision;
 * 3. each transfer id is decided once (its record written once), every
 *    transfer a client was told "done" is applied exactly once, as asked, at
 *    the revision it was told, and every one it was told "insufficient
 *    funds" moved nothing;
 * 4. nights are paid in order, each exactly once, each under a fencing token
 *    no older than the last one used (a stale leader never wrote), and every
 *    night due by the end was paid;
 * 5. money is conserved: balances = money created + interest paid, at the end
 *    and in the bank's own /audit answer at its revision;
 * 6. every balance a live stream (/accounts/:id/live) reported is the one the
 *    history holds at the revision it was reported for.
 */
import type { AuditReport } from '../src/audit.js';
import {
  ACCOUNTS_PREFIX,
  BOOKS_PREFIX,
  CREATED_PREFIX,
  NIGHTS_PREFIX,
  TRANSFERS_PREFIX,
} from '../src/keys.js';
import { interestCents } from '../src/money.js';
import {
  type BankConfig,
  decodeNight,
  decodeTransfer,
  type NightRecord,
  type TransferRecord,
} from '../src/records.js';
import type { Change } from './history.js';
import type { LiveObservation } from './live-watch.js';
import type { TransferLog } from './traffic.js';

export interface LedgerInput {
  config: BankConfig;
  changes: Change[];
  transfers: Iterable<TransferLog>;
  live: LiveObservation[];
  audit: AuditReport;
  dueNightAtEnd: number;
}

export interface LedgerFigures {
  revisionsReplayed: number;
  accounts: number;
  createdCents: number;
  interestCents: number;
  expectedTotalCents: number;
  totalCents: number;
  lowestBalanceCents: number;
  transferRecords: { applied: number; refused: number };
  acknowledgedAppliedOnce: number;
  unknownApplied: number;
  unknownNotApplied: number;
  nightsPaid: number;
  lastNight: number;
  dueNightAtEnd: number;
  nightsByInstance: Record<string, number>;
  fencingTokens: number;
  liveChecked: number;
}

export interface LedgerVerdict {
  figures: LedgerFigures;
  violations: string[];
}

interface Puts {
  accounts: Map<string, { cents: number; version: number }>;
  created: { id: string; cents: number; version: number }[];
  transfers: { record: TransferRecord; version: number }[];
  nights: { record: NightRecord; version: number }[];
}

export function checkLedger(input: LedgerInput): LedgerVerdict {
  const ledger = new Ledger(input.config);
  for (const change of input.changes) {
    ledger.replay(change);
    if (change.revision <= input.audit.revision) ledger.markAudit();
  }
  ledger.checkAudit(input.audit);
  ledger.checkClients(input.transfers);
  ledger.checkNightsDue(input.dueNightAtEnd);
  ledger.checkLive(input.live);
  return {
    figures: ledger.figures(input.changes.length, input.dueNightAtEnd),
    violations: ledger.violations,
  };
}

class Ledger {
  readonly violations: string[] = [];
  private readonly balances = new Map<string, number>();
  /** Per account, each balance it has had and the revision it got it at. */
  private readonly timeline = new Map<string, { revision: number; cents: number }[]>();
  private created = 0;
  private interest = 0;
  private lowest = Number.POSITIVE_INFINITY;
  private readonly decided = new Map<string, { record: TransferRecord; revision: number }>();
  private lastNight = 0;
  private lastToken = 0;
  private readonly tokens = new Set<number>();
  private readonly nightsByInstance: Record<string, number> = {};
  private atAudit = { total: 0, created: 0, interest: 0 };
  private acknowledgedAppliedOnce = 0;
  private unknownApplied = 0;
  private unknownNotApplied = 0;
  private liveChecked = 0;

  constructor(private readonly config: BankConfig) {}

  replay(change: Change): void {
    const r = change.revision;
    const puts = this.collect(change);
    const reasons = puts.created.length + puts.transfers.length + puts.nights.length;
    if (reasons > 1)
      this.violation(
        `revision ${r} carries ${reasons} reasons to change balances (one txn, one reason)`,
      );
    else if (puts.created.length === 1) this.open(r, puts.created[0]!, puts.accounts);
    else if (puts.transfers.length === 1) this.transfer(r, puts.transfers[0]!, puts.accounts);
    else if (puts.nights.length === 1) this.night(r, puts.nights[0]!, puts.accounts);
    else if (puts.accounts.size > 0)
      this.violation(
        `revision ${r} changes ${[...puts.accounts.keys()].join(', ')} without an opening, a transfer or interest`,
      );
    for (const [id, { cents }] of puts.accounts) {
      this.balances.set(id, cents);
      const line = this.timeline.get(id) ?? [];
      line.push({ revision: r, cents });
      this.timeline.set(id, line);
      this.lowest = Math.min(this.lowest, cents);
      if (cents < 0) this.violation(`account ${id} is at ${cents} cents at revision ${r}`);
    }
  }

  markAudit(): void {
    this.atAudit = { total: this.total(), created: this.created, interest: this.interest };
  }

  checkAudit(audit: AuditReport): void {
    if (!audit.balanced)
      this.violation(
        `the bank's own /audit says the books do not balance: ${JSON.stringify(audit)}`,
      );
    const { total, created, interest } = this.atAudit;
    if (
      audit.balancesCents !== total ||
      audit.createdCents !== created ||
      audit.interestCents !== interest
    )
      this.violation(
        `/audit at revision ${audit.revision} says balances ${audit.balancesCents}, created ${audit.createdCents}, interest ${audit.interestCents}; the history says ${total}, ${created}, ${interest}`,
      );
    const end = this.total();
    if (end !== this.created + this.interest)
      this.violation(
        `money is not conserved: balances sum to ${end} cents, but ${this.created} were created and ${this.interest} paid as interest`,
      );
  }

  checkClients(transfers: Iterable<TransferLog>): void {
    const sent = new Map<string, TransferLog>();
    for (const log of transfers) {
      sent.set(log.id, log);
      const done = this.decided.get(log.id);
      const applied = done?.record.status === 'applied';
      const sameAsAsked =
        done !== undefined &&
        done.record.from === log.from &&
        done.record.to === log.to &&
        done.record.amountCents === log.amountCents;
      if (done && !sameAsAsked)
        this.violation(
          `transfer ${log.id} was decided for other accounts or another amount than asked`,
        );
      switch (log.outcome) {
        case 'acknowledged':
          if (!applied)
            this.violation(
              `transfer ${log.id} was acknowledged to its client but ${done ? 'refused' : 'never applied'}`,
            );
          else if (log.revision !== done!.revision)
            this.violation(
              `transfer ${log.id} was acknowledged at revision ${log.revision} but applied at ${done!.revision}`,
            );
          else this.acknowledgedAppliedOnce += 1;
          break;
        case 'refused':
          if (applied)
            this.violation(
              `transfer ${log.id}: its client was told "insufficient funds", yet it was applied at revision ${done!.revision}`,
            );
          else if (!done)
            this.violation(`transfer ${log.id} was refused without its refusal being recorded`);
          break;
        case 'rejected':
          this.violation(`transfer ${log.id} was rejected as a bad request: ${log.detail ?? ''}`);
          break;
        case 'unknown':
          if (applied) this.unknownApplied += 1;
          else this.unknownNotApplied += 1;
          break;
      }
    }
    for (const [id, { revision }] of this.decided)
      if (!sent.has(id))
        this.violation(`transfer ${id} at revision ${revision} was never sent by a client`);
  }

  checkNightsDue(dueNightAtEnd: number): void {
    if (this.lastNight < dueNightAtEnd)
      this.violation(
        `nights 1 to ${dueNightAtEnd} were due by the end, only nights up to ${this.lastNight} were paid`,
      );
  }

  checkLive(live: LiveObservation[]): void {
    for (const seen of live) {
      this.liveChecked += 1;
      const cents = this.balanceAt(seen.account, seen.revision);
      if (cents !== seen.balanceCents)
        this.violation(
          `a live stream said ${seen.account} held ${seen.balanceCents} cents at revision ${seen.revision}; the history says ${cents}`,
        );
    }
  }

  figures(revisionsReplayed: number, dueNightAtEnd: number): LedgerFigures {
    const records = [...this.decided.values()];
    return {
      revisionsReplayed,
      accounts: this.balances.size,
      createdCents: this.created,
      interestCents: this.interest,
      expectedTotalCents: this.created + this.interest,
      totalCents: this.total(),
      lowestBalanceCents: Number.isFinite(this.lowest) ? this.lowest : 0,
      transferRecords: {
        applied: records.filter((d) => d.record.status === 'applied').length,
        refused: records.filter((d) => d.record.status === 'refused').length,
      },
      acknowledgedAppliedOnce: this.acknowledgedAppliedOnce,
      unknownApplied: this.unknownApplied,
      unknownNotApplied: this.unknownNotApplied,
      nightsPaid: this.lastNight,
      lastNight: this.lastNight,
      dueNightAtEnd,
      nightsByInstance: this.nightsByInstance,
      fencingTokens: this.tokens.size,
      liveChecked: this.liveChecked,
    };
  }

  private collect(change: Change): Puts {
    const puts: Puts = { accounts: new Map(), created: [], transfers: [], nights: [] };
    for (const { type, kv } of change.events) {
      if (type === 'delete') {
        if (kv.key.startsWith(BOOKS_PREFIX) || kv.key.startsWith(TRANSFERS_PREFIX))
          this.violation(`${kv.key} was deleted at revision ${change.revision}`);
        continue;
      }
      if (kv.key.startsWith(ACCOUNTS_PREFIX))
        puts.accounts.set(kv.key.slice(ACCOUNTS_PREFIX.length), {
          cents: signedCents(kv.value, kv.key),
          version: kv.version,
        });
      else if (kv.key.startsWith(CREATED_PREFIX))
        puts.created.push({
          id: kv.key.slice(CREATED_PREFIX.length),
          cents: signedCents(kv.value, kv.key),
          version: kv.version,
        });
      else if (kv.key.startsWith(TRANSFERS_PREFIX))
        puts.transfers.push({ record: decodeTransfer(kv.value, kv.key), version: kv.version });
      else if (kv.key.startsWith(NIGHTS_PREFIX))
        puts.nights.push({ record: decodeNight(kv.value, kv.key), version: kv.version });
    }
    return puts;
  }

  private open(r: number, created: Puts['created'][number], accounts: Puts['accounts']): void {
    const put = accounts.get(created.id);
    if (created.version !== 1 || this.balances.has(created.id))
      this.violation(`account ${created.id} was opened again at revision ${r}`);
    if (put?.version !== 1 || put.cents !== created.cents || accounts.size !== 1)
      this.violation(
        `revision ${r} opens ${created.id} with ${created.cents} cents but changes balances otherwise`,
      );
    this.created += created.cents;
  }

  private transfer(r: number, t: Puts['transfers'][number], accounts: Puts['accounts']): void {
    const { record } = t;
    if (t.version !== 1 || this.decided.has(record.id)) {
      const first = this.decided.get(record.id);
      this.violation(
        `transfer ${record.id} was decided twice: at revision ${first?.revision ?? '?'} and again at ${r}`,
      );
    }
    if (!this.decided.has(record.id)) this.decided.set(record.id, { record, revision: r });
    const from = this.balances.get(record.from);
    const to = this.balances.get(record.to);
    if (record.status === 'refused') {
      if (accounts.size > 0)
        this.violation(`refused transfer ${record.id} moved money at revision ${r}`);
      if (from !== undefined && from >= record.amountCents)
        this.violation(
          `transfer ${record.id} was refused at revision ${r} though ${record.from} held ${from} cents`,
        );
      return;
    }
    const fromPut = accounts.get(record.from);
    const toPut = accounts.get(record.to);
    if (from === undefined || to === undefined || !fromPut || !toPut || accounts.size !== 2) {
      this.violation(
        `transfer ${record.id} at revision ${r} does not change exactly its two accounts`,
      );
      return;
    }
    if (fromPut.cents !== from - record.amountCents || toPut.cents !== to + record.amountCents)
      this.violation(
        `transfer ${record.id} of ${record.amountCents} at revision ${r} took ${record.from} from ${from} to ${fromPut.cents} and ${record.to} from ${to} to ${toPut.cents}`,
      );
  }

  private night(r: number, n: Puts['nights'][number], accounts: Puts['accounts']): void {
    const { record } = n;
    if (n.version !== 1)
      this.violation(`night ${record.night} was paid twice (again at revision ${r})`);
    if (record.night !== this.lastNight + 1)
      this.violation(
        `night ${record.night} was paid at revision ${r} after night ${this.lastNight}: each night once, in order`,
      );
    if (record.fencingToken < this.lastToken)
      this.violation(
        `night ${record.night} was paid at revision ${r} under fencing token ${record.fencingToken}, older than token ${this.lastToken} already used: a stale leader wrote`,
      );
    if (record.rateBp !== this.config.rateBp)
      this.violation(
        `night ${record.night} used rate ${record.rateBp} bp, the bank's is ${this.config.rateBp}`,
      );
    let total = 0;
    for (const [id, paid] of Object.entries(record.paidCents)) {
      const before = this.balances.get(id);
      const put = accounts.get(id);
      const due = before === undefined ? undefined : interestCents(before, this.config.rateBp);
      if (due === undefined || paid !== due)
        this.violation(
          `night ${record.night} paid ${id} ${paid} cents at revision ${r}; ${before} cents earn ${due}`,
        );
      const after = put?.cents ?? before;
      if (before !== undefined && after !== before + paid)
        this.violation(
          `night ${record.night} took ${id} from ${before} to ${after} cents, paying ${paid}`,
        );
      total += paid;
    }
    for (const id of accounts.keys())
      if (!(id in record.paidCents))
        this.violation(
          `night ${record.night} changed ${id} at revision ${r} without paying it interest`,
        );
    if (total !== record.totalCents)
      this.violation(
        `night ${record.night} says it paid ${record.totalCents} cents in all, its accounts got ${total}`,
      );
    this.interest += record.totalCents;
    this.lastNight = Math.max(this.lastNight, record.night);
    this.lastToken = Math.max(this.lastToken, record.fencingToken);
    this.tokens.add(record.fencingToken);
    this.nightsByInstance[record.instance] = (this.nightsByInstance[record.instance] ?? 0) + 1;
  }

  private balanceAt(account: string, revision: number): number | undefined {
    let found: number | undefined;
    for (const step of this.timeline.get(account) ?? []) {
      if (step.revision > revision) break;
      found = step.cents;
    }
    return found;
  }

  private total(): number {
    let sum = 0;
    for (const cents of this.balances.values()) sum += cents;
    return sum;
  }

  private violation(text: string): void {
    this.violations.push(text);
  }
}

/** Cents as stored, but a minus sign is read too: the check must see a negative, not choke on it. */
function signedCents(text: string, key: string): number {
  if (!/^-?[0-9]+$/.test(text)) throw new Error(`${key} holds ${JSON.stringify(text)}, not cents`);
  return Number(text);
}
