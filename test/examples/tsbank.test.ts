/**
 * The TSBank example's chaos run, short (15 s of chaos), as `npm run
 * example:tsbank -- --chaos` runs it: 3 raftkv members and 3 bank instances
 * as real processes, transfers from concurrent clients, every kind of fault.
 * It must do real work (hundreds of transfers acknowledged, each fault kind
 * injected) and its checks of raftkv's history must find no violation.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { ChaosReport } from '../../examples/tsbank/chaos/report.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHAOS_SECONDS = 15;
/** Chaos, plus startup, the grace for in-flight transfers, catching up and the history check. */
const RUN_TIMEOUT_MS = 180_000;

t.test(
  'the TSBank chaos run keeps the books right under faults',
  { timeout: RUN_TIMEOUT_MS + 10_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbank-test-'));
    const reportFile = join(dir, 'report.json');
    // Its own process group: on a timeout the whole run (and its children) is killed.
    const child = spawn(
      process.execPath,
      [
        '--import',
        import.meta.resolve('tsx'),
        join(ROOT, 'examples/tsbank/main.ts'),
        '--chaos',
        '--seconds',
        String(CHAOS_SECONDS),
        '--report',
        reportFile,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    // SIGTERM first: the run then kills its own children's groups before it exits; SIGKILL
    // (of its group) only if it did not exit by then.
    const stop = () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }, 15_000).unref();
    };
    t.teardown(() => {
      stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const timer = setTimeout(stop, RUN_TIMEOUT_MS);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(timer);
    t.comment(output.slice(-3_000));
    t.equal(code, 0, 'the chaos run exits 0 (every check held)');
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as ChaosReport;
    t.same(report.violations, [], 'no violation');
    const { transfers, faults, ledger } = report;
    t.ok(
      transfers.acknowledged >= 150,
      `real work: ${transfers.acknowledged} transfers acknowledged`,
    );
    t.equal(
      ledger.acknowledgedAppliedOnce,
      transfers.acknowledged,
      'each acknowledged transfer applied exactly once',
    );
    t.ok(
      transfers.refusedInsufficientFunds > 0,
      `some transfers found the funds short (${transfers.refusedInsufficientFunds})`,
    );
    for (const kind of [
      'raftkv_kill',
      'bank_kill',
      'interest_leader_stop',
      'raftkv_leader_move',
    ] as const)
      t.ok(faults[kind] >= 1, `${kind} injected ${faults[kind]} time(s)`);
    t.ok(
      faults.interestHandovers >= 1,
      'a frozen interest leader was replaced by another instance',
    );
    t.ok(
      ledger.nightsPaid >= 3 && ledger.nightsPaid >= ledger.dueNightAtEnd,
      `nights paid: ${ledger.nightsPaid} of ${ledger.dueNightAtEnd}`,
    );
    t.equal(ledger.totalCents, ledger.expectedTotalCents, 'money is conserved');
    t.ok(
      ledger.liveChecked > 0,
      `live balances checked against the history (${ledger.liveChecked})`,
    );
  },
);
