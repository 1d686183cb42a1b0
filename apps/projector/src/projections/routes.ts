import type { DomainEvent, StoredEvent } from '#contracts';
import { hostnamesTable, routesTable, type HostnameRow, type RouteRow } from '#persistence';
import { RowProjection } from '../engine/row-projection.js';

/** Largest value of a Postgres integer: a propagation time beyond it (24 days) is recorded as this. */
const MAX_INTEGER = 2_147_483_647;

/**
 * The routes read model and its lifecycle: `pending` when requested or updated (a new revision),
 * `active` once a proxy node applied the current revision, `failed` when a node could not and no other
 * node has it, `removed` for good. Reports about older revisions only update that node's entry.
 */
const REVISION_EVENTS = new Set(['RouteRequested', 'RouteUpdated', 'RouteRemoved']);

export function evolveRouteRow(row: RouteRow | undefined, stored: StoredEvent): RouteRow | undefined {
  const next = evolveRoute(row, stored);
  if (next === undefined || next === row) return next;
  return REVISION_EVENTS.has(stored.type)
    ? {
        ...next,
        last_sequence: stored.sequence,
        change_event_id: stored.id,
        change_correlation_id: stored.correlationId,
      }
    : { ...next, last_sequence: stored.sequence };
}

function evolveRoute(row: RouteRow | undefined, stored: StoredEvent): RouteRow | undefined {
  const event = stored as DomainEvent;
  switch (event.type) {
    case 'RouteRequested':
      if (row) return row;
      return {
        route_id: event.data.routeId,
        agent_id: event.data.agentId,
        kind: event.data.kind,
        hostname: event.data.hostname,
        target_host: event.data.target.host,
        target_port: event.data.target.port,
        options: { tlsToTarget: event.data.options.tlsToTarget },
        revision: 1,
        status: 'pending',
        status_reason: null,
        applied: {},
        propagation_ms: null,
        config_version: null,
        requested_at: event.occurredAt,
        updated_at: event.occurredAt,
        removed_at: null,
        last_sequence: stored.sequence,
        change_event_id: stored.id,
        change_correlation_id: stored.correlationId,
      };
    case 'RouteUpdated':
      if (!row || row.status === 'removed') return row;
      return {
        ...row,
        target_host: event.data.target.host,
        target_port: event.data.target.port,
        options: { tlsToTarget: event.data.options.tlsToTarget },
        revision: row.revision + 1,
        status: 'pending',
        status_reason: null,
        propagation_ms: null,
        config_version: null,
        updated_at: event.occurredAt,
      };
    case 'RouteRemoved':
      if (!row || row.status === 'removed') return row;
      return {
        ...row,
        status: 'removed',
        status_reason: event.data.reason,
        removed_at: event.occurredAt,
        updated_at: event.occurredAt,
      };
    case 'RouteApplied': {
      if (!row || row.status === 'removed') return row;
      const { node, revision, configVersion, propagationMs } = event.data;
      const previous = row.applied[node];
      if (previous && previous.revision > revision) return row;
      const applied = {
        ...row.applied,
        [node]: { revision, configVersion, propagationMs, at: event.occurredAt },
      };
      if (revision !== row.revision) return { ...row, applied, updated_at: event.occurredAt };
      return {
        ...row,
        applied,
        status: 'active',
        status_reason: null,
        propagation_ms: Math.min(Math.round(propagationMs), MAX_INTEGER),
        config_version: configVersion,
        updated_at: event.occurredAt,
      };
    }
    case 'RouteFailed': {
      if (!row || row.status === 'removed' || event.data.revision !== row.revision) return row;
      const { node, reason, revision } = event.data;
      // The node does not route this revision (any more).
      const applied = { ...row.applied };
      if (applied[node]?.revision === revision) delete applied[node];
      const elsewhere = Object.values(applied).some((entry) => entry.revision === revision);
      return {
        ...row,
        applied,
        status: elsewhere ? 'active' : 'failed',
        status_reason: elsewhere ? `proxy node ${node} failed: ${reason}` : reason,
        updated_at: event.occurredAt,
      };
    }
    case 'RouteDropped': {
      // A node stopped routing the removed route: `applied` of a removed route lists who still routes it.
      if (!row || row.status !== 'removed' || !(event.data.node in row.applied)) return row;
      const applied = { ...row.applied };
      delete applied[event.data.node];
      return { ...row, applied, updated_at: event.occurredAt };
    }
    default:
      return row;
  }
}

export const routesProjection = new RowProjection<RouteRow>({
  name: 'routes',
  ...routesTable,
  eventTypes: [
    'RouteRequested',
    'RouteUpdated',
    'RouteRemoved',
    'RouteApplied',
    'RouteFailed',
    'RouteDropped',
  ],
  keyOf: (event) => (event.aggregate.type === 'route' ? event.aggregate.id : undefined),
  evolve: evolveRouteRow,
});

/** Who holds each host name: a claim adds the row, the release by the same route deletes it. */
export function evolveHostnameRow(
  row: HostnameRow | undefined,
  stored: StoredEvent,
): HostnameRow | undefined {
  const event = stored as DomainEvent;
  switch (event.type) {
    case 'HostnameClaimed':
      return {
        hostname: event.data.hostname,
        route_id: event.data.routeId,
        agent_id: event.data.agentId,
        claimed_at: event.occurredAt,
      };
    case 'HostnameReleased':
      return row?.route_id === event.data.routeId ? undefined : row;
    default:
      return row;
  }
}

export const hostnamesProjection = new RowProjection<HostnameRow>({
  name: 'hostnames',
  ...hostnamesTable,
  eventTypes: ['HostnameClaimed', 'HostnameReleased'],
  keyOf: (event) => (event.aggregate.type === 'hostname' ? event.aggregate.id : undefined),
  evolve: evolveHostnameRow,
});
