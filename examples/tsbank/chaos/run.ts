/**
 * The chaos run: 3 raftkv members and 3 TSBank instances as real processes,
 * concurrent clients sending transfers, and faults meanwhile (faults.ts).
 * Then everything is healed, the interest job is given time to catch up,
 * and raftkv's history is read back from revision 1 and checked
 * (ledger-check.ts). Every wait is bounded; every child is killed at the end,
 * on failure, and on SIGINT/SIGTERM.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditReport } from '../src/audit.js';
import { CONFIG_KEY } from '../src/keys.js';
import { dueNight } from '../src/nights.js';
import { Client } from '../src/raftkv.js';
import { decodeConfig } from '../src/records.js';
import { BankFleet } from './bank-fleet.js';
import { bundle } from './bundle.js';
import { FaultInjector } from './faults.js';
import { readHistory } from './history.js';
import { checkLedger } from './ledger-check.js';
import { LiveWatchers } from './live-watch.js';
import { type Child, delay, killAll } from './processes.js';
import { RaftkvCluster } from './raftkv-cluster.js';
import { type ChaosReport, printReport, transferFigures, writeReport } from './report.js';
import { Traffic } from './traffic.js';
import { getJson, waitFor } from './wait.js';

export interface ChaosOptions {
  seconds: number;
  reportFile?: string;
}

const ACCOUNTS = 12;
const OPENING_CENTS = 100_000;
const CLIENTS = 8;
/** Up to a quarter of an opening balance: some transfers find the funds short. */
const AMOUNT_MAX_CENTS = 25_000;
/** How long one transfer is retried with its id before its outcome counts as unknown. */
const GRACE_MS = 20_000;
const CATCH_UP_MS = 20_000;
const HISTORY_TIMEOUT_MS = 60_000;

export async function runChaos(options: ChaosOptions): Promise<number> {
  const startedAt = Date.now();
  const say = (line: string) =>
    console.log(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(5)} s] ${line}`);
  const dir = mkdtempSync(join(tmpdir(), 'tsbank-chaos-'));
  const onSignal = () => {
    void killAll().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let client: Client | undefined;
  let cluster: RaftkvCluster | undefined;
  let fleet: BankFleet | undefined;
  try {
    const bundles = bundle();
    cluster = await RaftkvCluster.create(bundles.raftkv, dir);
    await Promise.all([0, 1, 2].map((i) => cluster!.start(i)));
    await cluster.waitForLeader();
    say(`raftkv up: ${cluster.urls.join(' ')}`);
    client = new Client({ endpoints: cluster.urls, timeoutMs: 5_000 });
    fleet = await BankFleet.create(bundles.tsbank, cluster.urls);
    await Promise.all([0, 1, 2].map((i) => fleet!.start(i)));
    say(`tsbank up: ${fleet.urls.join(' ')}`);
    const accounts = await openAccounts(fleet.urls[0]!);
    const config = decodeConfig((await client.get(CONFIG_KEY)).kv.value, CONFIG_KEY);
    say(`${accounts.length} accounts opened; chaos for ${options.seconds} s`);

    const live = new LiveWatchers(fleet, accounts.slice(0, 2));
    const traffic = new Traffic(fleet, {
      clients: CLIENTS,
      accounts,
      amountMaxCents: AMOUNT_MAX_CENTS,
      graceMs: GRACE_MS,
    });
    const faults = new FaultInjector(cluster, fleet, client, say);
    live.start();
    const chaosEnd = Date.now() + options.seconds * 1000;
    // Traffic goes on for as long as faults do (the first round of faults may outlast the end).
    let faultsDone = false;
    const faulting = faults.run(chaosEnd).finally(() => {
      faultsDone = true;
    });
    await Promise.all([traffic.run(() => Date.now() < chaosEnd || !faultsDone), faulting]);
    say('chaos over; healing and letting the interest job catch up');
    await heal(cluster, fleet);
    await live.stop();

    const dueAtEnd = dueNight(config, Date.now());
    const audit = await waitFor(
      `the interest job to pay night ${dueAtEnd}`,
      async () => {
        const report = await getJson<AuditReport>(`${fleet!.urls[0]}/audit`, 3_000);
        return report && report.lastNight >= dueAtEnd ? report : undefined;
      },
      CATCH_UP_MS,
      200,
    ).catch(async () => getJson<AuditReport>(`${fleet!.urls[0]}/audit`, 3_000));
    if (!audit) throw new Error('no TSBank instance answered /audit after the run');
    // A bank key written last, so the history replay knows where the end is.
    const end = await client.put('bank/chaos/end', new Date().toISOString());
    const changes = await readHistory(client, end.revision, HISTORY_TIMEOUT_MS);
    say(`history read back: ${changes.length} revisions up to ${end.revision}`);

    const verdict = checkLedger({
      config,
      changes,
      transfers: traffic.transfers.values(),
      live: live.observations,
      audit,
      dueNightAtEnd: dueAtEnd,
    });
    const report: ChaosReport = {
      seconds: options.seconds,
      wallSeconds: (Date.now() - startedAt) / 1000,
      transfers: transferFigures(
        traffic.transfers.values(),
        traffic.posts,
        verdict.figures.transferRecords.applied,
      ),
      faults: { ...faults.injected, skipped: faults.skipped, interestHandovers: faults.handovers },
      live: { observations: live.observations.length, connections: live.connections },
      ledger: verdict.figures,
      violations: verdict.violations,
    };
    printReport(report);
    if (options.reportFile) writeReport(options.reportFile, report);
    return verdict.violations.length === 0 ? 0 : 1;
  } catch (err) {
    console.error(`chaos run failed: ${err instanceof Error ? err.stack : String(err)}`);
    for (const child of [...(cluster?.incarnations ?? []), ...(fleet?.incarnations ?? [])])
      console.error(describe(child));
    return 2;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await client?.close().catch(() => {});
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Opens the accounts through one instance (retrying: an opening is idempotent per id and amount). */
async function openAccounts(bankUrl: string): Promise<string[]> {
  const ids = Array.from({ length: ACCOUNTS }, (_, i) => `acct-${String(i + 1).padStart(2, '0')}`);
  for (const id of ids) {
    await waitFor(
      `account ${id} to open`,
      async () => {
        const res = await fetch(`${bankUrl}/accounts`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id, initialCents: OPENING_CENTS }),
          signal: AbortSignal.timeout(5_000),
        });
        await res.body?.cancel();
        return res.status === 201 ? true : undefined;
      },
      20_000,
      100,
    );
  }
  return ids;
}

/** Everything running and nothing frozen again. */
async function heal(cluster: RaftkvCluster, fleet: BankFleet): Promise<void> {
  for (const child of fleet.instances) if (child?.stopped) child.signal('SIGCONT');
  for (let i = 0; i < 3; i++) if (!cluster.running(i)) await cluster.start(i);
  await cluster.waitForLeader();
  for (let i = 0; i < 3; i++) if (!fleet.instances[i]?.running) await fleet.start(i);
  await delay(200);
}

function describe(child: Child): string {
  return `--- ${child.label} pid ${child.pid} ${child.running ? 'running' : `exit ${JSON.stringify(child.exit)}`}\n${child.tail.slice(-4_000)}`;
}
