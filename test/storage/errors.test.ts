/**
 * A data dir that is damaged, foreign, too new or in use gives the right
 * StorageError code and a message saying what is wrong and what to do — and
 * is never silently treated as empty.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Level } from 'level';
import t, { type Test } from 'tap';
import { NONE } from '../../src/raft/index.js';
import { encodeEntry, encodeHardState, encodeIndex, encodeText } from '../../src/storage/codec.js';
import { crc32c, crc32cOfIndex } from '../../src/storage/crc32c.js';
import { FORMAT_VERSION, LevelRaftStorage, StorageError } from '../../src/storage/index.js';
import { encodeLogKey, META_KEY, RAFT_KEY, SUBLEVEL } from '../../src/storage/keys.js';
import { ent, ents, IDENTITY, tempDir } from './helpers.js';

type RawDb = Level<Uint8Array, Uint8Array>;

/** Opens the database underneath the storage, to damage it. */
async function withRawDb(dir: string, fn: (db: RawDb) => Promise<void>): Promise<void> {
  const db = new Level<Uint8Array, Uint8Array>(dir, {
    keyEncoding: 'view',
    valueEncoding: 'view',
    createIfMissing: true,
  });
  await db.open();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

function sub(db: RawDb, name: string) {
  return db.sublevel<string, Uint8Array>(name, { keyEncoding: 'utf8', valueEncoding: 'view' });
}

function logSub(db: RawDb) {
  return db.sublevel<Uint8Array, Uint8Array>(SUBLEVEL.log, {
    keyEncoding: 'view',
    valueEncoding: 'view',
  });
}

/** A sealed record (codec.ts) under raft key `key` with `body`, its checksum right. */
function resealed(key: string, body: number[]): Uint8Array {
  return seal(Uint8Array.of(2, 0, 0, 0, 0, ...body), crc32c(encodeText(key)));
}

/** A sealed log entry record at `index` with `body` (type, term, data), its checksum right. */
function resealedEntry(index: number, body: Uint8Array): Uint8Array {
  return seal(Uint8Array.of(2, 0, 0, 0, 0, ...body), crc32cOfIndex(index));
}

function seal(buf: Uint8Array, seed: number): Uint8Array {
  new DataView(buf.buffer).setUint32(1, crc32c(buf, seed, 5));
  return buf;
}

/** A healthy data dir: entries 2..6 (term 1, 2 from index 5), commit 4, applied 3. */
async function healthyDir(t: Test): Promise<string> {
  const dir = await tempDir(t);
  const storage = await LevelRaftStorage.open(dir);
  await storage.initialize(IDENTITY, ['n1']);
  await storage.persistReady(
    {
      entries: ents(2, 6, (i) => (i < 5 ? 1 : 2)),
      hardState: { term: 2, vote: 'n1', commit: 4 },
    },
    true,
  );
  await storage.persistApplied(3, undefined, [{ type: 'put', key: 'k', value: encodeText('v') }]);
  await storage.close();
  return dir;
}

t.test('a healthy dir opens (the baseline the damage cases start from)', async (t) => {
  const storage = await LevelRaftStorage.open(await healthyDir(t));
  t.equal(storage.lastIndex(), 6);
  await storage.close();
});

const CORRUPTIONS: { name: string; damage: (db: RawDb) => Promise<void>; message: RegExp }[] = [
  {
    name: 'an entry with an unknown version byte',
    damage: (db) => logSub(db).put(encodeLogKey(4), Uint8Array.of(9, 0, 1)),
    message: /sublevel log, entry 4: unknown entry version 9/,
  },
  {
    name: 'a truncated entry',
    damage: (db) => logSub(db).put(encodeLogKey(4), Uint8Array.of(2, 0)),
    message: /sublevel log, entry 4: truncated before entry checksum/,
  },
  {
    name: 'an entry of unknown type',
    damage: (db) => logSub(db).put(encodeLogKey(3), resealedEntry(3, Uint8Array.of(7, 1))),
    message: /sublevel log, entry 3: unknown entry type 7/,
  },
  {
    name: 'a gap in the log',
    damage: (db) => logSub(db).del(encodeLogKey(4)),
    message: /the log has a gap: entry 4 is missing, next is 5/,
  },
  {
    name: 'a log key of the wrong length',
    damage: (db) => logSub(db).put(Uint8Array.of(1, 2, 3), encodeEntry(ent(1, 1))),
    message: /a log key is 3 bytes, not 8/,
  },
  {
    name: 'terms going down along the log',
    damage: (db) => logSub(db).put(encodeLogKey(6), encodeEntry(ent(6, 1))),
    message: /log entry 6 has term 1 below 2/,
  },
  {
    name: 'a hard state commit beyond the last index',
    damage: (db) =>
      sub(db, SUBLEVEL.raft).put(
        RAFT_KEY.hardState,
        encodeHardState({ term: 2, vote: NONE, commit: 100 }),
      ),
    message: /hard state commit 100 is beyond the last log index 6/,
  },
  {
    name: 'an applied index beyond the commit',
    damage: (db) => sub(db, SUBLEVEL.raft).put(RAFT_KEY.applied, encodeIndex(5)),
    message: /applied index 5 is beyond the commit index 4/,
  },
  {
    name: 'an undecodable hard state (its checksum right)',
    damage: (db) =>
      sub(db, SUBLEVEL.raft).put(RAFT_KEY.hardState, resealed(RAFT_KEY.hardState, [0xff])),
    message: /sublevel raft, record hardState: truncated before hard state term/,
  },
  {
    name: 'a hard state in the unchecked form of format 1',
    damage: (db) => sub(db, SUBLEVEL.raft).put(RAFT_KEY.hardState, Uint8Array.of(1, 2, 4)),
    message: /sublevel raft, record hardState: unknown hard state version 1/,
  },
  {
    name: 'a missing identity record',
    damage: (db) => sub(db, SUBLEVEL.meta).del(META_KEY.nodeId),
    message: /the meta record nodeId is missing/,
  },
  {
    name: 'a malformed format version',
    damage: (db) => sub(db, SUBLEVEL.meta).put(META_KEY.formatVersion, encodeText('one')),
    message: /format version "one" is not a version number/,
  },
  {
    name: 'a malformed member record',
    damage: (db) => sub(db, SUBLEVEL.members).put('n1', encodeText('{"name": 3}')),
    message: /member record n1: member record has no name/,
  },
];

for (const c of CORRUPTIONS) {
  t.test(`corrupt: ${c.name}`, async (t) => {
    const dir = await healthyDir(t);
    await withRawDb(dir, c.damage);
    const err = await LevelRaftStorage.open(dir).catch((e: unknown) => e);
    t.type(err, StorageError);
    t.match(err, { code: 'corrupt', dataDir: dir, message: c.message });
    t.match(err, {
      message: /remove this member and add it back with an empty data dir \(kvctl member remove/,
    });
  });
}

t.test('corrupt: LevelDB itself is damaged', async (t) => {
  const dir = await healthyDir(t);
  await writeFile(path.join(dir, 'CURRENT'), 'MANIFEST-999999\n');
  await t.rejects(LevelRaftStorage.open(dir), { code: 'corrupt', message: /LevelDB: .*MANIFEST/ });
});

t.test('corrupt: CURRENT naming a file that does not exist', async (t) => {
  // Garbage that happens to end in a newline reads as a manifest name LevelDB cannot find.
  const dir = await healthyDir(t);
  await writeFile(path.join(dir, 'CURRENT'), 'x\u00e9\u0001garbage\n');
  await t.rejects(LevelRaftStorage.open(dir), { code: 'corrupt', message: /LevelDB: / });
});

t.test('corrupt: LevelDB files without CURRENT are not mistaken for a new dir', async (t) => {
  const dir = await healthyDir(t);
  await rm(path.join(dir, 'CURRENT'));
  const before = (await readdir(dir)).sort();
  await t.rejects(LevelRaftStorage.open(dir), {
    code: 'corrupt',
    message: /CURRENT file is missing/,
  });
  t.same((await readdir(dir)).sort(), before, 'nothing was written');
});

t.test('foreign: a directory of other files is left alone', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'notes.txt'), 'mine');
  await writeFile(path.join(dir, 'photo.jpg'), 'mine too');
  await t.rejects(LevelRaftStorage.open(dir), {
    code: 'foreign',
    message: new RegExp(
      `data dir ${dir} is not a raftkv data dir \\(it holds notes.txt, photo.jpg and no ` +
        'LevelDB database\\): point --data-dir at an empty or missing directory',
    ),
  });
  t.same((await readdir(dir)).sort(), ['notes.txt', 'photo.jpg'], 'nothing was written');
});

