/**
 * The nightly interest job: one instance at a time pays every account its
 * interest for each night that has fallen due, each night exactly once.
 *
 * Who runs it: the leader of the election `tsbank-interest`. Each instance
 * campaigns with its session lease (membership.ts); the oldest live
 * candidacy leads, and when the leader's lease runs out (it died, froze,
 * or lost raftkv) the next candidate takes over.
 *
 * Why a fence as well: being elected is a belief, and a process can hold it
 * past its truth. An instance frozen (GC pause, SIGSTOP) past its lease TTL
 * wakes up still "leading" while another instance has taken over. So the
 * leader also takes the lock `tsbank-interest` under the same lease, and
 * every payment is a txn fenced by that lock's token: raftkv runs it only
 * while that holder still holds the lock, so the woken ex-leader's writes
 * are refused however late they arrive.
 *
 * One night is ONE txn:
 *   compare  fence (lock, token)
 *            night record version == 0         (nobody paid this night yet)
 *            each account's modRevision == read (the interest is computed from
 *                                               the balances that get it)
 *   success  put each balance + its interest, put the night record
 *   failure  get the night record, get the balances (which guard failed?)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { type Account, accountOf } from './accounts.js';
import {
  ACCOUNTS_PREFIX,
  accountKey,
  INTEREST_ELECTION,
  INTEREST_LOCK,
  NIGHTS_PREFIX,
  nightKey,
} from './keys.js';
import type { Membership, Session } from './membership.js';
import { addCents, encodeCents, interestCents } from './money.js';
import { dueNight } from './nights.js';
import type { Client, Compare, TxnOp } from './raftkv.js';
import { readRange } from './range.js';
import { type BankConfig, decodeNight, type NightRecord } from './records.js';

export interface InterestJobOptions {
  instance: string;
  config: BankConfig;
  log: Logger;
  /** How often the leader looks for a night that fell due. */
  tickMs: number;
}

/** raftkv's default bound on a txn branch is 128 ops; one night is one txn. */
const ACCOUNTS_MAX = 120;
const PAY_ATTEMPTS_MAX = 24;
const CAMPAIGN_TIMEOUT_MS = 5_000;
const LOCK_TIMEOUT_MS = 5_000;

type PayOutcome = 'paid' | 'already_paid' | 'fenced' | 'lost' | 'busy';

export class InterestJob {
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;
  /** Nights this instance paid, for /instances. */
  paidNights = 0;
  leading = false;

  constructor(
    private readonly client: Client,
    private readonly membership: Membership,
    private readonly options: InterestJobOptions,
  ) {}

  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  private async run(): Promise<void> {
    const stopped = this.stopping.signal;
    while (!stopped.aborted) {
      let session: Session;
      try {
        session = await this.membership.session(stopped);
      } catch {
        return; // stopping
      }
      try {
        await this.serve(session);
      } catch (err) {
        if (!stopped.aborted)
          this.options.log.warn({ err: String(err) }, 'interest job interrupted; starting over');
      }
      this.leading = false;
      if (!stopped.aborted)
        await sleep(this.options.tickMs, undefined, { signal: stopped }).catch(() => {});
    }
  }

  /** Campaign, take the fence, and pay nights while this session lasts. */
  private async serve(session: Session): Promise<void> {
    const { instance, log } = this.options;
    const stopped = this.stopping.signal;
    const signal = AbortSignal.any([stopped, abortOn(session.lost)]);
    // 1. Elected: wait in line (each wait bounded; a timed-out candidacy rejoins at the back).
    for (;;) {
      if (signal.aborted || !session.alive) return;
      try {
        await this.client.campaign(INTEREST_ELECTION, {
          lease: session.lease,
          value: instance,
          timeoutMs: CAMPAIGN_TIMEOUT_MS,
          signal,
        });
        break;
      } catch (err) {
        if (signal.aborted) return;
        const code = (err as { code?: string }).code;
        if (code !== 'lock_timeout' && code !== 'timeout') throw err;
      }
    }
    // 2. The fence, under the same lease: free as soon as the last leader's lease is gone.
    const lock = await this.client.lock(INTEREST_LOCK, {
      lease: session.lease,
      timeoutMs: LOCK_TIMEOUT_MS,
      signal,
    });
    const token = lock.fencingToken;
    // 3. Where the books stand: only a fenced holder writes nights, so this stays true
    //    for as long as our fence does.
    let paid = await this.lastPaidNight();
    this.leading = true;
    log.info({ token, paid }, 'leading the interest job');
    while (!signal.aborted && session.alive) {
      const due = dueNight(this.options.config, Date.now());
      while (paid < due && session.alive && !signal.aborted) {
        let outcome: PayOutcome;
        try {
          outcome = await this.payNight(paid + 1, token, session);
        } catch (err) {
          // Perhaps applied, perhaps not (504): the books say which, next tick.
          log.warn({ err: String(err), night: paid + 1 }, 'interest payment outcome unknown');
          paid = await this.lastPaidNight();
          break;
        }
        if (outcome === 'paid' || outcome === 'already_paid') {
          paid += 1;
          if (outcome === 'paid') this.paidNights += 1;
        } else if (outcome === 'fenced' || outcome === 'lost') {
          log.warn({ token, night: paid + 1 }, 'no longer hold the interest lock; stepping down');
          return;
        } else break; // busy: try again next tick
      }
      await sleep(this.options.tickMs, undefined, { signal }).catch(() => {});
    }
  }

