export * from './routes.js';
export * from './layout.js';
export * from './desired.js';
export * from './plan.js';
