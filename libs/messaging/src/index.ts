export * from './nats.js';
export * from './commands.js';
export * from './agent-requests.js';
export * from './heartbeats.js';
export * from './agent-inbox.js';
export * from './proxy-nodes.js';
