import type { AppConfig, AppView } from '#contracts';
import { checkedSchema, iso, rowsOf, type Columns, type Queryable, type StoredRow } from './columns.js';

/**
 * Projection `apps` (migrations/1765000000000-deployments.ts): one row per app, from the app aggregate's
 * events. Secrets are names and versions only; their values are in `app_secret_values`.
 */
export type AppRow = {
  app_name: string;
  agent_id: string;
  hostname: string;
  route_id: string | null;
  config: AppConfig;
  /** Secret name → its latest version and when it was set. */
  secrets: Record<string, { version: number; setAt: string }>;
  current_release: { releaseId: string; number: number; port: number; commit: string | null } | null;
  kept_releases: { releaseId: string; number: number; commit: string | null; builtAt: string }[];
  active_deployment_id: string | null;
  queued_deployment_id: string | null;
  deployments_count: number;
  created_at: string;
  updated_at: string;
  /** The log sequence of the last event that changed the row. */
  last_sequence: number;
};

const appColumns = {
  app_name: 'text',
  agent_id: 'text',
  hostname: 'text',
  route_id: 'text',
  config: 'jsonb',
  secrets: 'jsonb',
  current_release: 'jsonb',
  kept_releases: 'jsonb',
  active_deployment_id: 'text',
  queued_deployment_id: 'text',
  deployments_count: 'integer',
  created_at: 'timestamptz',
  updated_at: 'timestamptz',
  last_sequence: 'bigint',
} as const satisfies Columns<AppRow>;

export const appsTable = { table: 'apps', key: 'app_name', columns: appColumns } as const;

const VIEW_COLUMNS =
  'app_name, agent_id, hostname, route_id, config, secrets, current_release, kept_releases, ' +
  'active_deployment_id, queued_deployment_id, deployments_count, created_at, updated_at';

type ViewRow = Omit<StoredRow<AppRow, typeof appColumns>, 'last_sequence'>;

/** An `apps` row as the API answers it. */
export function appViewOfRow(row: ViewRow): AppView {
  return {
    appName: row.app_name,
    agentId: row.agent_id,
    hostname: row.hostname,
    routeId: row.route_id,
    config: row.config,
    secrets: Object.entries(row.secrets ?? {})
      .map(([name, secret]) => ({ name, version: secret.version, setAt: secret.setAt }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    current: row.current_release,
    keptReleases: row.kept_releases ?? [],
    activeDeploymentId: row.active_deployment_id,
    queuedDeploymentId: row.queued_deployment_id,
    deploymentsCount: row.deployments_count,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

/** One app of an `apps` table (the live one, or a time-travel view's), or undefined. */
export async function appByName(
  db: Queryable,
  appName: string,
  schema = 'public',
): Promise<AppView | undefined> {
  checkedSchema(schema);
  const rows = await rowsOf<ViewRow>(db, `SELECT ${VIEW_COLUMNS} FROM "${schema}".apps WHERE app_name = $1`, [
    appName,
  ]);
  return rows[0] ? appViewOfRow(rows[0]) : undefined;
}

export interface AppFilters {
  /** Without one: every agent's apps. */
  agentId?: string;
  limit?: number;
  offset?: number;
}

/** Apps by name, of one agent or all, with the total that matches. */
export async function queryApps(
  db: Queryable,
  filters: AppFilters = {},
  schema = 'public',
): Promise<{ apps: AppView[]; total: number }> {
  checkedSchema(schema);
  const where = 'WHERE ($1::text IS NULL OR agent_id = $1)';
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${VIEW_COLUMNS} FROM "${schema}".apps ${where} ORDER BY app_name LIMIT $2 OFFSET $3`,
    [filters.agentId ?? null, filters.limit ?? 100, filters.offset ?? 0],
  );
  const [count] = await rowsOf<{ total: number }>(
    db,
    `SELECT count(*)::int AS total FROM "${schema}".apps ${where}`,
    [filters.agentId ?? null],
  );
  return { apps: rows.map(appViewOfRow), total: count?.total ?? 0 };
}

/** Every app of an agent, by name (what its reconcile converges). */
export async function appsOfAgent(db: Queryable, agentId: string): Promise<AppView[]> {
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${VIEW_COLUMNS} FROM apps WHERE agent_id = $1 ORDER BY app_name`,
    [agentId],
  );
  return rows.map(appViewOfRow);
}
