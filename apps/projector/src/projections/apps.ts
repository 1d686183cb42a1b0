import type { DomainEvent, StoredEvent } from '#contracts';
import { appsTable, type AppRow } from '#persistence';
import { RowProjection } from '../engine/row-projection.js';

/**
 * The apps read model, the same fold as the app aggregate's (apps/deployments/src/domain/app.ts) minus
 * what only decisions need (accepted ids, command ids, secret high-water marks).
 */
export function evolveAppRow(row: AppRow | undefined, stored: StoredEvent): AppRow | undefined {
  const next = evolveApp(row, stored as DomainEvent);
  return next === undefined || next === row ? next : { ...next, last_sequence: stored.sequence };
}

function evolveApp(row: AppRow | undefined, event: DomainEvent): AppRow | undefined {
  if (event.type === 'AppCreated') {
    if (row) return row;
    return {
      app_name: event.data.appName,
      agent_id: event.data.agentId,
      hostname: event.data.config.hostname,
      route_id: null,
      config: event.data.config,
      secrets: {},
      current_release: null,
      kept_releases: [],
      active_deployment_id: null,
      queued_deployment_id: null,
      deployments_count: 0,
      created_at: event.occurredAt,
      updated_at: event.occurredAt,
      last_sequence: 0,
    };
  }
  if (!row) return row;
  const next = { ...row, updated_at: event.occurredAt };
  switch (event.type) {
    case 'AppConfigured':
      return { ...next, config: event.data.config };
    case 'AppSecretSet':
      return {
        ...next,
        secrets: {
          ...row.secrets,
          [event.data.name]: { version: event.data.version, setAt: event.occurredAt },
        },
      };
    case 'AppSecretRemoved': {
      if (!(event.data.name in row.secrets)) return next;
      const { [event.data.name]: _removed, ...secrets } = row.secrets;
      return { ...next, secrets };
    }
    case 'DeploymentAccepted': {
      const counted = { ...next, deployments_count: Math.max(row.deployments_count, event.data.number) };
      return event.data.queued
        ? { ...counted, queued_deployment_id: event.data.deploymentId }
        : { ...counted, active_deployment_id: event.data.deploymentId };
    }
    case 'DeploymentActivated':
      return {
        ...next,
        active_deployment_id: event.data.deploymentId,
        queued_deployment_id:
          row.queued_deployment_id === event.data.deploymentId ? null : row.queued_deployment_id,
      };
    case 'DeploymentFinished':
      return {
        ...next,
        active_deployment_id:
          row.active_deployment_id === event.data.deploymentId ? null : row.active_deployment_id,
        queued_deployment_id:
          row.queued_deployment_id === event.data.deploymentId ? null : row.queued_deployment_id,
        current_release: event.data.current,
        route_id: event.data.routeId,
        kept_releases: event.data.keptReleases,
      };
    default:
      return row;
  }
}

export const appsProjection = new RowProjection<AppRow>({
  name: 'apps',
  ...appsTable,
  eventTypes: [
    'AppCreated',
    'AppConfigured',
    'AppSecretSet',
    'AppSecretRemoved',
    'DeploymentAccepted',
    'DeploymentActivated',
    'DeploymentFinished',
  ],
  keyOf: (event) => (event.aggregate.type === 'app' ? event.aggregate.id : undefined),
  evolve: evolveAppRow,
});
