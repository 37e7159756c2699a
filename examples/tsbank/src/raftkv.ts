/**
 * The one place TSBank imports raftkv from. In your own project this is
 * `from 'raftkv'`; inside this checkout the package name resolves to
 * dist/, which only `npm pack` builds, so the example imports the sources
 * it ships with.
 */
export {
  Client,
  type Compare,
  isNotFound,
  isRaftkvError,
  type KeyValue,
  type LeaseKeeper,
  RaftkvError,
  SseParser,
  type StartedNode,
  startNode,
  type TxnOp,
} from '../../../src/index.js';
