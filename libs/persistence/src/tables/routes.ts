import {
  routeAcrossNodes,
  type AppliedOnNode,
  type RouteKind,
  type RouteStatus,
  type RouteView,
} from '#contracts';
import {
  checkedSchema,
  iso,
  isoOrNull,
  rowsOf,
  type Columns,
  type Queryable,
  type StoredRow,
} from './columns.js';

/**
 * Projection `routes` (migrations/1764500000000-routes.ts, `last_sequence` and `change_*` from
 * 1764800000000-audit.ts): one row per route ever requested; removed ones stay, with their status.
 */
export type RouteRow = {
  route_id: string;
  agent_id: string;
  kind: RouteKind;
  hostname: string;
  target_host: string;
  target_port: number;
  options: { tlsToTarget: boolean };
  /** Definition events so far: requested = 1, each update + 1. */
  revision: number;
  status: RouteStatus;
  status_reason: string | null;
  /** Per proxy node: the newest revision it reported applied. */
  applied: Record<string, AppliedOnNode>;
  /** Of the current revision: the last node's report. */
  propagation_ms: number | null;
  config_version: number | null;
  requested_at: string;
  updated_at: string;
  removed_at: string | null;
  /** The log sequence of the last event that changed the row: readers fetch what changed after a position. */
  last_sequence: number;
  /**
   * The event that made the current revision (requested, updated, removed) and its correlation id: what a
   * proxy node's report of that revision names as its cause, so one request's trail reaches HAProxy.
   */
  change_event_id: string | null;
  change_correlation_id: string | null;
};

const routeColumns = {
  route_id: 'text',
  agent_id: 'text',
  kind: 'text',
  hostname: 'text',
  target_host: 'text',
  target_port: 'integer',
  options: 'jsonb',
  revision: 'integer',
  status: 'text',
  status_reason: 'text',
  applied: 'jsonb',
  propagation_ms: 'integer',
  config_version: 'bigint',
  requested_at: 'timestamptz',
  updated_at: 'timestamptz',
  removed_at: 'timestamptz',
  last_sequence: 'bigint',
  change_event_id: 'text',
  change_correlation_id: 'text',
} as const satisfies Columns<RouteRow>;

export const routesTable = { table: 'routes', key: 'route_id', columns: routeColumns } as const;

/** The columns `routeViewOfRow` reads. */
const VIEW_COLUMNS =
  'route_id, agent_id, kind, hostname, target_host, target_port, options, revision, status, status_reason, ' +
  'applied, propagation_ms, config_version, requested_at, updated_at, removed_at';

/** The live routes' view columns and every proxy node's status (an InitPlan: read once per statement). */
const LIVE_VIEW_COLUMNS = `${VIEW_COLUMNS}, (SELECT coalesce(jsonb_object_agg(node, status), '{}'::jsonb) FROM public.proxy_nodes) AS proxy_nodes`;

/** The live table's rows carry the proxy nodes' statuses; a time-travel view's are as they were. */
const viewColumnsOf = (schema: string) => (schema === 'public' ? LIVE_VIEW_COLUMNS : VIEW_COLUMNS);

type ViewRow = Omit<
  StoredRow<RouteRow, typeof routeColumns>,
  'last_sequence' | 'change_event_id' | 'change_correlation_id'
> & {
  /** With the live columns: node → status of every proxy node. */
  proxy_nodes?: Record<string, string>;
};

/** A `routes` row as the API and agents see it. */
function routeViewOfRow(row: ViewRow): RouteView {
  // Defensive about rows written before the columns had defaults.
  const applied = (row.applied as RouteRow['applied'] | null) ?? {};
  const options = row.options as Partial<RouteRow['options']> | null;
  const across = routeAcrossNodes(
    { status: row.status, revision: row.revision, applied },
    row.proxy_nodes ?? {},
  );
  return {
    routeId: row.route_id,
    agentId: row.agent_id,
    kind: row.kind,
    hostname: row.hostname,
    target: { host: row.target_host, port: row.target_port },
    options: { tlsToTarget: options?.tlsToTarget ?? false },
    revision: row.revision,
    status: across.status,
    statusReason: row.status_reason,
    applied,
    propagationMs: row.propagation_ms,
    configVersion: row.config_version === null ? null : Number(row.config_version),
    requestedAt: iso(row.requested_at),
    updatedAt: iso(row.updated_at),
    removedAt: isoOrNull(row.removed_at),
    nodes: across.nodes,
  };
}

export interface RouteFilters {
  agentId?: string;
  /** Without a status, removed routes are left out. */
  status?: RouteStatus;
  kind?: RouteKind;
  hostname?: string;
  limit?: number;
  offset?: number;
}

