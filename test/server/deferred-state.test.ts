/** What waits for a node's next log write: the newest commit-only hard state and the applied state. */
import t from 'tap';
import type { KvStateMachine } from '../../src/kv/state-machine.js';
import { DeferredState } from '../../src/server/deferred-state.js';
import type { PersistableReady } from '../../src/storage/index.js';

const noEntries = (): PersistableReady => ({ entries: [] });

const CS = { voters: ['a', 'b', 'c'], learners: [] };
let mutations = 0;
const kv = {
  appliedIndex: 7,
  takeMutations: () => [{ type: 'del' as const, key: `k${++mutations}` }],
} as unknown as KvStateMachine;

t.test('nothing deferred, nothing to write', (t) => {
  const d = new DeferredState();
  t.equal(d.takeAll(kv), undefined);
  t.same(d.takeApplied(kv), {});
  t.end();
});

t.test('the newest commit-only hard state rides with the next Ready that has none', (t) => {
  const d = new DeferredState();
  d.commitMoved({ term: 2, vote: 'a', commit: 3 });
  d.commitMoved({ term: 2, vote: 'a', commit: 4 });
  const rd = d.withHardState(noEntries());
  t.same(rd.hardState, { term: 2, vote: 'a', commit: 4 });
  t.same(d.withHardState(noEntries()).hardState, undefined, 'written once');
  // A Ready's own hard state is newer than anything deferred: it wins.
  d.commitMoved({ term: 2, vote: 'a', commit: 5 });
  const own = { term: 3, vote: 'b', commit: 6 };
  t.same(d.withHardState({ ...noEntries(), hardState: own }).hardState, own);
  t.equal(d.takeAll(kv), undefined, 'the deferred one went with it');
  t.end();
});

t.test('the applied state is taken once, with the membership applied since', (t) => {
  const d = new DeferredState();
  d.entriesApplied(CS);
  d.entriesApplied(undefined);
  const { applied } = d.takeApplied(kv);
  t.same(applied, { appliedIndex: 7, confState: CS, kvMutations: [{ type: 'del', key: 'k1' }] });
  t.same(d.takeApplied(kv), {});
  d.entriesApplied(undefined);
  d.commitMoved({ term: 1, vote: '', commit: 7 });
  const all = d.takeAll(kv);
  t.same(all?.ready, { entries: [], hardState: { term: 1, vote: '', commit: 7 } });
  t.same(all?.applied.applied?.confState, undefined);
  t.end();
});

t.test('the commit to sync is the deferred hard state, else the newest one handed out', (t) => {
  const d = new DeferredState();
  t.equal(d.commitToSync(), undefined, 'nothing handed out yet: nothing to sync');
  const own = { term: 2, vote: 'a', commit: 3 };
  d.withHardState({ ...noEntries(), hardState: own });
  t.same(d.commitToSync()?.hardState, own, 'the last written one again');
  d.commitMoved({ term: 2, vote: 'a', commit: 5 });
  t.same(d.commitToSync()?.hardState, { term: 2, vote: 'a', commit: 5 }, 'the deferred one');
  t.equal(d.takeAll(kv), undefined, 'taken: it is not written twice');
  t.same(d.commitToSync()?.hardState, { term: 2, vote: 'a', commit: 5 }, 'and is the newest now');
  t.end();
});
