/** LevelRaftStorage passes the storage contract, and reads the same after every reopen. */
import t from 'tap';
import { LevelRaftStorage } from '../../src/storage/index.js';
import { runStorageContract, type StorageUnderTest } from './contract.js';
import { IDENTITY, tempDir } from './helpers.js';

function levelUnderTest(storage: LevelRaftStorage): StorageUnderTest {
  return {
    storage,
    // Unsynced: a clean close is what these cases test; crash.test.ts covers fsync.
    async persistReady(rd) {
      await storage.persistReady(rd, false);
      // Step 3 of the Ready contract: the state machine takes the snapshot's state.
      if (rd.snapshot) {
        const { index, confState } = rd.snapshot.metadata;
        await storage.replaceKv([], index, confState);
      }
    },
    apply: (index) => storage.persistApplied(index, undefined, []),
    compact: (index, term, confState, keepEntries) =>
      storage.compact(index, term, confState, keepEntries),
  };
}

runStorageContract(t, {
  name: 'LevelRaftStorage',
  async create(t, bootstrapVoters) {
    const dir = await tempDir(t);
    const storage = await LevelRaftStorage.open(dir);
    t.teardown(() => storage.close());
    await storage.initialize(IDENTITY, bootstrapVoters);
    return levelUnderTest(storage);
  },
  async reopen(t, s) {
    const old = s.storage as LevelRaftStorage;
    await old.close();
    const storage = await LevelRaftStorage.open(old.dataDir);
    t.teardown(() => storage.close());
    return levelUnderTest(storage);
  },
});
