/**
 * src/kv: the replicated, deterministic key-value state machine (MVCC store,
 * txns, leases, dedup, watches). Pure: no I/O, timers, clock or randomness.
 */
export { ALARM_TYPES, type Alarm, type AlarmType } from './alarms.js';
export {
  type AccessNeed,
  AUTH_ACCESSES,
  AUTH_NAME_PATTERN,
  AUTH_RESOURCES,
  type AuthAccess,
  type AuthResource,
  type AuthRole,
  type AuthUser,
  type Permission,
  ROOT_ROLE,
  ROOT_USER,
} from './auth.js';
export { type DecodeResult, decodeCommand } from './command-decode.js';
export type {
  AlarmCommand,
  AuthCommand,
  Command,
  CommandEnvelope,
  CompactCommand,
  Compare,
  CompareOp,
  CompareTarget,
  DeleteCommand,
  FenceCompare,
  KeyCompare,
  LeaseCheckpointCommand,
  LeaseGrantCommand,
  LeaseKeepAliveCommand,
  LeaseRevokeCommand,
  PutCommand,
  TxnCommand,
  TxnOp,
} from './commands.js';
export { encodeCommand, isFenceCompare } from './commands.js';
export * from './coordination-keys.js';
export { DEFAULT_DEDUP_OPTIONS, type DedupOptions } from './dedup.js';
export { CommandNotUnderstoodError, type KvErrorCode, KvInvariantError } from './errors.js';
export { compareKeys } from './key-order.js';
export type { LeaseInfo, LeaseState } from './leases.js';
export { DEFAULT_KV_LIMITS, type KvLimits } from './limits.js';
export type { KvMutation } from './mutations.js';
export type { KeyFilter, KeyValue, RevisionChange, WatchEvent } from './mvcc/key-value.js';
export type { GetOptions, RangeOptions } from './mvcc/store.js';
export {
  DEDUP_RECORD_PREFIX,
  LEASE_RECORD_PREFIX,
  META_RECORD_KEY,
  VERSION_RECORD_PREFIX,
} from './record-keys.js';
export type {
  AlarmResult,
  ApplyResult,
  AuthResult,
  ChangesResult,
  CommandResult,
  CompactResult,
  DeleteResult,
  ErrorResult,
  GetResult,
  LeaseCheckpointResult,
  LeaseGrantResult,
  LeaseKeepAliveResult,
  LeaseRevokeResult,
  NoopResult,
  PutResult,
  RangeResult,
  ReadResult,
  SkippedResult,
  TxnOpResult,
  TxnResult,
} from './results.js';
export { isSkipped } from './results.js';
export { KvStateMachine, type KvStateMachineOptions, type KvStats } from './state-machine.js';
export { WatchHub, type WatchHubOptions, type WatchListener } from './watch-hub.js';
