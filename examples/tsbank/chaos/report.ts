/** The figures of a chaos run, printed for people and written as JSON for the test. */
import { writeFileSync } from 'node:fs';
import { formatCents } from '../src/money.js';
import type { FaultKind } from './faults.js';
import type { LedgerFigures } from './ledger-check.js';
import type { TransferLog } from './traffic.js';

export interface ChaosReport {
  seconds: number;
  wallSeconds: number;
  transfers: {
    attempted: number;
    posts: number;
    acknowledged: number;
    acknowledgedAsReplay: number;
    refusedInsufficientFunds: number;
    rejected: number;
    unknown: number;
    applied: number;
  };
  faults: Record<FaultKind, number> & { skipped: number; interestHandovers: number };
  live: { observations: number; connections: number };
  ledger: LedgerFigures;
  violations: string[];
}

export function transferFigures(
  logs: Iterable<TransferLog>,
  posts: number,
  applied: number,
): ChaosReport['transfers'] {
  const all = [...logs];
  const count = (outcome: TransferLog['outcome']) =>
    all.filter((t) => t.outcome === outcome).length;
  return {
    attempted: all.length,
    posts,
    acknowledged: count('acknowledged'),
    acknowledgedAsReplay: all.filter((t) => t.outcome === 'acknowledged' && t.replayed).length,
    refusedInsufficientFunds: count('refused'),
    rejected: count('rejected'),
    unknown: count('unknown'),
    applied,
  };
}

export function printReport(report: ChaosReport): void {
  const { transfers: t, faults: f, ledger: l } = report;
  const lines = [
    '',
    `TSBank chaos run: ${report.seconds} s of chaos, ${report.wallSeconds.toFixed(1)} s in all`,
    `transfers  attempted ${t.attempted} (${t.posts} POSTs, ${t.posts - t.attempted} of them retries)`,
    `           acknowledged ${t.acknowledged} (${t.acknowledgedAsReplay} answered from an earlier attempt), refused for funds ${t.refusedInsufficientFunds}, rejected ${t.rejected}, outcome unknown ${t.unknown}`,
    `           applied ${t.applied} (acknowledged and applied exactly once: ${l.acknowledgedAppliedOnce}; unknown but applied: ${l.unknownApplied}, unknown and not applied: ${l.unknownNotApplied})`,
    `faults     raftkv member SIGKILLed ${f.raftkv_kill}, bank instance SIGKILLed ${f.bank_kill}, interest leader SIGSTOPped past its lease ${f.interest_leader_stop} (taken over by another ${f.interestHandovers}), raftkv leadership moved ${f.raftkv_leader_move}; skipped ${f.skipped}`,
    `interest   nights paid ${l.nightsPaid} of ${l.dueNightAtEnd} due, by ${JSON.stringify(l.nightsByInstance)}, under ${l.fencingTokens} fencing tokens`,
    `money      created ${formatCents(l.createdCents)} + interest ${formatCents(l.interestCents)} = ${formatCents(l.expectedTotalCents)}; balances sum to ${formatCents(l.totalCents)} (${l.totalCents === l.expectedTotalCents ? 'conserved' : 'NOT CONSERVED'}); lowest balance ever ${formatCents(l.lowestBalanceCents)}`,
    `history    ${l.revisionsReplayed} revisions replayed over ${l.accounts} accounts; live balances checked ${l.liveChecked} (${report.live.connections} streams)`,
    report.violations.length === 0
      ? 'verdict    OK: no violation'
      : `verdict    ${report.violations.length} VIOLATION(S):`,
    ...report.violations.slice(0, 30).map((v) => `  - ${v}`),
    ...(report.violations.length > 30 ? [`  … and ${report.violations.length - 30} more`] : []),
  ];
  console.log(lines.join('\n'));
}

export function writeReport(file: string, report: ChaosReport): void {
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
}
