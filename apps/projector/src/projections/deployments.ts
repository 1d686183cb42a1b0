import {
  DEPLOYMENT_PHASES,
  deploymentDeadline,
  isTerminalDeploymentStatus,
  type DeploymentFailureView,
  type DeploymentPhase,
  type DeploymentStatus,
  type DomainEvent,
  type StoredEvent,
} from '#contracts';
import { deploymentsTable, type DeploymentRow } from '#persistence';
import { RowProjection } from '../engine/row-projection.js';

/**
 * The deployments read model: the deployment aggregate's fold (apps/deployments/src/domain/deployment.ts)
 * as a row, plus two events of its app: DeploymentAccepted gives the number (and, unless queued, the
 * start of the wait for a claim), DeploymentActivated that start for a queued one. DeploymentFinished
 * changes nothing here: its outcome is the deployment's own terminal event. `deadline_at` follows every
 * change (`deploymentDeadline`, the supervisor's rule).
 */
export function evolveDeploymentRow(
  row: DeploymentRow | undefined,
  stored: StoredEvent,
): DeploymentRow | undefined {
  const next = evolveDeployment(row, stored as DomainEvent);
  if (next === undefined || next === row) return next;
  const deadline = deploymentDeadline({
    status: next.status,
    kind: next.kind,
    enteredAt: next.entered_at,
    limits: next.limits,
    cancelRequestedAt: next.cancel_requested_at,
    activeSince: next.activated_at,
  });
  return {
    ...next,
    deadline_at: deadline === null ? null : new Date(deadline.at).toISOString(),
    last_sequence: stored.sequence,
  };
}

function enter(row: DeploymentRow, status: DeploymentStatus, at: string): DeploymentRow {
  const phases = (DEPLOYMENT_PHASES as readonly string[]).includes(status)
    ? { ...row.phases, [status]: at }
    : row.phases;
  return { ...row, status, entered_at: at, phases };
}

function ended(
  row: DeploymentRow,
  status: DeploymentStatus,
  at: string,
  failure: DeploymentFailureView | null,
) {
  return { ...row, status, entered_at: at, finished_at: at, failure };
}

const failureOf = (
  phase: DeploymentPhase,
  reason: string,
  reverted: boolean,
  exit: Pick<DeploymentFailureView, 'exitCode' | 'signal' | 'lastLines'> = {
    exitCode: null,
    signal: null,
    lastLines: [],
  },
): DeploymentFailureView => ({ phase, reason, ...exit, reverted });

