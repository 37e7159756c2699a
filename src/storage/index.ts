export {
  type CreatedWith,
  cloneMember,
  decodeStoredEntry,
  encodeEntry,
  type MemberRecord,
} from './codec.js';
export { crc32c } from './crc32c.js';
export { StorageError, type StorageErrorCode } from './errors.js';
export {
  type AppliedWrite,
  type KvMutation,
  LevelRaftStorage,
  type LevelStorageOptions,
  type PersistableReady,
} from './level-storage.js';
export { FORMAT_VERSION, type StorageIdentity } from './load.js';
export { peekIdentity } from './peek-identity.js';