/** Routes of a `routes` table (the live one, or a time-travel view's), oldest first. */
export async function queryRoutes(
  db: Queryable,
  filters: RouteFilters,
  schema = 'public',
): Promise<{ routes: RouteView[]; total: number }> {
  checkedSchema(schema);
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
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${viewColumnsOf(schema)} FROM "${schema}".routes ${where}
      ORDER BY requested_at, route_id LIMIT $5 OFFSET $6`,
    [...values, filters.limit ?? 100, filters.offset ?? 0],
  );
  const [count] = await rowsOf<{ total: number }>(
    db,
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
  checkedSchema(schema);
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${viewColumnsOf(schema)} FROM "${schema}".routes WHERE route_id = $1`,
    [routeId],
  );
  return rows[0] ? routeViewOfRow(rows[0]) : undefined;
}

/** The live routes with these ids (those projected so far). */
export async function queryRoutesByIds(db: Queryable, routeIds: readonly string[]): Promise<RouteView[]> {
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${LIVE_VIEW_COLUMNS} FROM routes WHERE route_id = ANY($1::text[])`,
    [routeIds],
  );
  return rows.map(routeViewOfRow);
}

/** Route counts by status and kind (removed ones included). */
export function countRoutesByStatusAndKind(
  db: Queryable,
): Promise<{ status: RouteStatus; kind: RouteKind; count: number }[]> {
  return rowsOf(db, 'SELECT status, kind, count(*)::int AS count FROM routes GROUP BY status, kind');
}

/** The ids of an agent's routes that are not removed, in id order. */
export async function liveRouteIdsOfAgent(db: Queryable, agentId: string): Promise<string[]> {
  const rows = await rowsOf<{ route_id: string }>(
    db,
    `SELECT route_id FROM routes WHERE agent_id = $1 AND status <> 'removed' ORDER BY route_id`,
    [agentId],
  );
  return rows.map((row) => row.route_id);
}

/** Routes not removed whose agent is deregistered (what a missed deregistration left), in id order. */
export async function liveRoutesOfDeregisteredAgents(
  db: Queryable,
  limit: number,
): Promise<{ routeId: string; agentId: string }[]> {
  const rows = await rowsOf<{ route_id: string; agent_id: string }>(
    db,
    `SELECT r.route_id, r.agent_id FROM routes r JOIN agents a ON a.agent_id = r.agent_id
      WHERE a.status = 'deregistered' AND r.status <> 'removed' ORDER BY r.route_id LIMIT $1`,
    [limit],
  );
  return rows.map((row) => ({ routeId: row.route_id, agentId: row.agent_id }));
}

// ------------------------------------------------------------------ a proxy node's reads

/**
 * A route as one proxy node reads it, with the projection's checkpoint of the same snapshot (`position`).
 * A checkpoint with no rows comes back as one row whose `route_id` is null.
 */
export interface NodeRouteRow {
  position: string | number;
  route_id: string | null;
  revision: number;
  agent_id: string;
  kind: RouteKind;
  hostname: string;
  target_host: string;
  target_port: number;
  options: { tlsToTarget?: boolean } | null;
  removed: boolean;
  /** The revision this node reported applied (`applied-><node>`), or null. */
  applied_revision: number | null;
  change_event_id: string | null;
  change_correlation_id: string | null;
}

const NODE_COLUMNS = `c.position, r.route_id, r.revision, r.agent_id, r.kind, r.hostname, r.target_host,
  r.target_port, r.options, r.removed_at IS NOT NULL AS removed, (r.applied -> $1 ->> 'revision')::int AS applied_revision,
  r.change_event_id, r.change_correlation_id`;
const ROUTES_CHECKPOINT = `(SELECT coalesce(max(last_sequence), 0) AS position FROM projection_checkpoints WHERE projection = 'routes') c`;

/** Live routes, and removed ones this node has not reported dropped (one statement: one snapshot). */
export function readNodeRoutes(db: Queryable, node: string): Promise<NodeRouteRow[]> {
  return rowsOf(
    db,
    `SELECT ${NODE_COLUMNS} FROM ${ROUTES_CHECKPOINT}
      LEFT JOIN routes r ON r.removed_at IS NULL OR r.applied -> $1 IS NOT NULL`,
    [node],
  );
}

/** Every row changed after a checkpoint (removed ones included), with the checkpoint now. */
export function readNodeRouteChanges(db: Queryable, node: string, after: number): Promise<NodeRouteRow[]> {
  return rowsOf(
    db,
    `SELECT ${NODE_COLUMNS} FROM ${ROUTES_CHECKPOINT} LEFT JOIN routes r ON r.last_sequence > $2`,
    [node, after],
  );
}