function evolveDeployment(row: DeploymentRow | undefined, event: DomainEvent): DeploymentRow | undefined {
  const at = event.occurredAt;
  if (event.type === 'DeploymentRequested') {
    if (row) return row;
    const { data } = event;
    return {
      deployment_id: data.deploymentId,
      app_name: data.appName,
      agent_id: data.agentId,
      number: null,
      kind: data.kind,
      status: 'requested',
      phases: { requested: at },
      activated_at: null,
      cancel_requested_at: null,
      cancel_reason: null,
      commit: null,
      release_id: data.targetRelease?.releaseId ?? null,
      release_number: data.targetRelease?.number ?? null,
      port: null,
      route_id: data.routeId,
      failure: null,
      verification: null,
      limits: data.limits,
      deadline_at: null,
      lease_claimed_at: null,
      entered_at: at,
      requested_at: at,
      finished_at: null,
      requested_by: { kind: event.actor.kind, id: event.actor.id },
      last_sequence: 0,
    };
  }
  // The service appends DeploymentRequested before its app accepts it: a row is always there first.
  if (!row) return row;
  switch (event.type) {
    case 'DeploymentAccepted':
      return {
        ...row,
        number: event.data.number,
        activated_at: event.data.queued ? row.activated_at : (row.activated_at ?? at),
      };
    case 'DeploymentActivated':
      return row.activated_at === null ? { ...row, activated_at: at } : row;
    default:
      break;
  }
  // Nothing follows an end (the deciders append nothing after one): a late event cannot reopen it.
  if (isTerminalDeploymentStatus(row.status)) return row;
  switch (event.type) {
    case 'DeploymentClaimed':
      return { ...enter(row, 'claimed', at), lease_claimed_at: at };
    case 'DeploymentFetched':
      return { ...enter(row, 'fetched', at), commit: event.data.commit };
    case 'DeploymentBuilt':
      return {
        ...enter(row, 'built', at),
        release_id: event.data.release.releaseId,
        release_number: event.data.release.number,
      };
    case 'DeploymentStarted':
      return { ...enter(row, 'started', at), port: event.data.port };
    case 'DeploymentHealthy':
      return enter(row, 'healthy', at);
    case 'DeploymentSwitched':
      return {
        ...enter(row, 'switched', at),
        route_id: event.data.routeId,
        verification: { state: 'pending', fronts: [], reason: null, skipped: null },
      };
    case 'DeploymentVerified':
      return {
        ...enter(row, 'verified', at),
        verification: {
          state: 'passed',
          fronts: event.data.fronts,
          reason: null,
          skipped: event.data.skipped,
        },
      };
    case 'DeploymentVerificationFailed':
      return {
        ...enter(row, 'reverting', at),
        verification: {
          state: 'failed',
          fronts: event.data.fronts,
          reason: event.data.reason,
          skipped: null,
        },
        failure: failureOf('verified', event.data.reason, false),
      };
    case 'DeploymentCancelRequested':
      return { ...row, cancel_requested_at: at, cancel_reason: event.data.reason };
    case 'DeploymentDrained':
      return enter(row, 'drained', at);
    case 'DeploymentSucceeded':
      return {
        ...ended(row, 'succeeded', at, null),
        release_id: event.data.release.releaseId,
        release_number: event.data.release.number,
        port: event.data.release.port,
        commit: row.commit ?? event.data.release.commit,
      };
    case 'DeploymentFailed':
      return ended(
        row,
        'failed',
        at,
        failureOf(event.data.phase, event.data.reason, event.data.reverted, {
          exitCode: event.data.exitCode,
          signal: event.data.signal,
          lastLines: event.data.lastLines,
        }),
      );
    case 'DeploymentCancelled': {
      const reason =
        event.data.reason === 'superseded'
          ? `superseded by deployment ${event.data.supersededBy ?? 'a newer one'}`
          : `cancelled${row.cancel_reason ? `: ${row.cancel_reason}` : ''}`;
      return ended(row, 'cancelled', at, failureOf(event.data.phase, reason, event.data.reverted));
    }
    case 'DeploymentAbandoned': {
      const why = {
        'lease-expired': 'its agent stopped renewing the lease',
        'agent-restarted': 'its agent restarted and gave it up',
        'agent-deregistered': 'its agent was deregistered',
      }[event.data.reason];
      return ended(row, 'abandoned', at, failureOf(event.data.phase, `abandoned: ${why}`, false));
    }
    default:
      return row;
  }
}

/** The deployment an event changes: its own aggregate's, or the one its app accepted or activated. */
function deploymentKeyOf(event: StoredEvent): string | undefined {
  if (event.aggregate.type === 'deployment') return event.aggregate.id;
  if (
    event.aggregate.type === 'app' &&
    (event.type === 'DeploymentAccepted' || event.type === 'DeploymentActivated')
  )
    return (event.data as { deploymentId: string }).deploymentId;
  return undefined;
}

export const deploymentsProjection = new RowProjection<DeploymentRow>({
  name: 'deployments',
  ...deploymentsTable,
  eventTypes: [
    'DeploymentRequested',
    'DeploymentClaimed',
    'DeploymentFetched',
    'DeploymentBuilt',
    'DeploymentStarted',
    'DeploymentHealthy',
    'DeploymentSwitched',
    'DeploymentVerified',
    'DeploymentVerificationFailed',
    'DeploymentCancelRequested',
    'DeploymentDrained',
    'DeploymentSucceeded',
    'DeploymentFailed',
    'DeploymentCancelled',
    'DeploymentAbandoned',
    'DeploymentAccepted',
    'DeploymentActivated',
  ],
  keyOf: deploymentKeyOf,
  evolve: evolveDeploymentRow,
});