  /** The highest night with a record (nights are paid in order, so all below it are paid too). */
  private async lastPaidNight(): Promise<number> {
    const { kvs } = await this.client.list({ prefix: NIGHTS_PREFIX });
    let last = 0;
    for (const kv of kvs) last = Math.max(last, decodeNight(kv.value, kv.key).night);
    return last;
  }

  private async payNight(night: number, token: number, session: Session): Promise<PayOutcome> {
    const { instance, config } = this.options;
    for (let attempt = 0; attempt < PAY_ATTEMPTS_MAX; attempt++) {
      if (!session.alive) return 'lost';
      if (attempt > 0) await sleep(Math.random() * Math.min(200, 5 * 2 ** attempt));
      const { kvs, revision } = await readRange(this.client, ACCOUNTS_PREFIX);
      const accounts = kvs.map(accountOf);
      if (accounts.length > ACCOUNTS_MAX)
        throw new Error(`interest is paid in one txn: at most ${ACCOUNTS_MAX} accounts`);
      const record: NightRecord = {
        night,
        rateBp: config.rateBp,
        paidCents: {},
        totalCents: 0,
        fencingToken: token,
        instance,
      };
      const puts: TxnOp[] = [];
      for (const a of accounts) {
        const cents = interestCents(a.balanceCents, config.rateBp);
        record.paidCents[a.id] = cents;
        if (cents === 0) continue;
        record.totalCents = addCents(record.totalCents, cents);
        puts.push({ op: 'put', key: accountKey(a.id), value: encodeCents(a.balanceCents + cents) });
      }
      const compare: Compare[] = [
        { key: nightKey(night), target: 'version', op: '==', value: 0 },
        ...accounts.map(
          (a): Compare => ({
            key: accountKey(a.id),
            target: 'modRevision',
            op: '==',
            value: a.modRevision,
          }),
        ),
      ];
      const res = await this.client.fencedTxn(
        INTEREST_LOCK,
        token,
        {
          compare,
          success: [...puts, { op: 'put', key: nightKey(night), value: JSON.stringify(record) }],
          failure: [
            { op: 'get', key: nightKey(night) },
            { op: 'get', key: ACCOUNTS_PREFIX, prefix: true },
          ],
        },
        { idempotencyKey: `tsbank/night/${night}/${token}/${revision}` },
      );
      if (res.succeeded) {
        this.options.log.info(
          { night, totalCents: record.totalCents, revision: res.revision },
          'paid interest',
        );
        return 'paid';
      }
      const [nightGet, accountsGet] = res.results;
      if (nightGet?.op === 'get' && nightGet.kvs.length > 0) return 'already_paid';
      if (accountsGet?.op === 'get' && unchanged(accounts, accountsGet.kvs.map(accountOf)))
        return 'fenced'; // every key guard held: the fence is what failed
    }
    return 'busy';
  }
}

/** True when every account read still has the modRevision it had. */
function unchanged(read: Account[], now: Account[]): boolean {
  const current = new Map(now.map((a) => [a.id, a.modRevision]));
  return read.every((a) => current.get(a.id) === a.modRevision);
}

/** An AbortSignal that aborts when `promise` settles. */
function abortOn(promise: Promise<unknown>): AbortSignal {
  const controller = new AbortController();
  void promise.then(
    () => controller.abort(),
    () => controller.abort(),
  );
  return controller.signal;
}
