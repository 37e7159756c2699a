/** The raftkv client library: `new Client({ endpoints })`, its error class and API.md's types. */
export { Client, type ClientOptions } from './client.js';
export { isNotFound, isRaftkvError, RaftkvError, type RaftkvErrorCode } from './errors.js';
export { encodeKey } from './paths.js';
export { type SseEvent, SseParser } from './sse.js';
export type * from './types.js';
export { WatchStream } from './watch.js';