t.test('foreign: a file where the directory should be', async (t) => {
  const file = path.join(await tempDir(t), 'data');
  await writeFile(file, '');
  await t.rejects(LevelRaftStorage.open(file), {
    code: 'foreign',
    message: /it is a file, not a directory/,
  });
});

t.test('foreign: a LevelDB database that raftkv did not write', async (t) => {
  const dir = await tempDir(t);
  await withRawDb(dir, (db) => db.put(encodeText('user:1'), encodeText('alice')));
  await t.rejects(LevelRaftStorage.open(dir), {
    code: 'foreign',
    message: /holds a LevelDB database without raftkv metadata/,
  });
});

t.test('format_too_new: written by a newer raftkv', async (t) => {
  const dir = await healthyDir(t);
  const newer = FORMAT_VERSION + 1;
  await withRawDb(dir, (db) =>
    sub(db, SUBLEVEL.meta).put(META_KEY.formatVersion, encodeText(String(newer))),
  );
  const err = await LevelRaftStorage.open(dir).catch((e: unknown) => e);
  t.match(err, {
    code: 'format_too_new',
    message: `data dir ${dir} holds raftkv format ${newer} but this binary reads up to ${FORMAT_VERSION}: upgrade raftkv, or point --data-dir elsewhere`,
  });
});

