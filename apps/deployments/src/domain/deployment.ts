import {
  DomainError,
  isTerminalDeploymentStatus,
  type DeploymentStatus,
  type TerminalDeploymentStatus,
  type AppConfig,
  type DeploymentKind,
  type DeploymentPhase,
  type DomainEvent,
  type EventData,
  type NewEvent,
  type PhaseLimits,
  type PhaseReport,
  type StoredEvent,
} from '#contracts';
import { keptAfter, knownRelease, type CurrentRelease, type LiveApp } from './app.js';

/**
 * The deployment aggregate (`events.deployment.<id>`): a state machine whose every step is an event.
 * Only the next phase is legal; after `verified` only success can follow (traffic is on a release that
 * passed the health gate and the front's probe).
 */

type TerminalStatus = TerminalDeploymentStatus;

export interface LiveDeployment {
  status: DeploymentStatus;
  deploymentId: string;
  appName: string;
  agentId: string;
  kind: DeploymentKind;
  ref: string | null;
  upload: EventData<'DeploymentRequested'>['upload'];
  targetRelease: { releaseId: string; number: number } | null;
  previous: CurrentRelease | null;
  config: AppConfig;
  routeId: string | null;
  limits: PhaseLimits;
  requestedAt: string;
  requestedBy: { kind: string; id: string };
  /** When each phase was reached. */
  phases: Partial<Record<DeploymentPhase, string>>;
  /** When the current status was entered: the start of its deadline. */
  enteredAt: string;
  lease: { leaseId: string; ttlMs: number; claimedAt: string } | null;
  cancelRequested: { at: string; reason: string } | null;
  commit: string | null;
  release: { releaseId: string; number: number; builtAt: string | null } | null;
  port: number | null;
  routeRevision: number | null;
  verification: 'pending' | 'passed' | 'failed' | null;
  /** The data of each reported phase, to tell a retried report from a contradicting one. */
  reported: Partial<Record<string, string>>;
  finishedAt: string | null;
  failure: {
    phase: DeploymentPhase;
    reason: string;
    exitCode: number | null;
    signal: string | null;
    lastLines: string[];
  } | null;
  reverted: boolean;
  drained: boolean | null;
}
export type DeploymentState = { status: 'absent' } | LiveDeployment;

export const initialDeploymentState: DeploymentState = { status: 'absent' };

export function isTerminal(status: DeploymentState['status']): status is TerminalStatus {
  return isTerminalDeploymentStatus(status);
}

function enter(state: LiveDeployment, status: DeploymentStatus, at: string): LiveDeployment {
  const phases = (DEPLOYMENT_ORDER as readonly string[]).includes(status)
    ? { ...state.phases, [status]: at }
    : state.phases;
  return { ...state, status, enteredAt: at, phases };
}

const DEPLOYMENT_ORDER = [
  'requested',
  'claimed',
  'fetched',
  'built',
  'started',
  'healthy',
  'switched',
  'verified',
  'drained',
] as const satisfies readonly DeploymentPhase[];

