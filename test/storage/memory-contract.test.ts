/** The reference implementation passes the storage contract (so the contract itself is right). */
import t from 'tap';
import { MemoryRaftStorage } from '../../src/raft/index.js';
import { runStorageContract, type StorageUnderTest } from './contract.js';

function memoryUnderTest(storage: MemoryRaftStorage): StorageUnderTest {
  return {
    storage,
    async persistReady(rd) {
      if (rd.snapshot) storage.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) storage.append(rd.entries);
      if (rd.hardState) storage.setHardState(rd.hardState);
    },
    async apply() {},
    async compact(snapshotIndex, _snapshotTerm, confState, keepEntries) {
      const snap = storage.createSnapshot(snapshotIndex, confState, new Uint8Array());
      storage.compact(snapshotIndex - keepEntries);
      return snap;
    },
  };
}

runStorageContract(t, {
  name: 'MemoryRaftStorage',
  async create(_t, bootstrapVoters) {
    return memoryUnderTest(
      bootstrapVoters ? MemoryRaftStorage.bootstrap(bootstrapVoters) : new MemoryRaftStorage(),
    );
  },
});
