/**
 * The node core (src/server/node-core.ts) over a real LevelRaftStorage whose
 * disk fails under it (a test-only wrapper makes one batch write reject as
 * LevelDB does on a full disk): the write that needed it is never
 * acknowledged, the core stops, nothing of it is applied, and the data dir
 * holds exactly what was acknowledged before.
 */
import t from 'tap';
import { LevelRaftStorage } from '../../src/storage/index.js';
import { manualClock, oneMemberCore, putCommand } from '../support/one-member-core.js';
import { failWrites, openFresh } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const put = putCommand;

t.test(
  'a full disk under the core: no acknowledgement, fail-stop, the dir as acknowledged',
  async (t) => {
    const { dir, storage } = await openFresh(t, ['n1']);
    const { clock, tick } = manualClock();
    const { core, fatal } = oneMemberCore(storage, clock);
    core.start();
    for (let i = 0; i < 200 && !core.isLeader; i++) {
      tick();
      await sleep(5);
    }
    t.ok(core.isLeader, 'the single member leads');

    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await core.propose(put(`k${i}`, `v${i}`));
      if (r.ok) acked.push(`k${i}`);
    }
    t.equal(acked.length, 20, 'writes on a healthy disk are acknowledged');
    const lastBefore = storage.lastIndex();

    failWrites(
      storage,
      Object.assign(new Error(`IO error: ${dir}/000003.log: No space left on device`), {
        code: 'LEVEL_IO_ERROR',
      }),
      1,
    );
    const failing = core.propose(put('lost', 'never stored'));
    const after = core.propose(put('later', 'after the failure'));
    const [r1, r2] = await Promise.allSettled([failing, after]);
    t.equal(r1.status, 'rejected', 'the write whose entry could not be stored is not acknowledged');
    t.equal(r2.status, 'rejected', 'nor the one after it');
    t.ok(core.failed, 'the core stopped (fail-stop)');
    t.equal(fatal.length, 1, 'and said why, once');
    t.match(core.failureReason, /^disk full: .*No space left on device.*free space in/);
    t.match(storage.writeFailure(), { code: 'io', errno: 'ENOSPC' });
    t.equal(core.kv.get('lost').ok && core.kv.get('lost').kv, null, 'nothing of it was applied');
    t.equal(storage.lastIndex(), lastBefore, 'the log the core sees ends where it did');
    await core.stop().catch(() => undefined);
    await storage.close();

    const again = await LevelRaftStorage.open(dir);
    t.teardown(() => again.close());
    t.equal(again.lastIndex(), lastBefore, 'after a restart, the log holds what was acknowledged');
    const keys: string[] = [];
    for (const e of again.entries(again.firstIndex(), again.lastIndex() + 1)) {
      const text = new TextDecoder().decode(e.data);
      for (const k of ['k19', 'lost', 'later']) if (text.includes(`"${k}"`)) keys.push(k);
    }
    t.same(keys, ['k19'], 'the last acknowledged write is there, neither refused one');
  },
);