export function evolveDeployment(state: DeploymentState, event: DomainEvent): DeploymentState {
  if (event.type === 'DeploymentRequested') {
    if (state.status !== 'absent') return state;
    const data = event.data;
    return {
      status: 'requested',
      deploymentId: data.deploymentId,
      appName: data.appName,
      agentId: data.agentId,
      kind: data.kind,
      ref: data.ref,
      upload: data.upload,
      targetRelease: data.targetRelease,
      previous: data.previous,
      config: data.config,
      routeId: data.routeId,
      limits: data.limits,
      requestedAt: event.occurredAt,
      requestedBy: { kind: event.actor.kind, id: event.actor.id },
      phases: { requested: event.occurredAt },
      enteredAt: event.occurredAt,
      lease: null,
      cancelRequested: null,
      commit: null,
      release: data.targetRelease ? { ...data.targetRelease, builtAt: null } : null,
      port: null,
      routeRevision: null,
      verification: null,
      reported: {},
      finishedAt: null,
      failure: null,
      reverted: false,
      drained: null,
    };
  }
  if (state.status === 'absent') return state;
  const at = event.occurredAt;
  switch (event.type) {
    case 'DeploymentClaimed':
      return {
        ...enter(state, 'claimed', at),
        lease: { leaseId: event.data.leaseId, ttlMs: event.data.leaseTtlMs, claimedAt: at },
      };
    case 'DeploymentFetched':
      return { ...enter(state, 'fetched', at), commit: event.data.commit, reported: reported(state, event) };
    case 'DeploymentBuilt':
      return {
        ...enter(state, 'built', at),
        release: { ...event.data.release, builtAt: at },
        reported: reported(state, event),
      };
    case 'DeploymentStarted':
      return { ...enter(state, 'started', at), port: event.data.port, reported: reported(state, event) };
    case 'DeploymentHealthy':
      return { ...enter(state, 'healthy', at), reported: reported(state, event) };
    case 'DeploymentSwitched':
      return {
        ...enter(state, 'switched', at),
        routeId: event.data.routeId,
        routeRevision: event.data.routeRevision,
        verification: 'pending',
        reported: reported(state, event),
      };
    case 'DeploymentVerified':
      return { ...enter(state, 'verified', at), verification: 'passed' };
    case 'DeploymentVerificationFailed':
      return {
        ...enter(state, 'reverting', at),
        verification: 'failed',
        failure: {
          phase: 'verified',
          reason: event.data.reason,
          exitCode: null,
          signal: null,
          lastLines: [],
        },
      };
    case 'DeploymentCancelRequested':
      return { ...state, cancelRequested: { at, reason: event.data.reason } };
    case 'DeploymentDrained':
      return { ...enter(state, 'drained', at), reported: reported(state, event) };
    case 'DeploymentSucceeded':
      return { ...state, status: 'succeeded', enteredAt: at, finishedAt: at, drained: event.data.drained };
    case 'DeploymentFailed':
      return {
        ...state,
        status: 'failed',
        enteredAt: at,
        finishedAt: at,
        reverted: event.data.reverted,
        failure: {
          phase: event.data.phase,
          reason: event.data.reason,
          exitCode: event.data.exitCode,
          signal: event.data.signal,
          lastLines: event.data.lastLines,
        },
      };
    case 'DeploymentCancelled':
      return { ...state, status: 'cancelled', enteredAt: at, finishedAt: at, reverted: event.data.reverted };
    case 'DeploymentAbandoned':
      return { ...state, status: 'abandoned', enteredAt: at, finishedAt: at };
    default:
      return state;
  }
}

function reported(state: LiveDeployment, event: DomainEvent): LiveDeployment['reported'] {
  const { deploymentId: _id, ...data } = event.data as { deploymentId: string };
  return { ...state.reported, [event.type]: JSON.stringify(data) };
}

export function foldDeployment(events: readonly StoredEvent[]): DeploymentState {
  return (events as DomainEvent[]).reduce(evolveDeployment, initialDeploymentState);
}

/** The phase a deployment works towards from its status: what fails if it fails now. */
export function nextPhase(state: LiveDeployment): DeploymentPhase {
  switch (state.status) {
    case 'requested':
      return 'claimed';
    case 'claimed':
      return state.kind === 'rollback' ? 'started' : 'fetched';
    case 'fetched':
      return 'built';
    case 'built':
      return 'started';
    case 'started':
      return 'healthy';
    case 'healthy':
      return 'switched';
    case 'switched':
    case 'reverting':
      return 'verified';
    default:
      return 'drained';
  }
}

/** Whether the deployment has passed the point of no return: traffic is on the verified new release. */
export const isVerified = (state: LiveDeployment) =>
  state.status === 'verified' || state.status === 'drained';

/**
 * The target the release being replaced was served at, while the deployment drains it: the switched
 * route's address with the previous release's port (the agent serves its releases on one address).
 * Null before the verification, or when no other release is being replaced.
 */
export function drainTarget(state: LiveDeployment): { address: string; port: number } | null {
  if (state.status !== 'verified' || !state.previous || state.previous.releaseId === state.release?.releaseId)
    return null;
  const switched = state.reported.DeploymentSwitched;
  if (!switched) return null;
  const { target } = JSON.parse(switched) as { target?: { host?: unknown } };
  if (typeof target?.host !== 'string') return null;
  return { address: target.host, port: state.previous.port };
}

