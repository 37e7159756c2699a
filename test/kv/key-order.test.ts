/** Key order (UTF-8 byte order) and the chunked sorted key index. */
import fc from 'fast-check';
import t from 'tap';
import { compareKeys } from '../../src/kv/index.js';
import { SortedKeys } from '../../src/kv/mvcc/sorted-keys.js';

const utf8 = new TextEncoder();
const byteCompare = (a: string, b: string) => Buffer.compare(utf8.encode(a), utf8.encode(b));
const sign = (n: number) => Math.sign(n);

// Well-formed strings over all of Unicode, biased toward the interesting boundaries.
const key = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.string({
    unit: fc.constantFrom('a', 'b', '/', '\uE000', '\uFFFF', '\u{10000}', '\u{1F600}'),
    maxLength: 5,
  }),
);

t.test('compareKeys is UTF-8 byte order', (t) => {
  fc.assert(
    fc.property(key, key, (a, b) => sign(compareKeys(a, b)) === sign(byteCompare(a, b))),
    { numRuns: 5_000 },
  );
  t.ok(compareKeys('\uE000', '\u{1F600}') < 0, 'U+E000 before an astral character, unlike JS <');
  t.ok('\uE000' > '\u{1F600}');
  t.end();
});

t.test('SortedKeys behaves like a sorted array', (t) => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), key }),
    fc.record({ kind: fc.constant('remove' as const), key }),
    fc.record({ kind: fc.constant('from' as const), key, exclusive: fc.boolean() }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const keys = new SortedKeys();
      let model: string[] = [];
      for (const o of ops) {
        if (o.kind === 'insert') {
          if (model.includes(o.key)) continue;
          keys.insert(o.key);
          model = [...model, o.key].sort(byteCompare);
        } else if (o.kind === 'remove') {
          const present = model.includes(o.key);
          if (keys.remove(o.key) !== present) return false;
          model = model.filter((k) => k !== o.key);
        } else {
          const expected = model.filter((k) =>
            o.exclusive ? byteCompare(k, o.key) > 0 : byteCompare(k, o.key) >= 0,
          );
          if (JSON.stringify([...keys.from(o.key, o.exclusive)]) !== JSON.stringify(expected))
            return false;
        }
        if (keys.size !== model.length) return false;
      }
      return JSON.stringify([...keys.from('')]) === JSON.stringify(model);
    }),
    { numRuns: 300 },
  );
  t.pass('300 random histories');
  t.end();
});

t.test('SortedKeys splits and merges chunks correctly at scale', (t) => {
  const keys = new SortedKeys();
  const all: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    const k = `k${((i * 7_919) % 20_000).toString().padStart(5, '0')}`;
    keys.insert(k);
    all.push(k);
  }
  all.sort();
  t.same([...keys.from('')], all);
  for (let i = 0; i < 20_000; i += 2) keys.remove(all[i]!);
  t.same(
    [...keys.from('')],
    all.filter((_, i) => i % 2 === 1),
  );
  t.same([...keys.from('k19990', true)], ['k19991', 'k19993', 'k19995', 'k19997', 'k19999']);
  t.throws(() => keys.insert('k19999'), 'duplicate insert is a programmer error');
  t.end();
});
