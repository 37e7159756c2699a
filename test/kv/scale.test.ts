/**
 * 100k keys of 256 bytes: inserts in random order must not degrade to O(n)
 * each, and paging, snapshots and reloads must stay usable. The time bounds
 * are loose (CI machines vary); they catch quadratic behaviour, not regressions of 20%.
 */
import t from 'tap';
import { encodeCommand, KvStateMachine } from '../../src/kv/index.js';
import { RecordStore } from './helpers.js';

const KEYS = 100_000;
const VALUE = 'v'.repeat(256);

t.test('100k keys of 256 bytes', (t) => {
  const sm = new KvStateMachine();
  const disk = new RecordStore();
  let started = performance.now();
  for (let i = 0; i < KEYS; i++) {
    // A permutation of 0..KEYS-1, so keys arrive out of order.
    const key = `service/${((i * 7_919) % KEYS).toString().padStart(6, '0')}`;
    sm.apply(i + 1, encodeCommand({ v: 1, atMs: i, cmd: { type: 'put', key, value: VALUE } }));
    if (i % 1_000 === 999) disk.write(sm.takeMutations()); // the server persists per batch
  }
  disk.write(sm.takeMutations());
  const putMs = performance.now() - started;
  t.equal(sm.revision, KEYS);
  t.ok(putMs < 15_000, `100k puts: ${putMs.toFixed(0)} ms`);

  started = performance.now();
  let after: string | undefined;
  let pages = 0;
  let seen = 0;
  for (;;) {
    const page = sm.range({ prefix: 'service/', after, limit: 1_000, keysOnly: true });
    if (!page.ok) throw new Error(page.message);
    seen += page.kvs.length;
    pages++;
    if (!page.more) break;
    after = page.kvs[page.kvs.length - 1]!.key;
  }
  t.equal(seen, KEYS);
  t.equal(pages, 100);
  t.ok(
    performance.now() - started < 5_000,
    `paged through in ${(performance.now() - started).toFixed(0)} ms`,
  );

  started = performance.now();
  const snapshot = sm.snapshot();
  const restored = KvStateMachine.restore(snapshot, sm.appliedIndex);
  const loaded = KvStateMachine.load(disk.records, sm.appliedIndex);
  t.ok(
    performance.now() - started < 15_000,
    `snapshot, restore and load: ${(performance.now() - started).toFixed(0)} ms`,
  );
  // Equality of whole states is the determinism test's job; here: nothing lost at scale.
  const page = sm.range({ prefix: 'service/05', limit: 50 });
  for (const copy of [restored, loaded]) {
    t.equal(copy.revision, KEYS);
    t.equal(copy.stats().keysWithHistory, KEYS);
    t.strictSame(copy.range({ prefix: 'service/05', limit: 50 }), page);
  }
  t.end();
});