/** Who may act on a claimed deployment: its agent, with the lease it holds. The same answer if unknown. */
export function checkLeaseHolder(
  state: DeploymentState,
  agentId: string,
  deploymentId: string,
  leaseId: string,
): asserts state is LiveDeployment {
  checkOwnAgent(state, agentId, deploymentId);
  if (isTerminal(state.status)) {
    throw new DomainError('conflict', `lease lost: deployment ${deploymentId} is ${state.status}`, 'leaseId');
  }
  if (state.lease?.leaseId !== leaseId) {
    throw new DomainError(
      'conflict',
      `lease lost: deployment ${deploymentId} is held by another lease`,
      'leaseId',
    );
  }
}

export function checkOwnAgent(
  state: DeploymentState,
  agentId: string,
  deploymentId: string,
): asserts state is LiveDeployment {
  if (state.status === 'absent' || state.agentId !== agentId) {
    throw new DomainError('forbidden', `agent ${agentId} has no deployment ${deploymentId}`, 'deploymentId');
  }
}

export interface Claim {
  agentId: string;
  leaseId: string;
  agentVersion: string;
  leaseTtlMs: number;
  /** The app's active deployment: only that one may be claimed. */
  active: boolean;
}

export function decideClaim(state: DeploymentState, deploymentId: string, claim: Claim): NewEvent[] {
  checkOwnAgent(state, claim.agentId, deploymentId);
  if (state.lease !== null && state.lease.leaseId === claim.leaseId && !isTerminal(state.status)) return [];
  if (state.status !== 'requested') {
    throw new DomainError(
      'conflict',
      `deployment ${deploymentId} is ${state.status}, not waiting`,
      'deploymentId',
    );
  }
  if (state.cancelRequested) {
    throw new DomainError('conflict', `deployment ${deploymentId} is being cancelled`, 'deploymentId');
  }
  if (!claim.active) {
    throw new DomainError(
      'conflict',
      `deployment ${deploymentId} waits behind another one of its app`,
      'deploymentId',
    );
  }
  return [
    {
      type: 'DeploymentClaimed',
      data: {
        deploymentId,
        leaseId: claim.leaseId,
        agentVersion: claim.agentVersion,
        leaseTtlMs: claim.leaseTtlMs,
      },
    },
  ];
}

/** The statuses from which each report is the next step. */
const REPORT_FROM: Record<string, (state: LiveDeployment) => boolean> = {
  fetched: (s) => s.status === 'claimed' && s.kind === 'deploy',
  built: (s) => s.status === 'fetched',
  started: (s) => s.status === 'built' || (s.status === 'claimed' && s.kind === 'rollback'),
  healthy: (s) => s.status === 'started',
  switched: (s) => s.status === 'healthy',
  drained: (s) => s.status === 'verified',
};

const REPORT_EVENT = {
  fetched: 'DeploymentFetched',
  built: 'DeploymentBuilt',
  started: 'DeploymentStarted',
  healthy: 'DeploymentHealthy',
  switched: 'DeploymentSwitched',
  drained: 'DeploymentDrained',
} as const;

/**
 * A phase report from the deployment's agent. A report repeating the last one appends nothing; one that
 * contradicts it, or skips a phase, is refused.
 */
