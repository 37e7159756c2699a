/** What LevelRaftStorage does beyond the RaftStorage contract: identity, applied state, members. */
import t, { type Test } from 'tap';
import { type ConfState, NONE } from '../../src/raft/index.js';
import {
  FORMAT_VERSION,
  type KvMutation,
  LevelRaftStorage,
  type LevelStorageOptions,
} from '../../src/storage/index.js';
import { ent, ents, failWrites, IDENTITY, observe, openFresh, tempDir } from './helpers.js';

const encoder = new TextEncoder();
const bytes = (s: string) => encoder.encode(s);
const CS: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [] };

async function reopen(
  t: Test,
  storage: LevelRaftStorage,
  options: LevelStorageOptions = {},
): Promise<LevelRaftStorage> {
  await storage.close();
  const again = await LevelRaftStorage.open(storage.dataDir, options);
  t.teardown(() => again.close());
  return again;
}

async function kvOf(storage: LevelRaftStorage): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const [key, value] of storage.kvRecords()) out[key] = new TextDecoder().decode(value);
  return out;
}

t.test('a new data dir has no identity until initialize()', async (t) => {
  const dir = await tempDir(t);
  let storage = await LevelRaftStorage.open(`${dir}/nested/data`);
  t.teardown(() => storage.close());
  t.equal(storage.identity(), undefined);
  storage = await reopen(t, storage);
  t.equal(storage.identity(), undefined, 'opening alone writes no identity');

  await t.rejects(storage.persistReady({ entries: [ent(1, 1)] }, true), { code: 'invariant' });
  await storage.initialize(IDENTITY, undefined);
  const ident = storage.identity();
  t.match(ident, { formatVersion: FORMAT_VERSION, ...IDENTITY, createdAt: String });
  t.equal(FORMAT_VERSION, 3, 'format 3: kv records sealed too');
  t.equal(storage.appliedIndex(), 0);
  await t.rejects(storage.initialize(IDENTITY, ['n1']), { code: 'invariant' });
  storage = await reopen(t, storage);
  t.same(storage.identity(), ident);
});

t.test('a founding member starts applied at the bootstrap snapshot', async (t) => {
  let { storage } = await openFresh(t, ['n2', 'n1']);
  storage = await reopen(t, storage);
  t.equal(storage.appliedIndex(), 1);
  t.same(storage.initialState().confState, { voters: ['n1', 'n2'], learners: [] });
  t.same(await kvOf(storage), {});
});

t.test('applied state: kv mutations, applied index and membership in one batch', async (t) => {
  let { storage } = await openFresh(t);
  await storage.persistReady(
    { entries: ents(2, 5, () => 1), hardState: { term: 1, vote: NONE, commit: 4 } },
    true,
  );
  const mutations: KvMutation[] = [
    { type: 'put', key: 'b', value: bytes('2') },
    { type: 'put', key: 'a', value: bytes('1') },
    { type: 'put', key: 'c', value: bytes('3') },
  ];
  await storage.persistApplied(3, undefined, mutations);
  const learner: ConfState = { voters: ['n1', 'n2', 'n3'], learners: ['n4'] };
  await storage.persistApplied(
    4,
    learner,
    [
      { type: 'del', key: 'b' },
      { type: 'put', key: 'a', value: bytes('1b') },
    ],
    true,
  );
  t.equal(storage.appliedIndex(), 4);
  t.same(storage.initialState().confState, learner);
  storage = await reopen(t, storage);
  t.equal(storage.appliedIndex(), 4);
  t.same(storage.initialState().confState, learner);
  t.same(await kvOf(storage), { a: '1b', c: '3' });
  t.same(Object.keys(await kvOf(storage)), ['a', 'c'], 'in key order');

  await t.rejects(storage.persistApplied(5, undefined, []), { code: 'invariant' }, 'past commit');
  await t.rejects(storage.persistApplied(3, undefined, []), { code: 'invariant' }, 'backwards');
  t.equal(storage.appliedIndex(), 4);
});

