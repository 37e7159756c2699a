/** The raftkv client library: `new Client({ endpoints })`, its error class and API.md's types. */
export { AuthApi, mergePermission } from './auth-api.js';
export { Client, type ClientOptions } from './client.js';
export type { ClientAuth, TokenResponse } from './credentials.js';
export {
  isNotFound,
  isRaftkvError,
  PermissionDeniedError,
  RaftkvError,
  type RaftkvErrorCode,
  TooManyRequestsError,
  UnauthenticatedError,
} from './errors.js';
export { encodeKey } from './paths.js';
export { type SseEvent, SseParser } from './sse.js';
export { type ClientTlsOptions, type Pem, type TlsFiles, tlsFromFiles } from './tls.js';
export type * from './types.js';
export { WatchStream } from './watch.js';
