import type { ProxyNodeStatus, ProxyNodeView } from '#contracts';
import { iso, rowsOf, type Columns, type Queryable, type StoredRow } from './columns.js';

/**
 * Projection `proxy_nodes` (migrations/1764700000000-proxy-sync.ts): each proxy node's status as of its last
 * ProxyNodeStatusChanged. What a node does between transitions is liveness, kept in a KV bucket.
 */
export type ProxyNodeRow = {
  node: string;
  status: ProxyNodeStatus;
  /** The configuration version the node reported with the transition. */
  config_version: number | null;
  detail: string | null;
  changed_at: string;
};

const proxyNodeColumns = {
  node: 'text',
  status: 'text',
  config_version: 'bigint',
  detail: 'text',
  changed_at: 'timestamptz',
} as const satisfies Columns<ProxyNodeRow>;

export const proxyNodesTable = { table: 'proxy_nodes', key: 'node', columns: proxyNodeColumns } as const;

/** Every projected node's status, by node name; `live` is left for the caller (it is not in Postgres). */
export async function queryProxyNodes(db: Queryable): Promise<ProxyNodeView[]> {
  const rows = await rowsOf<StoredRow<ProxyNodeRow, typeof proxyNodeColumns>>(
    db,
    'SELECT node, status, config_version, detail, changed_at FROM proxy_nodes ORDER BY node',
  );
  return rows.map((row) => ({
    node: row.node,
    status: row.status,
    configVersion: row.config_version === null ? null : Number(row.config_version),
    detail: row.detail,
    changedAt: iso(row.changed_at),
    live: null,
  }));
}