t.test('replaceKv replaces the whole state machine in one batch', async (t) => {
  let { storage } = await openFresh(t);
  await storage.persistApplied(1, undefined, [
    { type: 'put', key: 'old', value: bytes('x') },
    { type: 'put', key: 'kept', value: bytes('old') },
  ]);
  const snapCs: ConfState = { voters: ['n1', 'n2'], learners: [] };
  await storage.persistReady(
    {
      snapshot: { metadata: { index: 10, term: 2, confState: snapCs }, data: new Uint8Array() },
      entries: [],
      hardState: { term: 2, vote: NONE, commit: 10 },
    },
    true,
  );
  await storage.replaceKv(
    [
      ['kept', bytes('new')],
      ['fresh', bytes('y')],
    ],
    10,
    snapCs,
  );
  storage = await reopen(t, storage);
  t.same(await kvOf(storage), { fresh: 'y', kept: 'new' });
  t.equal(storage.appliedIndex(), 10);
  t.same(storage.initialState().confState, snapCs);
});

t.test('replaceKv in chunks: a large state, and a crash in between is reported', async (t) => {
  const chunked = { kvBatchMaxBytes: 200 };
  const { storage } = await openFresh(t, ['n1'], chunked);
  await storage.persistApplied(
    1,
    undefined,
    Array.from({ length: 50 }, (_, i) => ({ type: 'put', key: `old${i}`, value: bytes('x') })),
  );
  const install = {
    snapshot: { metadata: { index: 5, term: 2, confState: CS }, data: new Uint8Array() },
    entries: [],
    hardState: { term: 2, vote: NONE, commit: 5 },
  };
  await storage.persistReady(install, true);
  async function* records(count: number, failAt?: number): AsyncGenerator<[string, Uint8Array]> {
    for (let i = 0; i < count; i++) {
      if (i === failAt) throw new Error('snapshot stream broke');
      yield [`k${String(i).padStart(4, '0')}`, bytes(`v${i}`)];
    }
  }
  await storage.replaceKv(records(300), 5, CS);
  const again = await reopen(t, storage, chunked);
  const kv = await kvOf(again);
  t.equal(Object.keys(kv).length, 300, 'all records, none of the old ones');
  t.equal(kv.k0299, 'v299');
  t.equal(again.appliedIndex(), 5);

  // The stream breaks after several chunks were written: the marker stays.
  // (Without chunks the failed batch is simply not written, and the applied
  // index behind the snapshot tells the same story.)
  await again.persistReady(
    {
      ...install,
      snapshot: { ...install.snapshot, metadata: { ...install.snapshot.metadata, index: 9 } },
      hardState: { term: 2, vote: NONE, commit: 9 },
    },
    true,
  );
  await t.rejects(again.replaceKv(records(300, 150), 9, CS), /snapshot stream broke/);
  await again.close();
  await t.rejects(LevelRaftStorage.open(again.dataDir), {
    code: 'install_incomplete',
    message: /snapshot at index 9 was written only in part.*add it back with an empty data dir/,
  });
});

t.test('a snapshot persisted but never applied is reported on open', async (t) => {
  const { storage } = await openFresh(t, ['n1']);
  await storage.persistReady(
    {
      snapshot: { metadata: { index: 7, term: 3, confState: CS }, data: new Uint8Array() },
      entries: [],
      hardState: { term: 3, vote: NONE, commit: 7 },
    },
    true,
  );
  await storage.close();
  await t.rejects(LevelRaftStorage.open(storage.dataDir), {
    code: 'install_incomplete',
    message: /applied index 1 is behind the snapshot index 7/,
  });
});

t.test('compaction refuses to pass the applied index', async (t) => {
  const { storage } = await openFresh(t);
  await storage.persistReady(
    { entries: ents(2, 6, () => 1), hardState: { term: 1, vote: NONE, commit: 6 } },
    false,
  );
  await storage.persistApplied(4, undefined, []);
  await t.rejects(storage.compact(5, 1, CS, 0), { code: 'invariant' });
  await t.rejects(storage.compact(4, 9, CS, 0), { code: 'invariant' }, 'wrong term');
  const snap = await storage.compact(4, 1, CS, 1);
  t.equal(snap.metadata.index, 4);
  t.equal(storage.firstIndex(), 4);
});

