import type { AgentStatus, AgentView } from '#contracts';
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
 * Projection `agents` (migrations/1764100000000-agents.ts): one row per agent ever enrolled; deregistered
 * ones stay, with their status. `last_seen_at` is the time of the last transition, not of every heartbeat.
 */
export type AgentRow = {
  agent_id: string;
  status: AgentStatus;
  public_address: string;
  labels: Record<string, string>;
  nats_public_key: string;
  enrolled_at: string;
  last_seen_at: string | null;
  deregistered_at: string | null;
  updated_at: string;
};

const agentColumns = {
  agent_id: 'text',
  status: 'text',
  public_address: 'text',
  labels: 'jsonb',
  nats_public_key: 'text',
  enrolled_at: 'timestamptz',
  last_seen_at: 'timestamptz',
  deregistered_at: 'timestamptz',
  updated_at: 'timestamptz',
} as const satisfies Columns<AgentRow>;

export const agentsTable = { table: 'agents', key: 'agent_id', columns: agentColumns } as const;

const VIEW_COLUMNS = 'agent_id, status, public_address, labels, enrolled_at, last_seen_at, deregistered_at';

type ViewRow = Omit<StoredRow<AgentRow, typeof agentColumns>, 'nats_public_key' | 'updated_at'>;

function agentViewOfRow(row: ViewRow): AgentView {
  return {
    agentId: row.agent_id,
    status: row.status,
    publicAddress: row.public_address,
    labels: row.labels,
    enrolledAt: iso(row.enrolled_at),
    lastSeenAt: isoOrNull(row.last_seen_at),
    deregisteredAt: isoOrNull(row.deregistered_at),
  };
}

/** Agents of an `agents` table (the live one, or a time-travel view's) by id; every one without a limit. */
export async function queryAgents(
  db: Queryable,
  page: { limit?: number; offset?: number } = {},
  schema = 'public',
): Promise<AgentView[]> {
  checkedSchema(schema);
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${VIEW_COLUMNS} FROM "${schema}".agents ORDER BY agent_id LIMIT $1 OFFSET $2`,
    [page.limit ?? null, page.offset ?? 0],
  );
  return rows.map(agentViewOfRow);
}

/** One live agent, or undefined. */
export async function queryAgent(db: Queryable, agentId: string): Promise<AgentView | undefined> {
  const rows = await rowsOf<ViewRow>(db, `SELECT ${VIEW_COLUMNS} FROM agents WHERE agent_id = $1`, [agentId]);
  return rows[0] ? agentViewOfRow(rows[0]) : undefined;
}

/** Agent counts by status (deregistered ones included). */
export function countAgentsByStatus(db: Queryable): Promise<{ status: AgentStatus; count: number }[]> {
  return rowsOf(db, 'SELECT status, count(*)::int AS count FROM agents GROUP BY status');
}
