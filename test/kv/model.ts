/**
 * A deliberately simple model of the KV state machine for model-based tests:
 * a full copy of the key → KeyValue map per revision, plus the events of each
 * revision. Slow and obviously right; src/kv must agree with it.
 */
import fc from 'fast-check';
import type { Command, KeyValue, TxnOp, WatchEvent } from '../../src/kv/index.js';

/** Code point order, computed independently of src/kv's compareKeys. */
export function codePointCompare(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

// Astral (😀) and U+E000 keys: JS `<` orders them the other way round from UTF-8.
export const KEYS = ['a', 'a/b', 'a/c', 'ab', 'b', 'b/a', 'c', '\u{1F600}', '\uE000'];
export const PREFIXES = ['', 'a', 'a/', 'b', '\u{1F600}', 'x'];
export const LEASES = ['L1', 'L2'];

/** What the model answers; compared with src/kv's results field by field. */
export type Expected =
  | { ok: false; code: string; revision: number; kv?: KeyValue | null; compactRevision?: number }
  | ({ ok: true; revision: number } & Record<string, unknown>);

export class KvModel {
  /** maps[r]: the whole store at revision r. */
  readonly maps: Map<string, KeyValue>[] = [new Map()];
  /** events[r]: what revision r changed, in order. */
  readonly events: WatchEvent[][] = [[]];
  readonly leases = new Set<string>();
  compactRevision = 0;

  get revision(): number {
    return this.maps.length - 1;
  }

  current(): Map<string, KeyValue> {
    return this.maps[this.revision]!;
  }

  apply(cmd: Command): Expected {
    switch (cmd.type) {
      case 'put': {
        if (cmd.lease !== undefined && !this.leases.has(cmd.lease))
          return this.fail('lease_not_found');
        const kv = this.current().get(cmd.key) ?? null;
        if (
          (cmd.prevRevision !== undefined && (kv?.modRevision ?? 0) !== cmd.prevRevision) ||
          (cmd.prevValue !== undefined && kv?.value !== cmd.prevValue)
        ) {
          return { ...this.fail('compare_failed'), kv };
        }
        const result = this.write([
          { op: 'put', key: cmd.key, value: cmd.value, lease: cmd.lease },
        ]);
        const put = result.results[0] as { kv: KeyValue };
        return { ok: true, op: 'put', revision: this.revision, kv: put.kv, prevKv: kv };
      }
      case 'delete': {
        if (!cmd.prefix && cmd.prevRevision !== undefined) {
          const kv = this.current().get(cmd.key) ?? null;
          if ((kv?.modRevision ?? 0) !== cmd.prevRevision)
            return { ...this.fail('compare_failed'), kv };
        }
        const before = this.current();
        const prevKvs = this.sortedKeys(before)
          .filter((key) => (cmd.prefix ? key.startsWith(cmd.key) : key === cmd.key))
          .map((key) => before.get(key)!);
        this.write([{ op: 'delete', key: cmd.key, prefix: cmd.prefix }]);
        return {
          ok: true,
          op: 'delete',
          revision: this.revision,
          deleted: prevKvs.length,
          prevKvs,
        };
      }
      case 'txn': {
        if (conflicts(cmd.success) || conflicts(cmd.failure)) return this.fail('invalid_request');
        const before = this.current();
        const succeeded = cmd.compare.every((c) => {
          if ('lock' in c) return false;
          const kv = before.get(c.key);
          const actual =
            c.target === 'value'
              ? (kv?.value ?? null)
              : c.target === 'lease'
                ? (kv?.lease ?? null)
                : (kv?.[c.target] ?? 0);
          if (c.op === '==') return actual === c.value;
          if (c.op === '!=') return actual !== c.value;
          if (actual === null || c.value === null || typeof actual !== typeof c.value) return false;
          const order =
            typeof actual === 'number'
              ? actual - (c.value as number)
              : codePointCompare(actual, c.value as string);
          return c.op === '<' ? order < 0 : order > 0;
        });
        const ops = succeeded ? cmd.success : cmd.failure;
        if (
          ops.some((op) => op.op === 'put' && op.lease !== undefined && !this.leases.has(op.lease))
        ) {
          return this.fail('lease_not_found');
        }
        const { results } = this.write(ops);
        return { ok: true, op: 'txn', revision: this.revision, succeeded, results };
      }
      case 'compact': {
        if (cmd.revision > this.revision) return this.fail('future_revision');
        if (cmd.revision <= this.compactRevision) {
          return { ...this.fail('compacted'), compactRevision: this.compactRevision };
        }
        this.compactRevision = cmd.revision;
        return { ok: true, op: 'compact', revision: this.revision, compactRevision: cmd.revision };
      }
      case 'leaseGrant':
        if (this.leases.has(cmd.id)) return this.fail('invalid_request');
        this.leases.add(cmd.id);
        return {
          ok: true,
          op: 'leaseGrant',
          revision: this.revision,
          id: cmd.id,
          ttlMs: cmd.ttlMs,
        };
      case 'leaseRevoke': {
        if (!this.leases.has(cmd.id)) return this.fail('lease_not_found');
        this.leases.delete(cmd.id);
        const keys = this.sortedKeys(this.current()).filter(
          (key) => this.current().get(key)!.lease === cmd.id,
        );
        this.write(keys.map((key) => ({ op: 'delete', key })));
        return {
          ok: true,
          op: 'leaseRevoke',
          revision: this.revision,
          id: cmd.id,
          deleted: keys.length,
        };
      }
      default:
        throw new Error(`model does not know ${cmd.type}`);
    }
  }

  /** Reads at revision r of the model (r already validated by the caller). */
  range(r: number, prefix: string, after: string | undefined, limit: number) {
    const map = this.maps[r]!;
    const keys = this.sortedKeys(map).filter(
      (key) => key.startsWith(prefix) && (after === undefined || codePointCompare(key, after) > 0),
    );
    const kept = limit > 0 ? keys.slice(0, limit) : keys;
    return { kvs: kept.map((key) => map.get(key)!), more: kept.length < keys.length };
  }

  /** The revision a read at `revision` resolves to, or the error code. */
  readRevision(revision: number): number | 'compacted' | 'future_revision' {
    if (revision === 0) return this.revision;
    if (revision < this.compactRevision) return 'compacted';
    if (revision > this.revision) return 'future_revision';
    return revision;
  }

  sortedKeys(map: Map<string, KeyValue>): string[] {
    return [...map.keys()].sort(codePointCompare);
  }

  private fail(code: string): Expected {
    return { ok: false, code, revision: this.revision };
  }

  /** Runs ops in order on a copy of the current map; one new revision if anything changed. */
  private write(ops: readonly TxnOp[]): { results: unknown[] } {
    const rev = this.revision + 1;
    const before = this.current();
    const map = new Map(before);
    const events: WatchEvent[] = [];
    const results = ops.map((op) => {
      if (op.op === 'put') {
        const prev = map.get(op.key);
        const kv: KeyValue = {
          key: op.key,
          value: op.value,
          createRevision: prev?.createRevision ?? rev,
          modRevision: rev,
          version: (prev?.version ?? 0) + 1,
          lease: op.lease ?? null,
        };
        map.set(op.key, kv);
        events.push(prev === undefined ? { type: 'put', kv } : { type: 'put', kv, prevKv: prev });
        return { op: 'put', kv };
      }
      const keys = this.sortedKeys(map).filter((key) =>
        op.prefix ? key.startsWith(op.key) : key === op.key,
      );
      if (op.op === 'get') return { op: 'get', kvs: keys.map((key) => map.get(key)!) };
      for (const key of keys) {
        const prevKv = map.get(key)!;
        map.delete(key);
        const kv: KeyValue = {
          key,
          value: '',
          createRevision: 0,
          modRevision: rev,
          version: 0,
          lease: null,
        };
        events.push({ type: 'delete', kv, prevKv });
      }
      return { op: 'delete', deleted: keys.length };
    });
    if (events.length > 0) {
      this.maps.push(map);
      this.events.push(events);
    }
    return { results };
  }
}

/** etcd's rule, restated: no key written twice in a branch. */
function conflicts(ops: readonly TxnOp[]): boolean {
  const puts = ops.filter((op) => op.op === 'put').map((op) => op.key);
  if (new Set(puts).size !== puts.length) return true;
  return ops.some(
    (op) =>
      op.op === 'delete' &&
      puts.some((key) => (op.prefix ? key.startsWith(op.key) : key === op.key)),
  );
}

// ---- generated steps -----------------------------------------------------------

/**
 * A step is a command, or a read whose revision is relative to the current
 * one (`back` revisions ago; -1 = one in the future), so generated reads hit
 * live, compacted and future revisions alike.
 */
export type Step =
  | { kind: 'command'; cmd: Command }
  | { kind: 'compactBack'; back: number }
  | { kind: 'get'; key: string; back: number; keysOnly: boolean }
  | { kind: 'range'; prefix: string; after?: string; limit: number; back: number }
  | { kind: 'changes'; key: string; prefix: boolean; back: number };

const key = fc.constantFrom(...KEYS);
const prefix = fc.constantFrom(...PREFIXES);
const value = fc.constantFrom('v1', 'v2', 'v3', '', '\u{1F600}');
const lease = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...LEASES) },
  { weight: 1, arbitrary: fc.constant('nope') },
);
const back = fc.oneof(fc.integer({ min: -1, max: 4 }), fc.integer({ min: 5, max: 40 }));

