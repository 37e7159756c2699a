import t from 'tap';
import { type Entry, SeededRandom } from '../../src/raft/index.js';
import { NodeClock, SimScheduler } from './clock.js';
import { decodeBatch, encodeBatch, SimDisk } from './disk.js';

const te = new TextEncoder();

function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++)
    out.push({ index: i, term, type: 'normal', data: te.encode(`e${i}`) });
  return out;
}

async function setup(seed = 1) {
  const s = new SimScheduler();
  const disk = SimDisk.founding('n1', ['n1', 'n2', 'n3'], new SeededRandom(seed));
  let clock = new NodeClock(s, { rate: 1 });
  let storage = disk.open(clock);
  /** Runs `p` to completion in virtual time. */
  const settle = async <T>(p: Promise<T>): Promise<T> => {
    let done = false;
    let out: { v?: T; e?: unknown } = {};
    p.then(
      (v) => {
        out = { v };
        done = true;
      },
      (e) => {
        out = { e };
        done = true;
      },
    );
    for (let i = 0; i < 100 && !done; i++) await s.runUntil(s.now() + 10);
    if (!done) throw new Error('never settled');
    if ('e' in out) throw out.e;
    return out.v as T;
  };
  const restart = (kind: 'process' | 'power') => {
    clock.kill();
    disk.crash(kind);
    clock = new NodeClock(s, { rate: 1 });
    storage = disk.open(clock);
    return storage;
  };
  return {
    s,
    disk,
    get storage() {
      return storage;
    },
    settle,
    restart,
  };
}

t.test(
  'a batch record decodes whole, and any prefix of it (a torn write) is rejected',
  async (t) => {
    const rec = encodeBatch([
      { op: 'put', key: 'a', value: te.encode('1') },
      { op: 'del', key: 'b' },
      { op: 'clear', prefix: 'log/', lastKey: 'log/9' },
    ]);
    t.same(
      decodeBatch(rec)?.map((o) => o.op),
      ['put', 'del', 'clear'],
    );
    for (let n = 0; n < rec.byteLength; n++)
      t.equal(decodeBatch(rec.slice(0, n)), undefined, `prefix ${n}`);
    const flipped = new Uint8Array(rec);
    flipped[5] = flipped[5]! ^ 1;
    t.equal(decodeBatch(flipped), undefined, 'a flipped bit fails the checksum');
  },
);

t.test('reads see unsynced writes; a process crash keeps them, a power loss may not', async (t) => {
  const w = await setup();
  await w.settle(
    w.storage.persistReady(
      { entries: entries(2, 4, 2), hardState: { term: 2, vote: 'n1', commit: 1 } },
      true,
    ),
  );
  await w.settle(w.storage.persistReady({ entries: entries(5, 6, 2) }, false));
  t.equal(w.storage.lastIndex(), 6, 'unsynced entries are visible');
  t.equal(w.restart('process').lastIndex(), 6, 'SIGKILL keeps the page cache');
  // Power loss: only what was synced (and maybe a prefix of later batches) is left.
  const lasts = new Set<number>();
  for (let seed = 1; seed < 40; seed++) {
    const v = await setup(seed);
    await v.settle(
      v.storage.persistReady(
        { entries: entries(2, 4, 2), hardState: { term: 2, vote: 'n1', commit: 1 } },
        true,
      ),
    );
    await v.settle(v.storage.persistReady({ entries: entries(5, 6, 2) }, false));
    await v.settle(v.storage.persistReady({ entries: entries(7, 8, 2) }, false));
    const after = v.restart('power');
    lasts.add(after.lastIndex());
    t.ok(
      [4, 6, 8].includes(after.lastIndex()),
      `seed ${seed}: whole batches only (last ${after.lastIndex()})`,
    );
  }
  t.ok(
    lasts.has(4) && lasts.has(8),
    `power losses both lose and keep unsynced batches: ${[...lasts]}`,
  );
});

t.test('a synced write makes every earlier batch durable', async (t) => {
  for (let seed = 1; seed < 20; seed++) {
    const w = await setup(seed);
    await w.settle(w.storage.persistReady({ entries: entries(2, 3, 2) }, false));
    await w.settle(
      w.storage.persistReady(
        { entries: entries(4, 4, 2), hardState: { term: 2, vote: 'n1', commit: 3 } },
        true,
      ),
    );
    t.equal(w.restart('power').lastIndex(), 4);
  }
});

