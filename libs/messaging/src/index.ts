export * from './nats.js';
export * from './commands.js';