const txnOp: fc.Arbitrary<TxnOp> = fc.oneof(
  fc.record({ op: fc.constant('put' as const), key, value }),
  fc.record({ op: fc.constant('put' as const), key, value, lease }),
  fc.record(
    { op: fc.constant('get' as const), key, prefix: fc.boolean() },
    { requiredKeys: ['op', 'key'] },
  ),
  fc.oneof(
    fc.record({ op: fc.constant('delete' as const), key }),
    fc.record({ op: fc.constant('delete' as const), key: prefix, prefix: fc.constant(true) }),
  ),
);

const compare = fc.oneof(
  fc.record({
    key,
    target: fc.constant('value' as const),
    op: fc.constantFrom('==', '!=', '<', '>' as const),
    value: fc.oneof(value, fc.constant(null)),
  }),
  fc.record({
    key,
    target: fc.constantFrom('version', 'createRevision', 'modRevision' as const),
    op: fc.constantFrom('==', '!=', '<', '>' as const),
    value: fc.nat(8),
  }),
  fc.record({
    key,
    target: fc.constant('lease' as const),
    op: fc.constantFrom('==', '!=' as const),
    value: fc.oneof(lease, fc.constant(null)),
  }),
  fc.record({ lock: fc.constant('lock'), token: fc.nat(5) }),
);

