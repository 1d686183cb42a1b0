import { checkedSchema, iso, rowsOf, type Columns, type Queryable, type StoredRow } from './columns.js';

/** Projection `hostnames` (migrations/1764500000000-routes.ts): who holds each claimed host name now. */
export type HostnameRow = {
  hostname: string;
  route_id: string;
  agent_id: string;
  claimed_at: string;
};

const hostnameColumns = {
  hostname: 'text',
  route_id: 'text',
  agent_id: 'text',
  claimed_at: 'timestamptz',
} as const satisfies Columns<HostnameRow>;

export const hostnamesTable = { table: 'hostnames', key: 'hostname', columns: hostnameColumns } as const;

export interface HostnameView {
  hostname: string;
  routeId: string;
  agentId: string;
  claimedAt: string;
}

/** The host names an agent holds, in order. */
export async function hostnamesOfAgent(db: Queryable, agentId: string): Promise<string[]> {
  const rows = await rowsOf<{ hostname: string }>(
    db,
    'SELECT hostname FROM hostnames WHERE agent_id = $1 ORDER BY hostname',
    [agentId],
  );
  return rows.map((row) => row.hostname);
}

/** A page of the claims of a `hostnames` table (the live one, or a time-travel view's), by host name. */
export async function queryHostnames(
  db: Queryable,
  page: { limit: number; offset: number },
  schema = 'public',
): Promise<HostnameView[]> {
  checkedSchema(schema);
  const rows = await rowsOf<StoredRow<HostnameRow, typeof hostnameColumns>>(
    db,
    `SELECT hostname, route_id, agent_id, claimed_at FROM "${schema}".hostnames ORDER BY hostname LIMIT $1 OFFSET $2`,
    [page.limit, page.offset],
  );
  return rows.map((row) => ({
    hostname: row.hostname,
    routeId: row.route_id,
    agentId: row.agent_id,
    claimedAt: iso(row.claimed_at),
  }));
}
