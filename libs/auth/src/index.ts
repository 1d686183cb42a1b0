export * from './layout.js';
export * from './nats-claims.js';
export * from './secrets.js';
export * from './tokens.js';
export * from './broker.js';
export * from './service-permissions.js';
