import { assert } from './errors.js';
import { compareKeys } from './key-order.js';
import type { MutationLog } from './mutations.js';
import { leaseRecordKey } from './record-keys.js';
import { utf8Decode } from './text.js';

/**
 * A lease as replicated state. There is no clock here: times are the state
 * machine clock when the command was applied, and deciding that a lease has
 * expired is the leader's job (it proposes leaseRevoke).
 *
 * The deadline a leader should use: if remainingMs is null, lastRenewedAtMs +
 * ttlMs; otherwise the lease had remainingMs left at checkpointedAtMs. A new
 * leader restarts every deadline at its election (API.md), so it should grant
 * at least `remainingMs ?? ttlMs` from then.
 */
export interface LeaseState {
  readonly id: string;
  readonly ttlMs: number;
  readonly grantedAtMs: number;
  /** Grant or last keepalive. */
  readonly lastRenewedAtMs: number;
  /**
   * The log index of the grant or last keepalive: what names a renewal. Times
   * cannot: the state machine clock stands still while a leader with a slower
   * wall clock proposes, so two renewals may share one time. 0 in records
   * written before this field existed.
   */
  readonly renewedAtIndex: number;
  /** TTL left at the last checkpoint since the last renewal, or null. */
  readonly remainingMs: number | null;
  readonly checkpointedAtMs: number | null;
  /** The user who granted it (absent: granted while auth was off, or by the system). */
  readonly owner?: string;
}

/** A lease with its attached keys (in key order). */
export interface LeaseInfo extends LeaseState {
  readonly keys: readonly string[];
}

/** The lease table. Attached keys live in the MVCC store, which knows each key's lease. */
export class LeaseTable {
  private readonly leases = new Map<string, LeaseState>();

  constructor(private readonly log: MutationLog) {}

  get size(): number {
    return this.leases.size;
  }

  get(id: string): LeaseState | undefined {
    return this.leases.get(id);
  }

  has(id: string): boolean {
    return this.leases.has(id);
  }

  /** Every lease, in id order. */
  all(): LeaseState[] {
    return [...this.leases.values()].sort((a, b) => compareKeys(a.id, b.id));
  }

  grant(id: string, ttlMs: number, nowMs: number, index: number, owner?: string): LeaseState {
    assert(!this.leases.has(id), `lease ${id} granted twice`);
    return this.set({
      id,
      ttlMs,
      grantedAtMs: nowMs,
      lastRenewedAtMs: nowMs,
      renewedAtIndex: index,
      remainingMs: null,
      checkpointedAtMs: null,
      ...(owner === undefined ? {} : { owner }),
    });
  }

  /** A keepalive: the TTL restarts now, and any checkpoint is obsolete. */
  renew(id: string, nowMs: number, index: number): LeaseState | undefined {
    const lease = this.leases.get(id);
    if (lease === undefined) return undefined;
    return this.set({
      ...lease,
      lastRenewedAtMs: nowMs,
      renewedAtIndex: index,
      remainingMs: null,
      checkpointedAtMs: null,
    });
  }

  checkpoint(id: string, remainingMs: number, nowMs: number): boolean {
    const lease = this.leases.get(id);
    if (lease === undefined) return false;
    this.set({ ...lease, remainingMs, checkpointedAtMs: nowMs });
    return true;
  }

  remove(id: string): boolean {
    if (!this.leases.delete(id)) return false;
    this.log.del(leaseRecordKey(id));
    return true;
  }

  *records(): Generator<[string, string], void, undefined> {
    for (const lease of this.leases.values()) yield [leaseRecordKey(lease.id), encodeLease(lease)];
  }

  /** Rebuilds the table from `l/<id>` record values. */
  static fromRecords(log: MutationLog, values: Iterable<Uint8Array>): LeaseTable {
    const table = new LeaseTable(log);
    const leases = [...values].map(decodeLease).sort((a, b) => compareKeys(a.id, b.id));
    for (const lease of leases) table.leases.set(lease.id, lease);
    return table;
  }

  private set(lease: LeaseState): LeaseState {
    this.leases.set(lease.id, lease);
    this.log.put(leaseRecordKey(lease.id), encodeLease(lease));
    return lease;
  }
}

/** A lease record's fields, in the order every replica writes them (absent ones are left out). */
const LEASE_RECORD_FIELDS: readonly (keyof LeaseState)[] = [
  'id',
  'ttlMs',
  'grantedAtMs',
  'lastRenewedAtMs',
  'renewedAtIndex',
  'remainingMs',
  'checkpointedAtMs',
  'owner',
];

function encodeLease(lease: LeaseState): string {
  // The replacer picks these fields in this order: a LeaseInfo's keys never reach the record.
  return JSON.stringify(lease, LEASE_RECORD_FIELDS as string[]);
}

function decodeLease(bytes: Uint8Array): LeaseState {
  const raw = JSON.parse(utf8Decode(bytes)) as Omit<LeaseState, 'renewedAtIndex'> & {
    renewedAtIndex?: number;
  };
  const lease: LeaseState = { ...raw, renewedAtIndex: raw.renewedAtIndex ?? 0 };
  assert(
    typeof lease.id === 'string' &&
      typeof lease.ttlMs === 'number' &&
      typeof lease.grantedAtMs === 'number' &&
      typeof lease.lastRenewedAtMs === 'number' &&
      Number.isSafeInteger(lease.renewedAtIndex) &&
      (lease.remainingMs === null || typeof lease.remainingMs === 'number') &&
      (lease.checkpointedAtMs === null || typeof lease.checkpointedAtMs === 'number') &&
      (lease.owner === undefined || typeof lease.owner === 'string'),
    'lease record: malformed',
  );
  return lease;
}
