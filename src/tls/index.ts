export * from './connect.js';
export * from './material.js';
export * from './server.js';
