export * from './confchange.js';
export * from './errors.js';
export * from './messages.js';
export { type ProposeResult, Raft, type RaftConfig, type Role } from './raft.js';
export { RawNode, type Ready, type SoftState, type Status } from './raw-node.js';
export * from './rng.js';
export * from './storage.js';
