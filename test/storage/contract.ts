/**
 * The storage contract every RaftStorage implementation must pass (in the
 * spirit of abstract-level's abstract test suite): run against
 * MemoryRaftStorage, the reference, and LevelRaftStorage. Implementations
 * that survive a restart also provide `reopen`, and every case then checks
 * that a reopened storage reads exactly as before.
 */
import type { Test } from 'tap';
import type { ConfState, RaftStorage, Snapshot } from '../../src/raft/index.js';
import { NONE, RaftError } from '../../src/raft/index.js';
import type { PersistableReady } from '../../src/storage/index.js';
import { ent, ents, observe } from './helpers.js';

/** The write side, adapted to the implementation under test. */
export interface StorageUnderTest {
  readonly storage: RaftStorage;
  persistReady(rd: PersistableReady): Promise<void>;
  /** The state machine has applied up to `index` (≤ the persisted commit). */
  apply(index: number): Promise<void>;
  compact(
    snapshotIndex: number,
    snapshotTerm: number,
    confState: ConfState,
    keepEntries: number,
  ): Promise<Snapshot>;
}

export interface StorageFactory {
  name: string;
  /** Fresh storage: founding member (the bootstrap snapshot) or, without voters, a joining one. */
  create(t: Test, bootstrapVoters: string[] | undefined): Promise<StorageUnderTest>;
  /** Durable implementations: close the storage and open it again from disk. */
  reopen?(t: Test, s: StorageUnderTest): Promise<StorageUnderTest>;
}

const VOTERS = ['n1', 'n2', 'n3'];
const CS: ConfState = { voters: VOTERS, learners: [] };

