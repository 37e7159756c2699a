/**
 * Concurrent clients sending random transfers to random bank instances, the
 * way a careful client of an exactly-once API behaves: each transfer gets
 * its own id (the Idempotency-Key), and anything short of a definite answer
 * — a timeout, a refused or reset connection, 503, 504 — is retried with the
 * SAME id, on whichever instance answers, until the bank says what happened.
 *
 * Bounded: no transfer starts after the run's end, and each is given up
 * (its outcome "unknown") after POSTS_MAX requests or GRACE after it started.
 */
import type { BankFleet } from './bank-fleet.js';
import { delay } from './processes.js';

export type TransferOutcome = 'acknowledged' | 'refused' | 'rejected' | 'unknown';

export interface TransferLog {
  id: string;
  from: string;
  to: string;
  amountCents: number;
  outcome: TransferOutcome;
  posts: number;
  /** Acknowledged: the revision the bank said it landed in. */
  revision?: number;
  replayed?: boolean;
  /** The last error answer or failure, for a report. */
  detail?: string;
}

export interface TrafficOptions {
  clients: number;
  accounts: string[];
  amountMaxCents: number;
  /** A transfer is retried for at most this long before its outcome counts as unknown. */
  graceMs: number;
}

const POSTS_MAX = 10;
const POST_TIMEOUT_MS = 4_000;

export class Traffic {
  readonly transfers = new Map<string, TransferLog>();
  posts = 0;

  constructor(
    private readonly fleet: BankFleet,
    private readonly options: TrafficOptions,
  ) {}

  /** Runs every client while `going()` (plus the grace for their last transfer). */
  async run(going: () => boolean): Promise<void> {
    await Promise.all(
      Array.from({ length: this.options.clients }, (_, c) => this.client(c, going)),
    );
  }

  private async client(c: number, going: () => boolean): Promise<void> {
    const { accounts, amountMaxCents } = this.options;
    for (let seq = 0; going() && seq < 1_000_000; seq++) {
      const from = pick(accounts);
      let to = pick(accounts);
      while (to === from) to = pick(accounts);
      const log: TransferLog = {
        id: `c${c}-${seq}`,
        from,
        to,
        amountCents: 1 + Math.floor(Math.random() * amountMaxCents),
        outcome: 'unknown',
        posts: 0,
      };
      this.transfers.set(log.id, log);
      await this.submit(log, Date.now() + this.options.graceMs);
    }
  }

  private async submit(log: TransferLog, giveUpAtMs: number): Promise<void> {
    for (let post = 0; post < POSTS_MAX && Date.now() < giveUpAtMs; post++) {
      if (post > 0) await delay(50 + Math.random() * 150);
      const url = this.pickBank();
      log.posts += 1;
      this.posts += 1;
      let status: number;
      let body: { revision?: number; replayed?: boolean; error?: { code: string } } | undefined;
      try {
        const res = await fetch(`${url}/transfers`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': log.id },
          body: JSON.stringify({ from: log.from, to: log.to, amountCents: log.amountCents }),
          signal: AbortSignal.timeout(POST_TIMEOUT_MS),
        });
        status = res.status;
        body = (await res.json()) as typeof body;
      } catch (err) {
        log.detail = String((err as Error).cause ?? err);
        continue; // no answer: maybe applied, maybe not; ask again with the same id
      }
      if (status === 200) {
        log.outcome = 'acknowledged';
        if (body?.revision !== undefined) log.revision = body.revision;
        if (body?.replayed !== undefined) log.replayed = body.replayed;
        return;
      }
      log.detail = `${status} ${body?.error?.code ?? ''}`;
      if (status === 409 && body?.error?.code === 'insufficient_funds') {
        log.outcome = 'refused';
        return;
      }
      if (status >= 400 && status < 500) {
        log.outcome = 'rejected';
        return;
      }
      // 503 and 504: not applied, or not known; ask again.
    }
  }

  /** A random instance that runs and is not frozen (any, if none is). */
  private pickBank(): string {
    const urls = this.fleet.urls;
    const serving = urls.filter((_, i) => this.fleet.serving(i));
    return pick(serving.length > 0 ? serving : urls);
  }
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}
