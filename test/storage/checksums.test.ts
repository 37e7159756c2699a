/**
 * Checksums on the Raft records (issue 13 item 6): every log entry and every
 * record of the raft sublevel is sealed with a CRC-32C over its key and body.
 * A flipped byte in a real LevelDB data dir makes open() fail with 'corrupt'
 * naming the sublevel and the index or key, and saying what to do; a data
 * dir written before checksums (format 1) still opens and is rewritten sealed.
 */
import { readdir } from 'node:fs/promises';
import { Level } from 'level';
import t, { type Test } from 'tap';
import { DecodeError, decodeEntry, encodeEntry } from '../../src/storage/codec.js';
import { crc32c, crc32cOfIndex } from '../../src/storage/crc32c.js';
import { decodeStoredEntry, LevelRaftStorage, StorageError } from '../../src/storage/index.js';
import { encodeLogKey, META_KEY, RAFT_KEY, SUBLEVEL } from '../../src/storage/keys.js';
import { ent, ents, fixtureDir, IDENTITY, tempDir } from './helpers.js';

type RawDb = Level<Uint8Array, Uint8Array>;

const ADVICE = /remove this member and add it back with an empty data dir/;

async function withRawDb<T>(dir: string, fn: (db: RawDb) => Promise<T>): Promise<T> {
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const logSub = (db: RawDb) =>
  db.sublevel<Uint8Array, Uint8Array>(SUBLEVEL.log, { keyEncoding: 'view', valueEncoding: 'view' });
const textSub = (db: RawDb, name: string) =>
  db.sublevel<string, Uint8Array>(name, { keyEncoding: 'utf8', valueEncoding: 'view' });

/** Flips one bit of the stored value under `key` in `level`. */
async function flipStoredBit<K>(
  level: { get(k: K): Promise<Uint8Array | undefined>; put(k: K, v: Uint8Array): Promise<void> },
  key: K,
  byte: number,
  bit = 0,
): Promise<void> {
  const stored = await level.get(key);
  if (stored === undefined) throw new Error('no such record');
  const damaged = Uint8Array.from(stored);
  damaged[byte]! ^= 1 << bit;
  await level.put(key, damaged);
}

/** A dir with entries 2..8 (term 1, then 2 from 5), commit 6, applied 5, and a snapshot at 4. */
async function dirWithLog(t: Test): Promise<string> {
  const dir = await tempDir(t);
  const s = await LevelRaftStorage.open(dir);
  await s.initialize(IDENTITY, ['n1']);
  await s.persistReady(
    { entries: ents(2, 8, (i) => (i < 5 ? 1 : 2)), hardState: { term: 2, vote: 'n1', commit: 6 } },
    true,
  );
  await s.persistApplied(5, undefined, []);
  await s.compact(4, 1, { voters: ['n1'], learners: [] }, 2);
  await s.close();
  return dir;
}

t.test('CRC-32C matches the standard check values', async (t) => {
  const enc = new TextEncoder();
  t.equal(crc32c(enc.encode('123456789')), 0xe3069283);
  t.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  t.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  const whole = enc.encode('a record, then more of it');
  t.equal(crc32c(whole.subarray(9), crc32c(whole.subarray(0, 9))), crc32c(whole), 'chains');
  for (const i of [0, 1, 300, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
    t.equal(crc32cOfIndex(i), crc32c(encodeLogKey(i)), `index ${i} as its key`);
  }
});

t.test('every single-bit flip of an entry record is refused, naming the index', async (t) => {
  const entry = ent(77, 3, 'a value of some length');
  const sealed = encodeEntry(entry);
  t.same(decodeEntry(77, sealed), entry, 'the record round-trips');
  let refused = 0;
  for (let byte = 0; byte < sealed.byteLength; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = Uint8Array.from(sealed);
      damaged[byte]! ^= 1 << bit;
      try {
        decodeStoredEntry(77, damaged, '/data/n1');
      } catch (err) {
        if (err instanceof StorageError && err.code === 'corrupt' && /entry 77/.test(err.message))
          refused++;
      }
    }
  }
  t.equal(refused, sealed.byteLength * 8, `all ${sealed.byteLength * 8} flips refused`);
  t.throws(() => decodeEntry(78, sealed), DecodeError, 'a record under another index is refused');
  t.throws(
    () => decodeStoredEntry(76, sealed, '/data/n1'),
    {
      code: 'corrupt',
      message: /data dir \/data\/n1 is damaged \(sublevel log, entry 76: checksum mismatch/,
    },
    'decodeStoredEntry says which entry',
  );
  t.throws(
    () => decodeEntry(77, Uint8Array.of(1, 0, 3, 0x61)),
    /unknown entry version 1/,
    'the unsealed format 1 form only when asked for',
  );
  t.same(decodeEntry(77, Uint8Array.of(1, 0, 3, 0x61), { legacy: true }), {
    ...ent(77, 3, 'a'),
  });
});

const DAMAGES: {
  name: string;
  damage: (db: RawDb) => Promise<void>;
  message: RegExp;
}[] = [
  {
    name: 'a flipped bit in the data of entry 6',
    damage: (db) => flipStoredBit(logSub(db), encodeLogKey(6), 7, 3),
    message: /\(sublevel log, entry 6: checksum mismatch/,
  },
  {
    name: 'a flipped bit in the checksum of entry 3',
    damage: (db) => flipStoredBit(logSub(db), encodeLogKey(3), 2),
    message: /\(sublevel log, entry 3: checksum mismatch/,
  },
  {
    name: 'a flipped bit in the term of entry 8',
    damage: (db) => flipStoredBit(logSub(db), encodeLogKey(8), 6, 2),
    message: /\(sublevel log, entry 8: checksum mismatch/,
  },
  {
    name: 'the version byte of entry 5 flipped to the unsealed form',
    damage: (db) => flipStoredBit(logSub(db), encodeLogKey(5), 0, 1),
    message: /\(sublevel log, entry 5: unknown entry version 0\)/,
  },
  {
    name: 'entry 7 stored under index 6 (a misdirected write)',
    damage: async (db) => {
      const seven = await logSub(db).get(encodeLogKey(7));
      await logSub(db).put(encodeLogKey(6), seven!);
    },
    message: /\(sublevel log, entry 6: checksum mismatch/,
  },
  {
    name: 'a flipped bit in the snapshot metadata',
    damage: (db) => flipStoredBit(textSub(db, SUBLEVEL.raft), RAFT_KEY.snapshot, 12),
    message: /\(sublevel raft, record snapshot: checksum mismatch/,
  },
  {
    name: 'a flipped bit in the hard state',
    damage: (db) => flipStoredBit(textSub(db, SUBLEVEL.raft), RAFT_KEY.hardState, 5),
    message: /\(sublevel raft, record hardState: checksum mismatch/,
  },
  {
    name: 'a flipped bit in the membership',
    damage: (db) => flipStoredBit(textSub(db, SUBLEVEL.raft), RAFT_KEY.confState, 9),
    message: /\(sublevel raft, record confState: checksum mismatch/,
  },
  {
    name: 'a flipped bit in the log start',
    damage: (db) => flipStoredBit(textSub(db, SUBLEVEL.raft), RAFT_KEY.logStart, 5),
    message: /\(sublevel raft, record logStart: checksum mismatch/,
  },
  {
    name: 'a flipped bit in the applied index',
    damage: (db) => flipStoredBit(textSub(db, SUBLEVEL.raft), RAFT_KEY.applied, 5),
    message: /\(sublevel raft, record applied: checksum mismatch/,
  },
  {
    name: 'the applied index stored as the hard state (records swapped)',
    damage: async (db) => {
      const raft = textSub(db, SUBLEVEL.raft);
      await raft.put(RAFT_KEY.hardState, (await raft.get(RAFT_KEY.applied))!);
    },
    message: /\(sublevel raft, record hardState: checksum mismatch/,
  },
];

for (const d of DAMAGES) {
  t.test(`open refuses ${d.name}`, async (t) => {
    const dir = await dirWithLog(t);
    const healthy = await LevelRaftStorage.open(dir);
    t.equal(healthy.lastIndex(), 8, 'the dir opens before the damage');
    await healthy.close();
    await withRawDb(dir, d.damage);
    const err = await LevelRaftStorage.open(dir).catch((e: unknown) => e);
    t.type(err, StorageError);
    t.match(err, { code: 'corrupt', dataDir: dir, message: d.message });
    t.match(err, { message: ADVICE });
    t.match(err, { message: new RegExp(`^data dir ${dir} is damaged`) });
  });
}

/**
 * test/storage/fixtures/format-1 was written by the storage code before checksums (main at
 * 329c276): cluster-f1, member n1 of n1..n3; entries 2..40 (term 2 to 19, then 3), compacted
 * at snapshot 30 keeping 5 (log start 25); commit 38, applied 35; kv k1=v1, k2=v2.
 */
function format1Dir(t: Test): Promise<string> {
  return fixtureDir(t, 'format-1');
}

t.test('a format 1 data dir (no checksums) opens, and is rewritten sealed', async (t) => {
  const dir = await format1Dir(t);
  const rawBefore = await withRawDb(dir, async (db) => ({
    format: new TextDecoder().decode(await textSub(db, SUBLEVEL.meta).get(META_KEY.formatVersion)),
    firstByte: (await logSub(db).get(encodeLogKey(30)))![0],
  }));
  t.same(rawBefore, { format: '1', firstByte: 1 }, 'the fixture is of format 1, unsealed');

  const s = await LevelRaftStorage.open(dir);
  t.match(s.identity(), { formatVersion: 3, clusterId: 'cluster-f1', nodeId: 'n1' });
  t.equal(s.firstIndex(), 26);
  t.equal(s.lastIndex(), 40);
  t.equal(s.term(25), 3, 'the log start keeps its term');
  t.same(
    s.entries(26, 41).map((e) => [e.index, e.term, new TextDecoder().decode(e.data)]),
    [...Array.from({ length: 15 }, (_, k) => [26 + k, 3, `entry ${26 + k}`])],
  );
  t.same(s.initialState().hardState, { term: 3, vote: 'n1', commit: 38 });
  t.match(s.snapshot().metadata, { index: 30, term: 3, confState: { voters: ['n1', 'n2', 'n3'] } });
  t.equal(s.appliedIndex(), 35);
  const kv: Record<string, string> = {};
  for await (const [k, v] of s.kvRecords()) kv[k] = new TextDecoder().decode(v);
  t.same(kv, { k1: 'v1', k2: 'v2' });
  t.match(s.members(), [{ id: 'n1', name: 'node-1' }]);
  // Writing goes on in the new form.
  await s.persistReady(
    { entries: [ent(41, 3)], hardState: { term: 3, vote: 'n1', commit: 40 } },
    true,
  );
  await s.close();

  const rawAfter = await withRawDb(dir, async (db) => {
    const firstBytes: number[] = [];
    for await (const v of logSub(db).values()) firstBytes.push(v[0]!);
    const raft: Record<string, number> = {};
    for await (const [k, v] of textSub(db, SUBLEVEL.raft).iterator()) raft[k] = v[0]!;
    const kv: Record<string, number> = {};
    for await (const [k, v] of textSub(db, SUBLEVEL.kv).iterator()) kv[k] = v[0]!;
    const format = await textSub(db, SUBLEVEL.meta).get(META_KEY.formatVersion);
    const marker = await textSub(db, SUBLEVEL.meta).get(META_KEY.kvResealedThrough);
    return { firstBytes, raft, kv, marker, format: new TextDecoder().decode(format) };
  });
  t.equal(rawAfter.format, '3', 'upgraded in place to format 3');
  t.same(rawAfter.kv, { k1: 2, k2: 2 }, 'and the kv records are sealed (format 1 → 3)');
  t.equal(rawAfter.marker, undefined, 'the upgrade finished: no marker left');
  t.equal(rawAfter.firstBytes.length, 16, 'entries 26..41 stored');
  t.ok(
    rawAfter.firstBytes.every((b) => b === 2),
    'every stored entry is sealed (version byte 2)',
  );
  t.same(
    rawAfter.raft,
    { applied: 2, confState: 2, hardState: 2, logStart: 2, snapshot: 2 },
    'every raft record is sealed',
  );
  const again = await LevelRaftStorage.open(dir);
  t.equal(again.lastIndex(), 41, 'and it opens again');
  await again.close();
});

t.test('a format 1 dir is checked as well as that format allows', async (t) => {
  const dir = await format1Dir(t);
  // Format 1 has no checksum; a damaged version byte is still caught.
  await withRawDb(dir, (db) => flipStoredBit(logSub(db), encodeLogKey(33), 0, 3));
  await t.rejects(LevelRaftStorage.open(dir), {
    code: 'corrupt',
    message: /\(sublevel log, entry 33: unknown entry version 9\)/,
  });
  t.same(
    (await readdir(dir)).filter((n) => n.startsWith('MANIFEST')).length > 0,
    true,
    'the dir is still there to restore from',
  );
  const format = await withRawDb(dir, async (db) =>
    new TextDecoder().decode(await textSub(db, SUBLEVEL.meta).get(META_KEY.formatVersion)),
  );
  t.equal(format, '1', 'a refused dir is not upgraded');
});
