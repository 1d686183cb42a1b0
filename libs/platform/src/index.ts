export * from './logger.js';
export * from './config.js';
export * from './lifecycle.js';
export * from './correlation.js';
export * from './ids.js';
