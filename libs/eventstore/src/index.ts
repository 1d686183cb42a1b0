export * from './errors.js';
export * from './streams.js';
export * from './event-store.js';
export * from './acked-publisher.js';
export * from './dead-letters.js';
export * from './quarantine.js';
export * from './transport.js';
export * from './nest.js';
