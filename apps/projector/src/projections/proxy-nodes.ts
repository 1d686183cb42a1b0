import type { DomainEvent, StoredEvent } from '#contracts';
import { proxyNodesTable, type ProxyNodeRow } from '#persistence';
import { RowProjection } from '../engine/row-projection.js';

/**
 * Each proxy node's status (`in-sync`, `degraded`, `unreachable`) as of its last transition. What a node
 * does between transitions (last sync, applied version, worker pid) is liveness, kept in the `proxy-nodes`
 * KV bucket; the API joins the two.
 */
export function evolveProxyNodeRow(
  row: ProxyNodeRow | undefined,
  stored: StoredEvent,
): ProxyNodeRow | undefined {
  const event = stored as DomainEvent;
  if (event.type !== 'ProxyNodeStatusChanged') return row;
  return {
    node: event.data.node,
    status: event.data.status,
    config_version: event.data.configVersion,
    detail: event.data.detail,
    changed_at: event.occurredAt,
  };
}

export const proxyNodesProjection = new RowProjection<ProxyNodeRow>({
  name: 'proxy_nodes',
  ...proxyNodesTable,
  eventTypes: ['ProxyNodeStatusChanged'],
  keyOf: (event) => (event.aggregate.type === 'proxy-node' ? event.aggregate.id : undefined),
  evolve: evolveProxyNodeRow,
});
