/**
 * Model-based test of the MVCC store through the state machine: random puts,
 * CAS puts, deletes, prefix deletes, txns, leases, compactions and reads at
 * past, compacted and future revisions, checked step by step against KvModel
 * (a full copy of the map per revision). Watchers registered on the hub must
 * see exactly the model's events, one call per revision.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import type { CommandResult, KeyFilter, RevisionChange } from '../../src/kv/index.js';
import { Feeder } from './helpers.js';
import { type Expected, KvModel, revisionBack, type Step, step } from './model.js';

function comparable(result: CommandResult, expected: Expected): unknown {
  if (result.ok || expected.ok) return result;
  // Messages are for humans; codes and data are the contract.
  const { message: _message, ...rest } = result;
  return rest;
}

function expectedChanges(model: KvModel, from: number, filter: KeyFilter): RevisionChange[] {
  const changes: RevisionChange[] = [];
  for (let r = Math.max(from, 1); r <= model.revision; r++) {
    const events = model.events[r]!.filter((e) =>
      filter.prefix ? e.kv.key.startsWith(filter.key) : e.kv.key === filter.key,
    );
    if (events.length > 0) changes.push({ revision: r, events });
  }
  return changes;
}

function runSteps(steps: Step[]): void {
  const feeder = new Feeder();
  const { sm } = feeder;
  const model = new KvModel();
  const filters: KeyFilter[] = [
    { key: '', prefix: true },
    { key: 'a', prefix: false },
    { key: 'a/', prefix: true },
    { key: '\u{1F600}', prefix: false },
  ];
  const seen = filters.map(() => [] as RevisionChange[]);
  filters.forEach((filter, i) => {
    sm.watches.register({ ...filter, onChange: (change) => seen[i]!.push(change) });
  });

  for (const s of steps) {
    const current = model.revision;
    switch (s.kind) {
      case 'command':
      case 'compactBack': {
        const cmd =
          s.kind === 'command'
            ? s.cmd
            : { type: 'compact' as const, revision: revisionBack(current, s.back) };
        const expected = model.apply(cmd);
        const actual = feeder.apply(cmd);
        assert.deepStrictEqual(comparable(actual, expected), expected, JSON.stringify(cmd));
        break;
      }
      case 'get': {
        const revision = revisionBack(current, s.back);
        const at = model.readRevision(revision);
        const actual = sm.get(s.key, { revision, keysOnly: s.keysOnly });
        if (typeof at === 'string') {
          assert.equal(actual.ok ? 'ok' : actual.code, at, `get ${s.key}@${revision}`);
        } else {
          const kv = model.maps[at]!.get(s.key) ?? null;
          const expectedKv = kv !== null && s.keysOnly ? { ...kv, value: '' } : kv;
          assert.deepStrictEqual(actual, { ok: true, revision: current, kv: expectedKv });
        }
        break;
      }
      case 'range': {
        const revision = revisionBack(current, s.back);
        const at = model.readRevision(revision);
        const actual = sm.range({ prefix: s.prefix, after: s.after, limit: s.limit, revision });
        if (typeof at === 'string') {
          assert.equal(actual.ok ? 'ok' : actual.code, at);
        } else {
          const { kvs, more } = model.range(at, s.prefix, s.after, s.limit);
          assert.deepStrictEqual(
            actual,
            { ok: true, revision: current, kvs, more },
            JSON.stringify(s),
          );
        }
        break;
      }
      case 'changes': {
        const from = revisionBack(current, s.back);
        const filter = { key: s.key, prefix: s.prefix };
        const actual = sm.changes(from, filter);
        if (Math.max(from, 1) < model.compactRevision) {
          assert.equal(actual.ok ? 'ok' : actual.code, 'compacted');
        } else {
          const changes = expectedChanges(model, from, filter);
          assert.deepStrictEqual(
            actual,
            { ok: true, revision: current, changes },
            JSON.stringify(s),
          );
        }
        break;
      }
    }
    assert.equal(sm.revision, model.revision);
    assert.equal(sm.compactRevision, model.compactRevision);
  }

  filters.forEach((filter, i) => {
    assert.deepStrictEqual(
      seen[i],
      expectedChanges(model, 1, filter),
      `watch ${JSON.stringify(filter)}`,
    );
  });
}

t.test('state machine agrees with the model', (t) => {
  fc.assert(fc.property(fc.array(step, { maxLength: 150, size: 'max' }), runSteps), {
    numRuns: 200,
  });
  t.pass('200 random histories');
  t.end();
});

t.test('a long history with many keys and compactions', (t) => {
  fc.assert(fc.property(fc.array(step, { maxLength: 800, size: 'max' }), runSteps), {
    numRuns: 15,
  });
  t.pass('15 long histories');
  t.end();
});
