/**
 * Money is an integer number of cents everywhere: in requests and answers
 * (JSON numbers that are safe integers) and in raftkv (decimal strings). No
 * float ever holds an amount, so sums are exact and the audit can demand
 * equality, not closeness.
 */
import { BankError } from './errors.js';

export type Cents = number;

/** A request's amount: a safe integer in [min, Number.MAX_SAFE_INTEGER]. */
export function parseCents(value: unknown, field: string, min: Cents): Cents {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    throw new BankError(
      'invalid_request',
      `${field} must be an integer number of cents, at least ${min}`,
    );
  return value;
}

/** A balance as raftkv stores it: digits only, no sign, no leading zero. */
export function encodeCents(cents: Cents): string {
  if (!Number.isSafeInteger(cents) || cents < 0)
    throw new Error(`not a storable amount of cents: ${cents}`);
  return String(cents);
}

/** The inverse of encodeCents; anything else in the store is a corrupt record, not a balance. */
export function decodeCents(text: string, key: string): Cents {
  const cents = /^(0|[1-9][0-9]*)$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(cents))
    throw new Error(`${key} holds ${JSON.stringify(text)}, not cents`);
  return cents;
}

/** A sum that must stay exact. */
export function addCents(a: Cents, b: Cents): Cents {
  const sum = a + b;
  if (!Number.isSafeInteger(sum)) throw new Error(`cents overflow: ${a} + ${b}`);
  return sum;
}

/** Interest for one night: basis points of the balance, rounded down to the cent. */
export function interestCents(balance: Cents, rateBp: number): Cents {
  return Math.floor((balance * rateBp) / 10_000);
}

/** 123456 → "1234.56", for people reading logs and reports. */
export function formatCents(cents: Cents): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}