t.test('a torn batch is dropped whole and counted', async (t) => {
  let torn = 0;
  for (let seed = 1; seed < 60; seed++) {
    const w = await setup(seed);
    await w.settle(
      w.storage.persistReady(
        { entries: entries(2, 3, 2), hardState: { term: 2, vote: 'n1', commit: 1 } },
        true,
      ),
    );
    await w.settle(w.storage.persistReady({ entries: entries(4, 9, 2) }, false));
    const after = w.restart('power');
    t.ok([3, 9].includes(after.lastIndex()), 'never half a batch');
    torn += w.disk.stats.tornBatches;
  }
  t.ok(torn > 0, `some power losses tore the last batch (${torn})`);
});

t.test(
  'a failed write rejects and changes nothing the node reads; a failed sync is not durable',
  async (t) => {
    const w = await setup();
    const faults: string[] = [];
    w.disk.onFault = (f) => faults.push(`${f.kind}:${f.entries.join(',')}`);
    w.disk.arm('write');
    await t.rejects(w.settle(w.storage.persistReady({ entries: entries(2, 3, 2) }, true)), {
      code: 'io',
    });
    t.equal(w.storage.lastIndex(), 1, 'the cache did not move');
    w.disk.arm('sync');
    await w
      .settle(w.storage.persistReady({ entries: entries(2, 2, 2) }, false))
      .then(() => t.pass('an unsynced write does not hit a sync fault'));
    await t.rejects(w.settle(w.storage.persistReady({ entries: entries(3, 3, 2) }, true)), {
      code: 'io',
    });
    t.same(faults, ['write:2,3', 'sync:3']);
    t.equal(w.storage.lastIndex(), 2);
  },
);

t.test(
  'a corrupted entry is found at open (never loaded), or when the running node reads it',
  async (t) => {
    const w = await setup();
    await w.settle(
      w.storage.persistReady(
        { entries: entries(2, 5, 2), hardState: { term: 2, vote: 'n1', commit: 1 } },
        true,
      ),
    );
    t.ok(w.disk.corruptEntry(3, { whenRead: true }));
    t.throws(
      () => w.storage.entries(2, 5),
      { code: 'corrupt' },
      'a read of the damaged entry fails',
    );
    t.same(
      w.storage.entries(4, 6).map((e) => e.index),
      [4, 5],
      'others read fine',
    );
    t.throws(() => w.restart('process'), { code: 'corrupt' }, 'open finds it');
  },
);

t.test('writes of a crashed incarnation never land', async (t) => {
  const w = await setup();
  const old = w.storage;
  const p = old.persistReady({ entries: entries(2, 3, 2) }, true);
  p.catch(() => {});
  const fresh = w.restart('process');
  await w.s.runUntil(w.s.now() + 100);
  t.equal(fresh.lastIndex(), 1);
  t.equal(w.restart('process').lastIndex(), 1, 'not on disk either');
});

t.test('compaction and snapshot installs persist as LevelRaftStorage does', async (t) => {
  const w = await setup();
  await w.settle(
    w.storage.persistReady(
      { entries: entries(2, 10, 2), hardState: { term: 2, vote: 'n1', commit: 10 } },
      true,
    ),
  );
  await w.settle(
    w.storage.persistReady({ entries: [] }, false, {
      applied: {
        appliedIndex: 8,
        confState: undefined,
        kvMutations: [{ type: 'put', key: 'k', value: te.encode('v') }],
      },
    }),
  );
  await w.settle(w.storage.compact(8, 2, { voters: ['n1', 'n2', 'n3'], learners: [] }, 2));
  t.equal(w.storage.firstIndex(), 7);
  const again = w.restart('process');
  t.equal(again.firstIndex(), 7);
  t.equal(again.snapshot().metadata.index, 8);
  t.equal(again.appliedIndex(), 8);
  t.same(
    again.kvRecords().map(([k]) => k),
    ['k'],
  );
  await w.settle(
    again.persistReady(
      {
        entries: [],
        hardState: { term: 3, vote: '', commit: 20 },
        snapshot: {
          metadata: { index: 20, term: 3, confState: { voters: ['n1', 'n2', 'n3'], learners: [] } },
          data: new Uint8Array(),
        },
      },
      true,
      { installRecords: [['x', te.encode('1')]] },
    ),
  );
  const last = w.restart('power');
  t.equal(last.firstIndex(), 21);
  t.equal(last.appliedIndex(), 20);
  t.same(
    last.kvRecords().map(([k]) => k),
    ['x'],
  );
});
