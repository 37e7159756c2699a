export { defaultConfig, type NodeConfig, parseHostPort, parseInitialCluster } from './config.js';
export { ServerError, type ServerErrorCode } from './errors.js';
export { KvService } from './kv-service.js';
export { type NodeOptions, RaftKvNode, VERSION } from './node.js';
