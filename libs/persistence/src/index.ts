export * from './tables/index.js';
export * from './data-source.js';
export * from './dead-letters.js';
export * from './nest.js';
export * from './dead-letter-admin.js';
