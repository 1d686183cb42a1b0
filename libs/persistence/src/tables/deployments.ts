import {
  DEPLOYMENT_PHASES,
  TERMINAL_DEPLOYMENT_STATUSES,
  isTerminalDeploymentStatus,
  type DeploymentFailureView,
  type DeploymentKind,
  type DeploymentPhase,
  type DeploymentStatus,
  type DeploymentVerificationView,
  type DeploymentView,
  type PhaseLimits,
  type PhaseView,
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

/** An interface as a plain object type (rows' JSON columns must be records). */
type Plain<T> = { [K in keyof T]: T[K] };

/**
 * Projection `deployments` (migrations/1765000000000-deployments.ts): one row per deployment, from its
 * aggregate's events and its app's DeploymentAccepted (the number) and DeploymentActivated (when it may
 * be claimed). `deadline_at` is the current status's deadline: the supervisor's scan and the UI's.
 */
export type DeploymentRow = {
  deployment_id: string;
  app_name: string;
  agent_id: string;
  /** The app's count, from DeploymentAccepted: null until the app accepted it. */
  number: number | null;
  kind: DeploymentKind;
  status: DeploymentStatus;
  /** When each phase was reached (ISO). */
  phases: Partial<Record<DeploymentPhase, string>>;
  /** When it became its app's active deployment (the start of its wait for a claim); null while queued. */
  activated_at: string | null;
  cancel_requested_at: string | null;
  cancel_reason: string | null;
  commit: string | null;
  release_id: string | null;
  release_number: number | null;
  port: number | null;
  route_id: string | null;
  failure: Plain<DeploymentFailureView> | null;
  verification: Plain<DeploymentVerificationView> | null;
  /** The limits snapshotted at the request. */
  limits: PhaseLimits;
  deadline_at: string | null;
  lease_claimed_at: string | null;
  /** When the current status was entered. */
  entered_at: string;
  requested_at: string;
  finished_at: string | null;
  /** The actor of DeploymentRequested. */
  requested_by: { kind: string; id: string };
  last_sequence: number;
};

const deploymentColumns = {
  deployment_id: 'text',
  app_name: 'text',
  agent_id: 'text',
  number: 'integer',
  kind: 'text',
  status: 'text',
  phases: 'jsonb',
  activated_at: 'timestamptz',
  cancel_requested_at: 'timestamptz',
  cancel_reason: 'text',
  commit: 'text',
  release_id: 'text',
  release_number: 'integer',
  port: 'integer',
  route_id: 'text',
  failure: 'jsonb',
  verification: 'jsonb',
  limits: 'jsonb',
  deadline_at: 'timestamptz',
  lease_claimed_at: 'timestamptz',
  entered_at: 'timestamptz',
  requested_at: 'timestamptz',
  finished_at: 'timestamptz',
  requested_by: 'jsonb',
  last_sequence: 'bigint',
} as const satisfies Columns<DeploymentRow>;

export const deploymentsTable = {
  table: 'deployments',
  key: 'deployment_id',
  columns: deploymentColumns,
} as const;

const VIEW_COLUMNS =
  'deployment_id, app_name, agent_id, number, kind, status, phases, cancel_requested_at, cancel_reason, ' +
  'commit, release_id, release_number, port, route_id, failure, verification, deadline_at, requested_at, ' +
  'finished_at, requested_by';

type ViewRow = Pick<
  StoredRow<DeploymentRow, typeof deploymentColumns>,
  | 'deployment_id'
  | 'app_name'
  | 'agent_id'
  | 'number'
  | 'kind'
  | 'status'
  | 'phases'
  | 'cancel_requested_at'
  | 'cancel_reason'
  | 'commit'
  | 'release_id'
  | 'release_number'
  | 'port'
  | 'route_id'
  | 'failure'
  | 'verification'
  | 'deadline_at'
  | 'requested_at'
  | 'finished_at'
  | 'requested_by'
>;

const SKIPPED_BY_ROLLBACK: readonly DeploymentPhase[] = ['fetched', 'built'];

/**
 * The timeline: reached phases are `done` (with the time since the phase before), a rollback's fetch and
 * build `skipped`. While it runs, the first phase not reached is `current` (with the deadline) and the
 * rest `pending`; once it ended, the phase it failed towards is `failed` and the rest `skipped`.
 */
export function phaseTimeline(
  row: Pick<ViewRow, 'kind' | 'status' | 'phases' | 'failure' | 'deadline_at'>,
): PhaseView[] {
  const phases = row.phases ?? {};
  const terminal = isTerminalDeploymentStatus(row.status);
  const relevant = (phase: DeploymentPhase) =>
    !(row.kind === 'rollback' && SKIPPED_BY_ROLLBACK.includes(phase));
  const firstUnreached = DEPLOYMENT_PHASES.find((phase) => relevant(phase) && phases[phase] === undefined);
  const failedPhase =
    row.status === 'succeeded' || !terminal
      ? undefined
      : row.failure && relevant(row.failure.phase) && phases[row.failure.phase] === undefined
        ? row.failure.phase
        : firstUnreached;
  let previousAt: number | null = null;
  return DEPLOYMENT_PHASES.map((phase): PhaseView => {
    const at = phases[phase];
    if (!relevant(phase)) return { phase, state: 'skipped', at: null, durationMs: null, deadlineAt: null };
    if (at !== undefined) {
      const time = Date.parse(at);
      const view: PhaseView = {
        phase,
        state: 'done',
        at: iso(at),
        durationMs: previousAt === null ? null : Math.max(0, time - previousAt),
        deadlineAt: null,
      };
      previousAt = time;
      return view;
    }
    if (!terminal) {
      return phase === firstUnreached
        ? { phase, state: 'current', at: null, durationMs: null, deadlineAt: isoOrNull(row.deadline_at) }
        : { phase, state: 'pending', at: null, durationMs: null, deadlineAt: null };
    }
    return {
      phase,
      state: phase === failedPhase ? 'failed' : 'skipped',
      at: null,
      durationMs: null,
      deadlineAt: null,
    };
  });
}

/** A `deployments` row as the API answers it. */
export function deploymentViewOfRow(row: ViewRow): DeploymentView {
  return {
    deploymentId: row.deployment_id,
    appName: row.app_name,
    agentId: row.agent_id,
    number: row.number,
    kind: row.kind,
    status: row.status,
    phases: phaseTimeline(row),
    cancelRequested:
      row.cancel_requested_at === null
        ? null
        : { at: iso(row.cancel_requested_at), reason: row.cancel_reason ?? '' },
    commit: row.commit,
    release:
      row.release_id === null || row.release_number === null
        ? null
        : { releaseId: row.release_id, number: row.release_number },
    port: row.port,
    routeId: row.route_id,
    failure: row.failure,
    verification: row.verification,
    deadlineAt: isoOrNull(row.deadline_at),
    requestedAt: iso(row.requested_at),
    finishedAt: isoOrNull(row.finished_at),
    requestedBy: row.requested_by,
  };
}

/** One deployment of a `deployments` table (the live one, or a time-travel view's), or undefined. */
export async function deploymentById(
  db: Queryable,
  deploymentId: string,
  schema = 'public',
): Promise<DeploymentView | undefined> {
  checkedSchema(schema);
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${VIEW_COLUMNS} FROM "${schema}".deployments WHERE deployment_id = $1`,
    [deploymentId],
  );
  return rows[0] ? deploymentViewOfRow(rows[0]) : undefined;
}

export interface DeploymentFilters {
  /** One status or several; none: every deployment. */
  status?: DeploymentStatus | readonly DeploymentStatus[];
  limit?: number;
  offset?: number;
}

/**
 * An app's deployments, newest first: by number, those not accepted yet (no number) before the rest,
 * then by request time. With the total that matches.
 */
export async function deploymentsOfApp(
  db: Queryable,
  appName: string,
  filters: DeploymentFilters = {},
  schema = 'public',
): Promise<{ deployments: DeploymentView[]; total: number }> {
  checkedSchema(schema);
  const statuses =
    filters.status === undefined
      ? null
      : typeof filters.status === 'string'
        ? [filters.status]
        : filters.status;
  const where = 'WHERE app_name = $1 AND ($2::text[] IS NULL OR status = ANY($2::text[]))';
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${VIEW_COLUMNS} FROM "${schema}".deployments ${where}
      ORDER BY number DESC NULLS FIRST, requested_at DESC, deployment_id LIMIT $3 OFFSET $4`,
    [appName, statuses, filters.limit ?? 100, filters.offset ?? 0],
  );
  const [count] = await rowsOf<{ total: number }>(
    db,
    `SELECT count(*)::int AS total FROM "${schema}".deployments ${where}`,
    [appName, statuses],
  );
  return { deployments: rows.map(deploymentViewOfRow), total: count?.total ?? 0 };
}