export const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ type: fc.constant('put' as const), key, value }) },
  {
    weight: 3,
    arbitrary: fc.record(
      { type: fc.constant('put' as const), key, value, prevRevision: fc.nat(8), prevValue: value },
      { requiredKeys: ['type', 'key', 'value'] },
    ),
  },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('put' as const), key, value, lease }) },
  {
    weight: 3,
    arbitrary: fc.oneof(
      fc.record(
        { type: fc.constant('delete' as const), key, prevRevision: fc.nat(8) },
        { requiredKeys: ['type', 'key'] },
      ),
      fc.record({ type: fc.constant('delete' as const), key: prefix, prefix: fc.constant(true) }),
    ),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant('txn' as const),
      compare: fc.array(compare, { maxLength: 3 }),
      success: fc.array(txnOp, { maxLength: 4 }),
      failure: fc.array(txnOp, { maxLength: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('leaseGrant' as const),
      id: lease,
      ttlMs: fc.constant(5000),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('leaseRevoke' as const), id: lease }) },
);

export const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 10, arbitrary: command.map((cmd) => ({ kind: 'command' as const, cmd })) },
  { weight: 1, arbitrary: back.map((b) => ({ kind: 'compactBack' as const, back: b })) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('get' as const), key, back, keysOnly: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        kind: fc.constant('range' as const),
        prefix,
        after: key,
        limit: fc.nat(3),
        back,
      },
      { requiredKeys: ['kind', 'prefix', 'limit', 'back'] },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('changes' as const),
      key: fc.oneof(key, prefix),
      prefix: fc.boolean(),
      back,
    }),
  },
);

/** The revision `back` revisions before `current` (-1: one after it), never negative. */
export function revisionBack(current: number, back: number): number {
  return Math.max(current - back, 0);
}
