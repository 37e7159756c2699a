import t from 'tap';
import { LevelRaftStorage } from '../../src/storage/index.js';
import { ents, IDENTITY, tempDir } from './helpers.js';

const bytes = (s: string) => new TextEncoder().encode(s);

t.test(
  'a snapshot with its state machine records is installed in one batch that survives reopen',
  async (t) => {
    const dir = await tempDir(t);
    const s = await LevelRaftStorage.open(dir);
    await s.initialize(IDENTITY, ['n1', 'n2', 'n3']);
    await s.persistReady(
      { entries: ents(2, 10, () => 1), hardState: { term: 1, vote: '', commit: 10 } },
      true,
    );
    await s.persistApplied(10, undefined, [{ type: 'put', key: 'k/old', value: bytes('stale') }]);
    const snapshot = {
      metadata: { index: 50, term: 3, confState: { voters: ['n1', 'n2', 'n3'], learners: [] } },
      data: new Uint8Array(),
    };
    const records: [string, Uint8Array][] = [
      ['k/a', bytes('1')],
      ['k/b', bytes('2')],
    ];
    await s.persistReady(
      { snapshot, entries: [], hardState: { term: 3, vote: '', commit: 50 } },
      true,
      { installRecords: records },
    );
    t.equal(s.appliedIndex(), 50, 'applied index moves to the snapshot');
    await s.close();

    const reopened = await LevelRaftStorage.open(dir);
    t.teardown(() => reopened.close());
    t.equal(reopened.appliedIndex(), 50);
    t.equal(reopened.firstIndex(), 51, 'the log starts after the snapshot');
    const kv: [string, string][] = [];
    for await (const [k, v] of reopened.kvRecords()) kv.push([k, new TextDecoder().decode(v)]);
    t.same(
      kv,
      [
        ['k/a', '1'],
        ['k/b', '2'],
      ],
      'the old records are gone and the snapshot records are there',
    );
  },
);
