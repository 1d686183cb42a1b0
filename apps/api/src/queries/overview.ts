import type { Overview } from '#contracts';
import {
  certificateExpirySummary,
  countAgentsByStatus,
  countDeadLettersByStatus,
  countRoutesByStatusAndKind,
  eventsPerMinute,
  eventTotals,
  queryCheckpoints,
  type Queryable,
} from '#persistence';

/** Minutes of history the overview's event-rate chart shows. */
const RATE_WINDOW_MINUTES = 15;
/** Certificates expiring within this many days count as "expiring soon". */
const EXPIRING_SOON_DAYS = 14;

/** The dashboard's overview: counts by status from every projection, the event rate, the projector's position. */
export async function readOverview(db: Queryable): Promise<Overview> {
  const [agents, routes, totals, perMinute, checkpoints, deadLetters, certificates] = await Promise.all([
    countAgentsByStatus(db),
    countRoutesByStatusAndKind(db),
    eventTotals(db),
    eventsPerMinute(db, RATE_WINDOW_MINUTES),
    queryCheckpoints(db),
    countDeadLettersByStatus(db),
    certificateExpirySummary(db, EXPIRING_SOON_DAYS),
  ]);
  const routesByStatus: Record<string, number> = { pending: 0, active: 0, failed: 0, removed: 0 };
  const routesByKind: Record<string, number> = {};
  for (const row of routes) {
    routesByStatus[row.status] = (routesByStatus[row.status] ?? 0) + row.count;
    if (row.status !== 'removed') routesByKind[row.kind] = (routesByKind[row.kind] ?? 0) + row.count;
  }
  const agentsByStatus: Record<string, number> = { online: 0, offline: 0, enrolled: 0, deregistered: 0 };
  for (const row of agents) agentsByStatus[row.status] = row.count;
  const letters = { open: 0, retrying: 0, resolved: 0 };
  for (const row of deadLetters) letters[row.status as keyof typeof letters] = row.count;
  const projections = checkpoints.map((checkpoint) => ({
    name: checkpoint.projection,
    lastSequence: checkpoint.lastSequence,
    updatedAt: checkpoint.updatedAt,
  }));
  return {
    generatedAt: new Date().toISOString(),
    agents: {
      total: agents.reduce((sum, row) => sum + (row.status === 'deregistered' ? 0 : row.count), 0),
      byStatus: agentsByStatus,
    },
    routes: {
      total: routes.reduce((sum, row) => sum + (row.status === 'removed' ? 0 : row.count), 0),
      byStatus: routesByStatus,
      byKind: routesByKind,
    },
    events: { ...totals, perMinute },
    projector: {
      position: projections.length === 0 ? 0 : Math.min(...projections.map((p) => p.lastSequence)),
      projections,
    },
    deadLetters: letters,
    certificates,
  };
}