t.test('applied state written with a Ready lands in the same batch as its log', async (t) => {
  let { storage } = await openFresh(t);
  await storage.persistReady(
    { entries: ents(2, 4, () => 1), hardState: { term: 1, vote: NONE, commit: 3 } },
    true,
  );
  const put: KvMutation = { type: 'put', key: 'k/a', value: bytes('1') };
  // Entries 5–6 and commit 5 with the state machine at 3: one atomic write.
  await storage.persistReady(
    { entries: ents(5, 6, () => 1), hardState: { term: 1, vote: NONE, commit: 5 } },
    true,
    { applied: { appliedIndex: 3, confState: CS, kvMutations: [put] } },
  );
  // A commit-only Ready can carry it too.
  const del: KvMutation = { type: 'del', key: 'k/a' };
  const put2: KvMutation = { type: 'put', key: 'k/b', value: bytes('2') };
  await storage.persistReady(
    { entries: [], hardState: { term: 1, vote: NONE, commit: 6 } },
    false,
    {
      applied: { appliedIndex: 5, confState: undefined, kvMutations: [del, put2] },
    },
  );
  storage = await reopen(t, storage);
  t.equal(storage.appliedIndex(), 5);
  t.equal(storage.lastIndex(), 6);
  t.same(await kvOf(storage), { 'k/b': '2' }, 'mutations applied in order');
  t.same(storage.snapshot().metadata.confState, CS, 'membership written with it');

  // Beyond the commit index, or behind what is applied: refused, nothing written.
  await t.rejects(
    storage.persistReady({ entries: ents(7, 7, () => 1) }, true, {
      applied: { appliedIndex: 7, confState: undefined, kvMutations: [put] },
    }),
    { code: 'invariant' },
  );
  await t.rejects(
    storage.persistReady({ entries: ents(7, 7, () => 1) }, true, {
      applied: { appliedIndex: 4, confState: undefined, kvMutations: [put] },
    }),
    { code: 'invariant' },
  );
  t.equal(storage.lastIndex(), 6, 'the refused Readys wrote nothing');
  t.same(await kvOf(storage), { 'k/b': '2' });
});

t.test('member records', async (t) => {
  let { storage } = await openFresh(t);
  t.same(storage.members(), []);
  const n1 = { id: 'n1', name: 'one', peerUrls: ['http://a:1'], clientUrls: ['http://a:2'] };
  const n2 = { id: 'n2', name: 'two', peerUrls: ['http://b:1'], clientUrls: [] };
  await storage.saveMembers([n2, n1]);
  t.same(storage.members(), [n1, n2], 'sorted by id');
  storage = await reopen(t, storage);
  t.same(storage.members(), [n1, n2]);
  const n1b = { ...n1, clientUrls: ['http://a:3'] };
  await storage.saveMembers([n1b]);
  storage = await reopen(t, storage);
  t.same(storage.members(), [n1b], 'records not given are removed');
  // The version a member published survives a restart; a record without one stays without.
  const n1v = { ...n1b, version: '0.2.0' };
  await storage.saveMembers([n1v, n2]);
  storage = await reopen(t, storage);
  t.strictSame(storage.members(), [n1v, n2], 'version kept, and absent where it was');
});

t.test('sizeBytes counts the files of the database', async (t) => {
  const { storage } = await openFresh(t);
  const before = await storage.sizeBytes();
  t.ok(before > 0);
  await storage.persistReady({ entries: [ent(2, 1, 'x'.repeat(100_000))] }, false);
  t.ok((await storage.sizeBytes()) >= before + 100_000);
});

/** LevelDB's error for a write into a full file system (its code and strerror text). */
function levelDiskFull(dir: string): Error {
  return Object.assign(new Error(`IO error: ${dir}/000003.log: No space left on device`), {
    code: 'LEVEL_IO_ERROR',
  });
}