/** What the supervisor needs of a deployment that has not ended, to pick what to fold again. */
export interface RunningDeployment {
  deploymentId: string;
  appName: string;
  agentId: string;
  status: DeploymentStatus;
  deadlineAt: string | null;
  lastSequence: number;
}

const TERMINAL_LIST = TERMINAL_DEPLOYMENT_STATUSES.map((status) => `'${status}'`).join(', ');

/**
 * The live deployments that have not ended (of one agent, or every agent's), soonest deadline first, then
 * those without one (queued). The predicate is the partial index's.
 */
export async function nonTerminalDeployments(
  db: Queryable,
  options: { agentId?: string; limit?: number } = {},
): Promise<RunningDeployment[]> {
  const rows = await rowsOf<{
    deployment_id: string;
    app_name: string;
    agent_id: string;
    status: DeploymentStatus;
    deadline_at: Date | string | null;
    last_sequence: string | number;
  }>(
    db,
    `SELECT deployment_id, app_name, agent_id, status, deadline_at, last_sequence FROM deployments
      WHERE status NOT IN (${TERMINAL_LIST}) AND ($1::text IS NULL OR agent_id = $1)
      ORDER BY deadline_at NULLS LAST, deployment_id LIMIT $2`,
    [options.agentId ?? null, options.limit ?? 1000],
  );
  return rows.map((row) => ({
    deploymentId: row.deployment_id,
    appName: row.app_name,
    agentId: row.agent_id,
    status: row.status,
    deadlineAt: isoOrNull(row.deadline_at),
    lastSequence: Number(row.last_sequence),
  }));
}
