export * from './deciders.js';
