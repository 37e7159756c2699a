/**
 * Where TSBank keeps its data in raftkv. Everything the audit sums sits
 * under one prefix, BOOKS, so that it is a single range read at a single
 * revision; transfer records sit outside it because they only grow.
 */

/** Every key TSBank writes starts with this (the chaos check watches it from revision 1). */
export const BANK_PREFIX = 'bank/';

/** Balances, money created by openings, interest paid: what /audit sums. */
export const BOOKS_PREFIX = 'bank/books/';
export const ACCOUNTS_PREFIX = 'bank/books/accounts/';
export const CREATED_PREFIX = 'bank/books/created/';
export const NIGHTS_PREFIX = 'bank/books/nights/';

export const TRANSFERS_PREFIX = 'bank/transfers/';
export const CONFIG_KEY = 'bank/config';

/** Registry names of running instances (API.md "Registry"). */
export const INSTANCES_PREFIX = 'svc/tsbank/';
/** The election that picks the instance running the nightly interest job. */
export const INTEREST_ELECTION = 'tsbank-interest';
/** The lock whose fencing token guards that job's writes (held under the same lease). */
export const INTEREST_LOCK = 'tsbank-interest';

/** Account ids and transfer ids: short, and never a `/` (they are the last part of a key). */
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidId(id: string): boolean {
  return ID.test(id);
}

export function accountKey(id: string): string {
  return `${ACCOUNTS_PREFIX}${id}`;
}

export function accountIdOf(key: string): string {
  return key.slice(ACCOUNTS_PREFIX.length);
}

export function createdKey(id: string): string {
  return `${CREATED_PREFIX}${id}`;
}

export function transferKey(id: string): string {
  return `${TRANSFERS_PREFIX}${id}`;
}

/** Zero-padded so that nights list in order. */
export function nightKey(night: number): string {
  return `${NIGHTS_PREFIX}${String(night).padStart(8, '0')}`;
}

export function instanceName(instance: string): string {
  return `${INSTANCES_PREFIX}${instance}`;
}