t.test(
  'a failed write stops the storage: nothing of it or after it reaches the core',
  async (t) => {
    let { dir, storage } = await openFresh(t);
    await storage.persistReady({ entries: ents(2, 4, () => 1) }, true);
    await storage.persistApplied(1, undefined, [{ type: 'put', key: 'k', value: bytes('v1') }]);
    const before = observe(storage);
    // One failed write, then the disk has room again: the writes behind it must still be refused.
    failWrites(storage, levelDiskFull(dir), 1);
    // The failing write and the ones queued behind it, as the node issues them without waiting.
    const failing = storage.persistReady(
      { entries: [ent(3, 2), ent(4, 2), ent(5, 2)], hardState: { term: 2, vote: 'n1', commit: 1 } },
      true,
    );
    const queued = [
      storage.persistReady(
        { entries: [ent(6, 2)], hardState: { term: 2, vote: 'n1', commit: 5 } },
        true,
      ),
      storage.persistApplied(1, undefined, [{ type: 'put', key: 'k', value: bytes('v2') }]),
      storage.saveMembers([{ id: 'n9', name: 'n9', peerUrls: [], clientUrls: [] }]),
      storage.compact(1, 1, { voters: ['n1', 'n2', 'n3'], learners: [] }, 0).then(() => undefined),
    ];
    const diskFull = {
      code: 'io',
      errno: 'ENOSPC',
      dataDir: dir,
      message: new RegExp(
        `^disk full: persisting log entries and hard state in data dir ${dir} failed \\(IO error: .*No space left on device\\): free space in ${dir}.*; the member stops so that it never acknowledges a write it could not store$`,
      ),
    };
    await t.rejects(failing, diskFull, 'the failed write rejects, saying the disk is full');
    const results = await Promise.allSettled(queued);
    t.same(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'rejected', 'rejected'],
      'every write queued after it is refused',
    );
    for (const r of results)
      if (r.status === 'rejected') t.match(r.reason, diskFull, 'with the same error');
    t.same(observe(storage), before, 'the core sees the log and hard state of before');
    t.equal(storage.appliedIndex(), 1);
    t.same(storage.members(), [], 'no member record');
    t.match(storage.writeFailure(), diskFull);
    await t.rejects(
      storage.persistReady({ entries: [ent(5, 1)] }, true),
      diskFull,
      'and later ones',
    );

    // A restart finds exactly what was written before the failure.
    storage = await reopen(t, storage);
    t.same(observe(storage), before, 'after a restart: the state before the failed write');
    const kv = [];
    for await (const [k, v] of storage.kvRecords()) kv.push([k, new TextDecoder().decode(v)]);
    t.same(kv, [['k', 'v1']]);
    t.equal(storage.writeFailure(), undefined, 'a new start writes again');
    await storage.persistReady({ entries: [ent(5, 1)] }, true);
    t.equal(storage.lastIndex(), 5);
  },
);

t.test('disk errors other than a full disk say what they are', async (t) => {
  const cases: [string, Error, RegExp][] = [
    [
      'EIO',
      new Error('IO error: /d/000005.log: Input/output error'),
      /^disk error: .*check the disk/,
    ],
    [
      'EROFS',
      new Error('IO error: /d/000005.log: Read-only file system'),
      /^read-only file system: /,
    ],
    [
      'EACCES',
      Object.assign(new Error("EACCES: permission denied, open '/d/x'"), { code: 'EACCES' }),
      /^permission denied: .*writable by the user raftkv runs as/,
    ],
    ['EDQUOT', new Error('IO error: /d/000005.log: Disk quota exceeded'), /^disk full: /],
  ];
  for (const [errno, cause, message] of cases) {
    const { storage } = await openFresh(t);
    failWrites(storage, cause);
    await t.rejects(storage.persistReady({ entries: [ent(2, 1)] }, true), {
      code: 'io',
      errno,
      message,
    });
  }
});

t.test('writes after close are refused', async (t) => {
  const { storage } = await openFresh(t);
  await storage.close();
  await t.rejects(storage.persistReady({ entries: [ent(2, 1)] }, true), { code: 'invariant' });
  await storage.close();
});

t.test('writes run in call order even when not awaited one by one', async (t) => {
  let { storage } = await openFresh(t);
  const writes: Promise<void>[] = [];
  for (let i = 2; i <= 41; i++) {
    writes.push(storage.persistReady({ entries: [ent(i, 1 + Math.floor(i / 10))] }, i % 7 === 0));
    if (i % 5 === 0)
      writes.push(storage.persistReady({ entries: [ent(i, 1 + Math.floor(i / 10))] }, false));
  }
  await Promise.all(writes);
  t.equal(storage.lastIndex(), 41);
  storage = await reopen(t, storage);
  t.equal(storage.lastIndex(), 41);
  t.equal(storage.term(41), 5);
});
