import type { DomainEvent, PROXY_NODE_STATUSES, StoredEvent } from '#contracts';
import { RowProjection } from '#persistence';

export type ProxyNodeRow = {
  node: string;
  status: (typeof PROXY_NODE_STATUSES)[number];
  config_version: number | null;
  detail: string | null;
  changed_at: string;
};

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
  table: 'proxy_nodes',
  key: 'node',
  columns: {
    node: 'text',
    status: 'text',
    config_version: 'bigint',
    detail: 'text',
    changed_at: 'timestamptz',
  },
  eventTypes: ['ProxyNodeStatusChanged'],
  keyOf: (event) => (event.aggregate.type === 'proxy-node' ? event.aggregate.id : undefined),
  evolve: evolveProxyNodeRow,
});
