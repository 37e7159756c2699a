import fc from 'fast-check';
import t from 'tap';
import { openDatabase, openSublevels } from '../../src/storage/load.js';
import { SublevelKeys } from '../../src/storage/sublevel-keys.js';
import { tempDir } from './helpers.js';

const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : 'missing');

t.test('a key prefixed for the root is the key its sublevel writes and reads', async (t) => {
  const db = await openDatabase(await tempDir(t));
  t.teardown(() => db.close());
  const sub = openSublevels(db);
  const kv = new SublevelKeys(sub.kv);
  const log = new SublevelKeys(sub.log);
  const value = (n: number) => Uint8Array.of(n & 0xff, 1, 2);
  await fc.assert(
    fc.asyncProperty(
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.uint8Array({ maxLength: 24 }),
      async (text, bytes) => {
        t.equal(
          hex(kv.ofText(text)),
          hex(sub.kv.prefixKey(new TextEncoder().encode(text), 'view')),
        );
        t.equal(hex(log.ofBytes(bytes)), hex(sub.log.prefixKey(bytes, 'view')));
        const batch = db.batch();
        batch.put(kv.ofText(text), value(text.length));
        batch.put(log.ofBytes(bytes), value(bytes.length));
        await batch.write();
        t.equal(hex(await sub.kv.get(text)), hex(value(text.length)));
        t.equal(hex(await sub.log.get(bytes)), hex(value(bytes.length)));
        const del = db.batch();
        del.del(kv.ofText(text));
        await del.write();
        t.equal(await sub.kv.get(text), undefined);
      },
    ),
    { numRuns: 60, seed: 7 },
  );
});
