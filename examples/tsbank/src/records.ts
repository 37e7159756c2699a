/**
 * The JSON records TSBank stores beside the balances. The chaos check reads
 * them back from raftkv's history, so their shape is the contract between
 * the service and its checker.
 */
import type { Cents } from './money.js';

/**
 * bank/transfers/<id>: the one outcome of transfer <id>, written once.
 * `applied`: in the same txn as the two balances it moves. `refused`: the
 * funds were short, decided at a revision where the debited balance was read
 * (so a late retry of the same id cannot land after the client was told no).
 */
export interface TransferRecord {
  id: string;
  from: string;
  to: string;
  amountCents: Cents;
  status: 'applied' | 'refused';
  /** The instance that decided it. */
  instance: string;
}

/** bank/books/nights/<n>: written in the same txn as every balance it pays. */
export interface NightRecord {
  night: number;
  rateBp: number;
  /** Interest per account, for every account the payment read (0 included). */
  paidCents: Record<string, Cents>;
  totalCents: Cents;
  /** The interest lock's fencing token the payment was made under. */
  fencingToken: number;
  instance: string;
}

/** bank/config: fixed by the first instance to start; every later instance adopts it. */
export interface BankConfig {
  /** Night n is due once the wall clock passes epochMs + n × nightMs (n ≥ 1). */
  epochMs: number;
  nightMs: number;
  /** Interest per night in basis points (1 bp = 0.01 %). */
  rateBp: number;
}

export function decodeJson<T>(text: string, key: string, check: (v: T) => boolean): T {
  let value: T;
  try {
    value = JSON.parse(text) as T;
  } catch {
    throw new Error(`${key} does not hold JSON`);
  }
  if (typeof value !== 'object' || value === null || !check(value))
    throw new Error(`${key} holds an unexpected record: ${text.slice(0, 200)}`);
  return value;
}

export function decodeTransfer(text: string, key: string): TransferRecord {
  return decodeJson<TransferRecord>(
    text,
    key,
    (r) =>
      typeof r.id === 'string' &&
      typeof r.from === 'string' &&
      typeof r.to === 'string' &&
      Number.isSafeInteger(r.amountCents) &&
      (r.status === 'applied' || r.status === 'refused'),
  );
}

export function decodeNight(text: string, key: string): NightRecord {
  return decodeJson<NightRecord>(
    text,
    key,
    (r) =>
      Number.isSafeInteger(r.night) &&
      Number.isSafeInteger(r.totalCents) &&
      Number.isSafeInteger(r.fencingToken) &&
      typeof r.paidCents === 'object' &&
      r.paidCents !== null,
  );
}

export function decodeConfig(text: string, key: string): BankConfig {
  return decodeJson<BankConfig>(
    text,
    key,
    (c) =>
      Number.isSafeInteger(c.epochMs) &&
      Number.isSafeInteger(c.nightMs) &&
      c.nightMs > 0 &&
      Number.isSafeInteger(c.rateBp),
  );
}
