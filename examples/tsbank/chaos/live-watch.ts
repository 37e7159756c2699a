/**
 * Follows accounts through TSBank's /accounts/:id/live (Server-Sent Events
 * fed by a raftkv watch), reconnecting to another instance whenever the one
 * it listens to dies or freezes. Every balance it is told, with the
 * revision it is told for, is checked against raftkv's history at the end.
 */
import { SseParser } from '../src/raftkv.js';
import type { BankFleet } from './bank-fleet.js';
import { delay } from './processes.js';

export interface LiveObservation {
  account: string;
  revision: number;
  balanceCents: number;
}

const CONNECTIONS_MAX = 500;
/** A frozen instance sends nothing: move on after this long without a byte. */
const IDLE_MS = 3_000;

export class LiveWatchers {
  readonly observations: LiveObservation[] = [];
  connections = 0;
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    private readonly fleet: BankFleet,
    private readonly accounts: string[],
  ) {}

  start(): void {
    this.running ??= Promise.all(this.accounts.map((a) => this.follow(a))).then(() => {});
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  private async follow(account: string): Promise<void> {
    const stop = this.stopping.signal;
    while (!stop.aborted && this.connections < CONNECTIONS_MAX) {
      const serving = this.fleet.urls.filter((_, i) => this.fleet.serving(i));
      const url = serving[Math.floor(Math.random() * serving.length)];
      if (url === undefined) {
        await delay(100);
        continue;
      }
      this.connections += 1;
      await this.listen(`${url}/accounts/${account}/live`, stop).catch(() => {});
      if (!stop.aborted) await delay(100);
    }
  }

  private async listen(url: string, stop: AbortSignal): Promise<void> {
    const idle = new AbortController();
    let timer = setTimeout(() => idle.abort(), IDLE_MS);
    try {
      const res = await fetch(url, { signal: AbortSignal.any([stop, idle.signal]) });
      if (!res.ok || !res.body) return;
      const parser = new SseParser();
      const decoder = new TextDecoder();
      for await (const chunk of res.body) {
        clearTimeout(timer);
        timer = setTimeout(() => idle.abort(), IDLE_MS);
        for (const event of parser.push(decoder.decode(chunk as Uint8Array, { stream: true }))) {
          if (event.event !== 'balance') continue;
          const data = JSON.parse(event.data) as LiveObservation & { id: string };
          this.observations.push({
            account: data.id,
            revision: data.revision,
            balanceCents: data.balanceCents,
          });
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