export function decideReport(
  state: DeploymentState,
  deploymentId: string,
  agentId: string,
  leaseId: string,
  report: PhaseReport,
  /** The deployment's app, for the releases kept after a success. */
  app: LiveApp | null,
): NewEvent[] {
  checkOwnAgent(state, agentId, deploymentId);
  if (report.phase === 'released') return decideReleased(state, deploymentId, leaseId, app);
  // A retry of a recorded report answers ok even once the deployment ended (drained ends it in one append).
  if (state.lease?.leaseId === leaseId && isRepeat(state, report)) return [];
  checkLeaseHolder(state, agentId, deploymentId, leaseId);
  switch (report.phase) {
    case 'fetched':
    case 'built':
    case 'started':
    case 'healthy':
    case 'switched':
    case 'drained': {
      const { phase, ...data } = report;
      const type = REPORT_EVENT[phase];
      const previous = state.reported[type];
      if (previous !== undefined) {
        if (previous === JSON.stringify(data)) return [];
        throw new DomainError('conflict', `${phase} was reported already with other data`, 'report');
      }
      if (!REPORT_FROM[phase]!(state)) {
        throw new DomainError(
          'conflict',
          `cannot report ${phase} while the deployment is ${state.status}; next: ${nextPhase(state)}`,
          'report.phase',
        );
      }
      checkReportFacts(state, report, app);
      if (report.phase === 'drained') {
        return [{ type, data: { deploymentId, ...data } } as NewEvent, succeeded(state, true, app)];
      }
      return [{ type, data: { deploymentId, ...data } } as NewEvent];
    }
    case 'reverted':
      if (state.status !== 'reverting' && !(state.status === 'switched' && state.cancelRequested)) {
        throw new DomainError('conflict', `nothing to revert while ${state.status}`, 'report.phase');
      }
      if (state.status === 'reverting') {
        return [
          {
            type: 'DeploymentFailed',
            data: {
              deploymentId,
              phase: 'verified',
              reason: state.failure?.reason ?? 'the front could not verify the new release',
              exitCode: null,
              signal: null,
              lastLines: [],
              reverted: true,
            },
          },
        ];
      }
      return [cancelled(state, true)];
    case 'failed':
      if (isVerified(state)) {
        throw new DomainError(
          'conflict',
          'traffic is on the verified new release; it can only succeed',
          'report.phase',
        );
      }
      return [
        {
          type: 'DeploymentFailed',
          data: {
            deploymentId,
            phase: report.failedPhase,
            reason: report.reason,
            exitCode: report.exitCode,
            signal: report.signal,
            lastLines: report.lastLines,
            reverted: report.reverted,
          },
        },
      ];
    case 'cancelled':
      if (!state.cancelRequested) {
        throw new DomainError('conflict', 'no cancel was requested', 'report.phase');
      }
      if (isVerified(state)) {
        throw new DomainError(
          'conflict',
          'traffic is on the verified new release; it can only succeed',
          'report.phase',
        );
      }
      return [cancelled(state, report.reverted)];
  }
}

function isRepeat(state: LiveDeployment, report: PhaseReport): boolean {
  if (!(report.phase in REPORT_EVENT)) return false;
  const { phase, ...data } = report;
  return state.reported[REPORT_EVENT[phase as keyof typeof REPORT_EVENT]] === JSON.stringify(data);
}

function checkReportFacts(state: LiveDeployment, report: PhaseReport, app: LiveApp | null): void {
  switch (report.phase) {
    case 'built':
      if (report.release.releaseId !== state.deploymentId) {
        throw new DomainError(
          'invalid',
          'a release is named by the deployment that built it',
          'report.release.releaseId',
        );
      }
      if (app !== null && app.accepted[state.deploymentId] !== report.release.number) {
        throw new DomainError(
          'invalid',
          `this deployment's release is number ${app.accepted[state.deploymentId]}`,
          'report.release.number',
        );
      }
      break;
    case 'started':
    case 'healthy': {
      const expected = state.kind === 'rollback' ? state.targetRelease?.releaseId : state.release?.releaseId;
      if (report.releaseId !== expected) {
        throw new DomainError('invalid', `this deployment starts release ${expected}`, 'report.releaseId');
      }
      break;
    }
    case 'switched':
      if (state.routeId !== null && report.routeId !== state.routeId) {
        throw new DomainError('invalid', `the app's route is ${state.routeId}`, 'report.routeId');
      }
      if (report.target.port !== state.port) {
        throw new DomainError('invalid', `the release listens on ${state.port}`, 'report.target.port');
      }
      break;
    default:
      break;
  }
}

function decideReleased(
  state: LiveDeployment,
  deploymentId: string,
  leaseId: string,
  app: LiveApp | null,
): NewEvent[] {
  if (isTerminal(state.status)) return [];
  if (state.lease?.leaseId !== leaseId) {
    throw new DomainError(
      'conflict',
      `lease lost: deployment ${deploymentId} is held by another lease`,
      'leaseId',
    );
  }
  if (isVerified(state)) return [succeeded(state, false, app)];
  return [abandoned(state, 'agent-restarted', null)];
}