export function runStorageContract(t: Test, factory: StorageFactory): void {
  /** Reopens (durable implementations only) and checks that nothing observable changed. */
  async function reopened(t: Test, s: StorageUnderTest): Promise<StorageUnderTest> {
    if (!factory.reopen) return s;
    const before = observe(s.storage);
    const again = await factory.reopen(t, s);
    t.same(observe(again.storage), before, 'reads the same after close and reopen');
    return again;
  }

  /** Bootstraps, then appends entries 2..last with terms from termOf, committing `commit`. */
  async function withLog(
    t: Test,
    last: number,
    termOf: (i: number) => number,
    commit = 1,
  ): Promise<StorageUnderTest> {
    const s = await factory.create(t, VOTERS);
    await s.persistReady({
      hardState: { term: termOf(last), vote: 'n1', commit },
      entries: ents(2, last, termOf),
    });
    return s;
  }

  t.test(`${factory.name}: a joining member starts empty`, async (t) => {
    let s = await factory.create(t, undefined);
    for (let round = 0; round < 2; round++) {
      const st = s.storage;
      t.same(st.initialState(), {
        hardState: { term: 0, vote: NONE, commit: 0 },
        confState: { voters: [], learners: [] },
      });
      t.equal(st.firstIndex(), 1);
      t.equal(st.lastIndex(), 0);
      t.equal(st.term(0), 0);
      t.throws(() => st.term(1), { code: 'unavailable' });
      t.equal(st.snapshot().metadata.index, 0);
      s = await reopened(t, s);
    }
  });

  t.test(`${factory.name}: a founding member starts from the bootstrap snapshot`, async (t) => {
    let s = await factory.create(t, ['n3', 'n1', 'n2']);
    for (let round = 0; round < 2; round++) {
      const st = s.storage;
      t.same(st.initialState(), { hardState: { term: 1, vote: NONE, commit: 1 }, confState: CS });
      t.same(st.snapshot().metadata, { index: 1, term: 1, confState: CS });
      t.equal(st.firstIndex(), 2);
      t.equal(st.lastIndex(), 1);
      t.equal(st.term(1), 1);
      t.throws(() => st.term(0), { code: 'compacted' });
      s = await reopened(t, s);
    }
  });

  t.test(`${factory.name}: appends entries and reads them back`, async (t) => {
    const termOf = (i: number) => (i < 4 ? 1 : 2);
    let s = await withLog(t, 6, termOf, 3);
    s = await reopened(t, s);
    const st = s.storage;
    t.equal(st.lastIndex(), 6);
    t.same(st.entries(2, 7), ents(2, 6, termOf));
    t.same(
      [2, 3, 4, 5, 6].map((i) => st.term(i)),
      [1, 1, 2, 2, 2],
    );
    t.same(st.initialState().hardState, { term: 2, vote: 'n1', commit: 3 });
    // Appending at lastIndex + 1 extends the log; an empty Ready changes nothing.
    await s.persistReady({ entries: [ent(7, 2)] });
    await s.persistReady({ entries: [] });
    t.equal(s.storage.lastIndex(), 7);
    await reopened(t, s);
  });

  t.test(`${factory.name}: a conflicting suffix is overwritten (Raft §5.3)`, async (t) => {
    let s = await withLog(t, 8, () => 1);
    await s.persistReady({ entries: [ent(4, 2, 'new4'), ent(5, 2, 'new5')] });
    const st = s.storage;
    t.equal(st.lastIndex(), 5, 'entries after the overwritten ones are gone');
    t.throws(() => st.term(6), { code: 'unavailable' });
    t.same(st.entries(2, 6), [ent(2, 1), ent(3, 1), ent(4, 2, 'new4'), ent(5, 2, 'new5')]);
    s = await reopened(t, s);
    // A longer replacement extends past the old end.
    await s.persistReady({ entries: ents(3, 10, () => 3) });
    t.equal(s.storage.lastIndex(), 10);
    t.same(s.storage.entries(2, 11), [ent(2, 1), ...ents(3, 10, () => 3)]);
    await reopened(t, s);
  });

  t.test(`${factory.name}: entries covered by the snapshot are ignored`, async (t) => {
    let s = await factory.create(t, VOTERS);
    await s.persistReady({ entries: [ent(0, 0), ent(1, 1), ent(2, 1), ent(3, 1)] });
    t.equal(s.storage.firstIndex(), 2);
    t.equal(s.storage.lastIndex(), 3);
    t.same(s.storage.entries(2, 4), [ent(2, 1), ent(3, 1)]);
    await s.persistReady({ entries: [ent(1, 1)] });
    t.equal(s.storage.lastIndex(), 3, 'an entry at the snapshot index truncates nothing');
    s = await reopened(t, s);
  });

  t.test(`${factory.name}: a gap is refused and changes nothing`, async (t) => {
    let s = await withLog(t, 3, () => 1);
    const before = observe(s.storage);
    await t.rejects(s.persistReady({ entries: [ent(5, 1)] }), { code: 'invariant' });
    t.same(observe(s.storage), before);
    s = await reopened(t, s);
  });

  t.test(`${factory.name}: term and entries bounds`, async (t) => {
    const s = await withLog(t, 10, () => 1);
    await s.persistReady({ hardState: { term: 1, vote: 'n1', commit: 10 }, entries: [] });
    await s.apply(10);
    await s.compact(6, 1, CS, 2); // log start 4: entries 5..10
    const st = s.storage;
    t.equal(st.firstIndex(), 5);
    t.equal(st.term(4), 1, 'the term before the first entry is answered');
    t.throws(() => st.term(3), RaftError);
    t.throws(() => st.term(3), { code: 'compacted' });
    t.throws(() => st.term(11), { code: 'unavailable' });
    t.throws(() => st.entries(4, 6), { code: 'compacted' });
    t.throws(() => st.entries(5, 12), { code: 'invariant' });
    t.same(st.entries(5, 5), []);
    t.same(
      st.entries(5, 11),
      ents(5, 10, () => 1),
    );
    t.same(
      st.entries(9, 11),
      ents(9, 10, () => 1),
    );
  });

  t.test(`${factory.name}: maxSizeBytes bounds entries() but returns at least one`, async (t) => {
    // Each entry is 'e2'..'e9' (2 bytes) + 24 bytes of overhead = 26 bytes.
    const s = await withLog(t, 9, () => 1);
    const st = s.storage;
    t.equal(st.entries(2, 10, 0).length, 1, 'one entry even if it alone is too big');
    t.equal(st.entries(2, 10, 25).length, 1);
    t.equal(st.entries(2, 10, 26).length, 1);
    t.equal(st.entries(2, 10, 51).length, 1);
    t.equal(st.entries(2, 10, 52).length, 2, 'exactly the limit fits');
    t.equal(st.entries(2, 10, 26 * 8).length, 8);
    t.equal(st.entries(2, 10).length, 8);
  });

  t.test(`${factory.name}: installing a snapshot replaces the log`, async (t) => {
    let s = await withLog(t, 10, () => 1, 5);
    const joint: ConfState = { voters: ['n1', 'n2'], learners: ['n4'] };
    const snap: Snapshot = {
      metadata: { index: 20, term: 3, confState: joint },
      data: new TextEncoder().encode('state'),
    };
    await s.persistReady({
      snapshot: snap,
      entries: [ent(20, 3), ent(21, 3), ent(22, 4)],
      hardState: { term: 4, vote: NONE, commit: 20 },
    });
    const st = s.storage;
    t.equal(st.firstIndex(), 21);
    t.equal(st.lastIndex(), 22);
    t.equal(st.term(20), 3);
    t.throws(() => st.term(19), { code: 'compacted' });
    t.same(st.entries(21, 23), [ent(21, 3), ent(22, 4)]);
    t.same(st.snapshot().metadata, snap.metadata);
    t.same(st.initialState().confState, joint, 'membership comes from the snapshot');
    s = await reopened(t, s);

    const before = observe(s.storage);
    const stale: Snapshot = { metadata: { index: 20, term: 3, confState: CS }, data: snap.data };
    await t.rejects(s.persistReady({ snapshot: stale, entries: [] }), {
      code: 'snapshot_out_of_date',
    });
    t.same(observe(s.storage), before, 'a stale snapshot changes nothing');

    // A snapshot inside the current log still replaces all of it.
    await s.persistReady({ entries: ents(23, 30, () => 4) });
    await s.persistReady({
      snapshot: { metadata: { index: 25, term: 4, confState: CS }, data: snap.data },
      entries: [],
      hardState: { term: 4, vote: NONE, commit: 25 },
    });
    t.equal(s.storage.firstIndex(), 26);
    t.equal(s.storage.lastIndex(), 25);
    await reopened(t, s);
  });

  t.test(`${factory.name}: compaction keeps keepEntries before the snapshot`, async (t) => {
    const termOf = (i: number) => Math.ceil(i / 10);
    let s = await withLog(t, 30, termOf, 30);
    await s.apply(25);
    const snap = await s.compact(25, termOf(25), CS, 5);
    t.same(snap.metadata, { index: 25, term: 3, confState: CS });
    t.equal(snap.data.byteLength, 0, 'metadata only');
    const st = s.storage;
    t.equal(st.firstIndex(), 21, 'entries 21..25 are kept');
    t.equal(st.term(20), 2);
    t.throws(() => st.term(19), { code: 'compacted' });
    t.same(st.entries(21, 31), ents(21, 30, termOf));
    t.same(st.snapshot().metadata, snap.metadata);
    s = await reopened(t, s);

    await t.rejects(s.compact(25, 3, CS, 0), { code: 'snapshot_out_of_date' });
    await t.rejects(s.compact(20, 2, CS, 0), { code: 'snapshot_out_of_date' });

    // keepEntries reaching before the log start: the snapshot moves, the log stays.
    await s.apply(28);
    await s.compact(28, 3, CS, 10);
    t.equal(s.storage.firstIndex(), 21);
    t.equal(s.storage.snapshot().metadata.index, 28);
    s = await reopened(t, s);

    await s.apply(30);
    await s.compact(30, 3, CS, 0);
    t.equal(s.storage.firstIndex(), 31);
    t.equal(s.storage.lastIndex(), 30);
    t.equal(s.storage.term(30), 3);
    s = await reopened(t, s);
    await s.persistReady({ entries: [ent(31, 4)] });
    t.same(s.storage.entries(31, 32), [ent(31, 4)]);
    await reopened(t, s);
  });

  t.test(`${factory.name}: hard state round trip`, async (t) => {
    let s = await withLog(t, 3, () => 1);
    for (const hs of [
      { term: 7, vote: 'n2', commit: 2 },
      { term: 8, vote: NONE, commit: 3 },
      { term: 2 ** 40, vote: 'a member id with ünïcode', commit: 3 },
    ]) {
      await s.persistReady({ hardState: hs, entries: [] });
      t.same(s.storage.initialState().hardState, hs);
      s = await reopened(t, s);
      t.same(s.storage.initialState().hardState, hs);
    }
  });
}
