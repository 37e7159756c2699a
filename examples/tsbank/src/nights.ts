import type { BankConfig } from './records.js';

/**
 * The last night that is due at `nowMs`: night n (n ≥ 1) falls due once the
 * wall clock passes epochMs + n × nightMs. Nights are short simulated
 * periods so that a chaos run sees many of them.
 */
export function dueNight(config: BankConfig, nowMs: number): number {
  return Math.max(0, Math.floor((nowMs - config.epochMs) / config.nightMs));
}
