import { assert } from './errors.js';
import type { MutationLog } from './mutations.js';
import { alarmRecordKey } from './record-keys.js';
import { utf8Decode } from './text.js';

/**
 * Alarms (etcd's NOSPACE): a member whose state outgrew its space quota
 * raises `nospace` through the log, and while any alarm is active every
 * replica refuses the commands that grow the state (quota_exceeded). They are
 * replicated state: snapshots and backups carry them.
 */
export const ALARM_TYPES = ['nospace'] as const;
export type AlarmType = (typeof ALARM_TYPES)[number];

export interface Alarm {
  readonly memberId: string;
  readonly alarm: AlarmType;
}

/** A member id as the alarm records hold it (no '/', which the record key uses). */
export const ALARM_MEMBER_ID = /^[\x21-\x2e\x30-\x7e]{1,128}$/;

function alarmId(memberId: string, alarm: AlarmType): string {
  return `${memberId}/${alarm}`;
}

/** The active alarms; the record layout is `q/<memberId>/<type>` (record-keys.ts). */
export class AlarmTable {
  private readonly alarms = new Map<string, Alarm>();

  constructor(private readonly log: MutationLog) {}

  get size(): number {
    return this.alarms.size;
  }

  /** Every active alarm, ordered by member id then type (the same on every replica). */
  all(): Alarm[] {
    return [...this.alarms.values()].sort(
      (a, b) =>
        (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0) ||
        (a.alarm < b.alarm ? -1 : a.alarm > b.alarm ? 1 : 0),
    );
  }

  has(memberId: string, alarm: AlarmType): boolean {
    return this.alarms.has(alarmId(memberId, alarm));
  }

  /** Whether some member's alarm of this type is active. */
  any(alarm: AlarmType): boolean {
    for (const a of this.alarms.values()) if (a.alarm === alarm) return true;
    return false;
  }

  /** Returns whether it was not active before. */
  raise(memberId: string, alarm: AlarmType): boolean {
    const id = alarmId(memberId, alarm);
    if (this.alarms.has(id)) return false;
    const entry: Alarm = { memberId, alarm };
    this.alarms.set(id, entry);
    this.log.put(alarmRecordKey(memberId, alarm), JSON.stringify(entry));
    return true;
  }

  /** Clears the alarms of this type, of one member or (memberId undefined) all; returns those cleared. */
  clear(alarm: AlarmType, memberId: string | undefined): Alarm[] {
    const cleared: Alarm[] = [];
    for (const entry of this.all()) {
      if (entry.alarm !== alarm || (memberId !== undefined && entry.memberId !== memberId))
        continue;
      this.alarms.delete(alarmId(entry.memberId, entry.alarm));
      this.log.del(alarmRecordKey(entry.memberId, entry.alarm));
      cleared.push(entry);
    }
    return cleared;
  }

  *records(): Generator<[string, string], void, undefined> {
    for (const entry of this.all())
      yield [alarmRecordKey(entry.memberId, entry.alarm), JSON.stringify(entry)];
  }

  /** Rebuilds the table from `q/…` record values. Throws KvInvariantError on a malformed one. */
  static fromRecords(log: MutationLog, values: Iterable<Uint8Array>): AlarmTable {
    const table = new AlarmTable(log);
    for (const bytes of values) {
      const entry = JSON.parse(utf8Decode(bytes)) as Alarm;
      assert(
        typeof entry.memberId === 'string' &&
          ALARM_MEMBER_ID.test(entry.memberId) &&
          ALARM_TYPES.includes(entry.alarm),
        'alarm record: malformed',
      );
      table.alarms.set(alarmId(entry.memberId, entry.alarm), {
        memberId: entry.memberId,
        alarm: entry.alarm,
      });
    }
    return table;
  }
}
