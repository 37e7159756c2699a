export * from './codec.js';
export * from './errors.js';
export * from './fault-filter.js';
export * from './http-transport.js';
export * from './peer-routes.js';