export function succeeded(state: LiveDeployment, drained: boolean, app: LiveApp | null): NewEvent {
  const release = app ? knownRelease(app, servingRelease(state)) : servingRelease(state);
  return {
    type: 'DeploymentSucceeded',
    data: {
      deploymentId: state.deploymentId,
      release: {
        releaseId: release.releaseId,
        number: release.number,
        port: release.port,
        commit: release.commit,
      },
      drained,
      keptReleases: app ? keptAfter(app, release) : [],
    },
  };
}

/** The release a deployment put into service. */
export function servingRelease(state: LiveDeployment): CurrentRelease & { builtAt: string } {
  if (!state.release || state.port === null)
    throw new Error(`deployment ${state.deploymentId} has no started release`);
  return {
    releaseId: state.release.releaseId,
    number: state.release.number,
    port: state.port,
    commit: state.commit,
    builtAt: state.release.builtAt ?? state.requestedAt,
  };
}

export function cancelled(state: LiveDeployment, reverted: boolean): NewEvent {
  return {
    type: 'DeploymentCancelled',
    data: {
      deploymentId: state.deploymentId,
      phase: nextPhase(state),
      reason: 'requested',
      supersededBy: null,
      reverted,
    },
  };
}

export function abandoned(
  state: LiveDeployment,
  reason: 'lease-expired' | 'agent-restarted' | 'agent-deregistered',
  lastRenewalAt: string | null,
): NewEvent {
  return {
    type: 'DeploymentAbandoned',
    data: { deploymentId: state.deploymentId, phase: nextPhase(state), reason, lastRenewalAt },
  };
}

/**
 * Cancel: before the agent claimed it, at once; while it runs, a request the agent acts on at its next
 * step; once traffic is on the verified new release, refused (roll back instead).
 */
export function decideCancel(state: DeploymentState, deploymentId: string, reason: string): NewEvent[] {
  if (state.status === 'absent')
    throw new DomainError('not_found', `no deployment ${deploymentId}`, 'deploymentId');
  if (isTerminal(state.status)) {
    throw new DomainError(
      'conflict',
      `deployment ${deploymentId} is ${state.status} already`,
      'deploymentId',
    );
  }
  if (isVerified(state)) {
    throw new DomainError('conflict', 'traffic is on the new release; roll back instead', 'deploymentId');
  }
  if (state.status === 'reverting') {
    throw new DomainError('conflict', 'the deployment is already putting the traffic back', 'deploymentId');
  }
  if (state.status === 'requested') return [cancelled(state, false)];
  if (state.cancelRequested) return [];
  return [{ type: 'DeploymentCancelRequested', data: { deploymentId, reason } }];
}

/** A newer request replaced this queued one before it ran. */
export function decideSuperseded(state: DeploymentState, supersededBy: string): NewEvent[] {
  if (state.status !== 'requested') return [];
  return [
    {
      type: 'DeploymentCancelled',
      data: {
        deploymentId: state.deploymentId,
        phase: 'claimed',
        reason: 'superseded',
        supersededBy,
        reverted: false,
      },
    },
  ];
}

export type FrontProbe = EventData<'DeploymentVerified'>['fronts'][number];

/** The front's verification through HAProxy; only for a deployment that switched. */
export function decideVerification(
  state: DeploymentState,
  result:
    | { passed: true; fronts: FrontProbe[]; skipped: string | null }
    | { passed: false; fronts: FrontProbe[]; reason: string },
): NewEvent[] {
  if (state.status !== 'switched') return [];
  return result.passed
    ? [
        {
          type: 'DeploymentVerified',
          data: { deploymentId: state.deploymentId, fronts: result.fronts, skipped: result.skipped },
        },
      ]
    : [
        {
          type: 'DeploymentVerificationFailed',
          data: { deploymentId: state.deploymentId, reason: result.reason, fronts: result.fronts },
        },
      ];
}

/** The agent was deregistered: what it held can never finish. */
export function decideAgentGone(state: DeploymentState, app: LiveApp | null): NewEvent[] {
  if (state.status === 'absent' || isTerminal(state.status)) return [];
  if (isVerified(state)) return [succeeded(state, false, app)];
  return [abandoned(state, 'agent-deregistered', null)];
}
