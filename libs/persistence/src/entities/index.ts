import { DeadLetterRecord, EventLogEntry, EventTypeStats, ProjectionCheckpoint } from './foundation.js';
import { AdminTokenRecord, AgentRecord, AgentRefreshToken, AgentTokenFamily } from './agents.js';
import { HostnameRecord, RouteRecord } from './routes.js';
import { CertificateRecord } from './certificates.js';
import { ProxyNodeStatusRecord } from './proxy-nodes.js';

export * from './foundation.js';
export * from './agents.js';
export * from './routes.js';
export * from './certificates.js';
export * from './proxy-nodes.js';
export * from './route-queries.js';

/** Every entity the data source knows. Add a projection's entities here with its migration. */
export const entities = [
  ProjectionCheckpoint,
  DeadLetterRecord,
  EventLogEntry,
  EventTypeStats,
  AgentRecord,
  AdminTokenRecord,
  AgentTokenFamily,
  AgentRefreshToken,
  RouteRecord,
  HostnameRecord,
  CertificateRecord,
  ProxyNodeStatusRecord,
];
