export * from './client.js';
export * from './transaction.js';
export type {
  paths as DataplaneApiPaths,
  components as DataplaneApiComponents,
} from './generated/dataplane.js';