t.test('install_incomplete: the installing marker is present', async (t) => {
  const dir = await healthyDir(t);
  await withRawDb(dir, (db) =>
    sub(db, SUBLEVEL.raft).put(RAFT_KEY.installing, encodeIndex(4, RAFT_KEY.installing)),
  );
  await t.rejects(LevelRaftStorage.open(dir), {
    code: 'install_incomplete',
    message: /snapshot at index 4 was written only in part/,
  });
});

t.test('locked: a second open of the same dir', async (t) => {
  const dir = await healthyDir(t);
  const first = await LevelRaftStorage.open(dir);
  t.teardown(() => first.close());
  await t.rejects(LevelRaftStorage.open(dir), {
    code: 'locked',
    message: new RegExp(`data dir ${dir} is locked: is another raftkv using this data dir\\?`),
  });
  await first.persistReady({ entries: [ent(7, 2)] }, true);
  t.equal(first.lastIndex(), 7, 'the first opener is unaffected');
});

t.test('a first start that stopped while LevelDB created its files opens as new', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'LOCK'), '');
  await writeFile(path.join(dir, 'LOG'), 'leveldb info log');
  await mkdir(path.join(dir, 'lost+found'));
  const storage = await LevelRaftStorage.open(dir);
  t.teardown(() => storage.close());
  t.equal(storage.identity(), undefined);
});

t.test(
  'entries left below the log start by an interrupted compaction are skipped, then deleted',
  async (t) => {
    const dir = await healthyDir(t);
    // A compaction moves the log start, then deletes the entries: a crash in between leaves this.
    await withRawDb(dir, (db) => logSub(db).put(encodeLogKey(1), encodeEntry(ent(1, 1))));
    const storage = await LevelRaftStorage.open(dir);
    t.equal(storage.firstIndex(), 2, 'the leftover is not part of the log');
    t.equal(storage.lastIndex(), 6);
    await storage.compact(3, 1, { voters: ['n1'], learners: [] }, 0);
    await storage.close();
    const left: number[] = [];
    await withRawDb(dir, async (db) => {
      for await (const key of logSub(db).keys()) left.push(Buffer.from(key).readUInt32BE(4));
    });
    t.same(left, [4, 5, 6], 'the next compaction deleted it with the compacted entries');
  },
);
