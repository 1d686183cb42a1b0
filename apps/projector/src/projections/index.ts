import type { Projection } from '../engine/projection.js';
import { adminTokensProjection, agentsProjection } from './agents.js';
import { appsProjection } from './apps.js';
import { certificatesProjection } from './certificates.js';
import { deploymentsProjection } from './deployments.js';
import { eventLogProjection } from './event-log.js';
import { eventStatsProjection } from './event-stats.js';
import { proxyNodesProjection } from './proxy-nodes.js';
import { hostnamesProjection, routesProjection } from './routes.js';

export { eventLogProjection } from './event-log.js';
export { eventStatsProjection, evolveEventStats } from './event-stats.js';
export { agentsProjection, adminTokensProjection, evolveAgentRow, evolveAdminTokenRow } from './agents.js';
export { routesProjection, hostnamesProjection, evolveRouteRow, evolveHostnameRow } from './routes.js';
export { certificatesProjection, evolveCertificateRow } from './certificates.js';
export { proxyNodesProjection, evolveProxyNodeRow } from './proxy-nodes.js';
export { appsProjection, evolveAppRow } from './apps.js';
export { deploymentsProjection, evolveDeploymentRow } from './deployments.js';

/** Every live projection, by name. */
export const projections: readonly Projection[] = [
  eventLogProjection,
  eventStatsProjection,
  agentsProjection,
  adminTokensProjection,
  routesProjection,
  hostnamesProjection,
  certificatesProjection,
  proxyNodesProjection,
  appsProjection,
  deploymentsProjection,
];
