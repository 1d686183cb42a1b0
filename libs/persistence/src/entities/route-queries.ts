import type { RouteKind, RouteStatus, RouteView } from '#contracts';
import { LIVE_ROUTE_COLUMNS, ROUTE_COLUMNS, routeViewOfRow, type RouteRowData } from './routes.js';

/** The live table's rows carry the proxy nodes' statuses; a time-travel view's are as they were. */
const columnsOf = (schema: string) => (schema === 'public' ? LIVE_ROUTE_COLUMNS : ROUTE_COLUMNS);

type Queryable = { query(sql: string, parameters?: unknown[]): Promise<any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface RouteFilters {
  agentId?: string;
  /** Without a status, removed routes are left out. */
  status?: RouteStatus;
  kind?: RouteKind;
  hostname?: string;
  limit?: number;
  offset?: number;
}

/**
 * Reads routes from a `routes` table (the live one, or a time-travel view's), oldest first. `schema` must
 * be a checked identifier; values are always parameters.
 */
export async function queryRoutes(
  db: Queryable,
  filters: RouteFilters,
  schema = 'public',
): Promise<{ routes: RouteView[]; total: number }> {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`unsafe schema name ${JSON.stringify(schema)}`);
  const where = `WHERE ($1::text IS NULL OR agent_id = $1)
        AND (($2::text IS NULL AND status <> 'removed') OR status = $2)
        AND ($3::text IS NULL OR kind = $3)
        AND ($4::text IS NULL OR hostname = $4)`;
  const values = [
    filters.agentId ?? null,
    filters.status ?? null,
    filters.kind ?? null,
    filters.hostname ?? null,
  ];
  const rows: RouteRowData[] = await db.query(
    `SELECT ${columnsOf(schema)} FROM "${schema}".routes ${where}
      ORDER BY requested_at, route_id LIMIT $5 OFFSET $6`,
    [...values, filters.limit ?? 100, filters.offset ?? 0],
  );
  const [count]: { total: number }[] = await db.query(
    `SELECT count(*)::int AS total FROM "${schema}".routes ${where}`,
    values,
  );
  return { routes: rows.map(routeViewOfRow), total: count?.total ?? 0 };
}

/** One route of a `routes` table, or undefined. */
export async function queryRoute(
  db: Queryable,
  routeId: string,
  schema = 'public',
): Promise<RouteView | undefined> {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`unsafe schema name ${JSON.stringify(schema)}`);
  const rows: RouteRowData[] = await db.query(
    `SELECT ${columnsOf(schema)} FROM "${schema}".routes WHERE route_id = $1`,
    [routeId],
  );
  return rows[0] ? routeViewOfRow(rows[0]) : undefined;
}
