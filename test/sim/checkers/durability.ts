import { Violation } from '../invariants.js';

/** A write whose client got an answer (ok or a definite refusal), or none at all (unknown). */
export interface DurabilityWrite {
  key: string;
  value: string;
  outcome: 'ok' | 'refused' | 'unknown';
}

export interface DurabilityReport {
  /** Acknowledged writes found with their value. */
  ok: number;
  /** Refused writes found absent. */
  refused: number;
  /** Writes of unknown outcome that took effect / did not. */
  unknownPresent: number;
  unknownAbsent: number;
}

/**
 * Compares every answered write with the cluster's final state: an acknowledged
 * write must be there with its value, a refused one must not be there at all;
 * a write of unknown outcome may be either. Each key must be written once (the
 * sim uses unique keys for this), or an overwrite would hide a lost write.
 * A missing key and a null value both mean absent. Throws Violation('durability').
 */
export function checkDurability(
  writes: readonly DurabilityWrite[],
  finalState: ReadonlyMap<string, string | null>,
): DurabilityReport {
  const seen = new Set<string>();
  for (const w of writes) {
    if (seen.has(w.key)) {
      throw new TypeError(
        `checkDurability: key ${w.key} is written twice; each key must be unique`,
      );
    }
    seen.add(w.key);
  }
  const report: DurabilityReport = { ok: 0, refused: 0, unknownPresent: 0, unknownAbsent: 0 };
  for (const w of writes) {
    const found = finalState.get(w.key) ?? null;
    switch (w.outcome) {
      case 'ok':
        if (found !== w.value) {
          throw new Violation(
            'durability',
            `acknowledged write ${w.key}=${w.value} is ${found === null ? 'missing' : `${w.key}=${found}`} in the final state`,
          );
        }
        report.ok++;
        break;
      case 'refused':
        if (found !== null) {
          throw new Violation(
            'durability',
            `refused write ${w.key}=${w.value} was applied: the final state has ${w.key}=${found}`,
          );
        }
        report.refused++;
        break;
      case 'unknown':
        if (found === null) report.unknownAbsent++;
        else if (found === w.value) report.unknownPresent++;
        else {
          throw new Violation(
            'durability',
            `write ${w.key}=${w.value} (outcome unknown) left ${w.key}=${found}, a value nobody wrote`,
          );
        }
        break;
    }
  }
  return report;
}
