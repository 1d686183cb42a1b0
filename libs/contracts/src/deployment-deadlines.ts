import type { DeploymentKind } from './events/app.js';
import { DEPLOYMENT_PHASES, type DeploymentPhase, type PhaseLimits } from './events/deployment.js';

/**
 * A deployment's statuses and the deadline of each, as pure functions of what the log holds: the
 * deployments service's supervisor enforces them, the `deployments` projection stores them for the
 * supervisor's scan and the UI. One definition, so the two never disagree.
 */

/** The status is the last phase reached, `reverting` after a failed verification, or how it ended. */
export const TERMINAL_DEPLOYMENT_STATUSES = ['succeeded', 'failed', 'cancelled', 'abandoned'] as const;
export type TerminalDeploymentStatus = (typeof TERMINAL_DEPLOYMENT_STATUSES)[number];
export const DEPLOYMENT_STATUSES = [
  ...DEPLOYMENT_PHASES,
  'reverting',
  ...TERMINAL_DEPLOYMENT_STATUSES,
] as const;
export type DeploymentStatus = DeploymentPhase | 'reverting' | TerminalDeploymentStatus;

export function isTerminalDeploymentStatus(status: string): status is TerminalDeploymentStatus {
  return (TERMINAL_DEPLOYMENT_STATUSES as readonly string[]).includes(status);
}

/** Traffic is on the verified new release: only success can follow. */
export const isVerifiedDeploymentStatus = (status: string) => status === 'verified' || status === 'drained';

/** Which limit a deadline enforces (what the front appends when it passes follows from it). */
export type DeadlineKind =
  'cancel' | 'claim' | 'fetch' | 'build' | 'start' | 'health' | 'switch' | 'verify' | 'revert' | 'drain';

export interface DeploymentDeadline {
  /** Epoch milliseconds: when the current status must have moved on (limit + slack after it began). */
  at: number;
  kind: DeadlineKind;
  /** The limit, in seconds, without the slack: what a message names. */
  limitSeconds: number;
}

export interface DeadlineInput {
  status: DeploymentStatus;
  kind: DeploymentKind;
  /** When the current status was entered (ISO). */
  enteredAt: string;
  /** The limits snapshotted in DeploymentRequested. */
  limits: PhaseLimits;
  /** When a cancel was requested (ISO), or null. */
  cancelRequestedAt: string | null;
  /**
   * `requested` only: when the deployment became its app's active one (ISO), or null while it is queued
   * behind another one (a queued deployment has no deadline of its own: the active one's bound it).
   */
  activeSince: string | null;
}

const LIMIT_OF: Record<string, { kind: DeadlineKind; limit: keyof PhaseLimits }> = {
  fetched: { kind: 'build', limit: 'build' },
  built: { kind: 'start', limit: 'start' },
  started: { kind: 'health', limit: 'health' },
  healthy: { kind: 'switch', limit: 'switch' },
  switched: { kind: 'verify', limit: 'verify' },
  reverting: { kind: 'revert', limit: 'switch' },
  verified: { kind: 'drain', limit: 'drain' },
  drained: { kind: 'drain', limit: 'drain' },
};

/** The deadline of a deployment's current status, or null when none runs (terminal, or queued). */
export function deploymentDeadline(input: DeadlineInput): DeploymentDeadline | null {
  const { status, limits } = input;
  if (isTerminalDeploymentStatus(status)) return null;
  const slack = limits.slack * 1000;
  const deadline = (from: number, kind: DeadlineKind, limit: keyof PhaseLimits): DeploymentDeadline => ({
    at: from + limits[limit] * 1000 + slack,
    kind,
    limitSeconds: limits[limit],
  });
  if (input.cancelRequestedAt !== null && !isVerifiedDeploymentStatus(status) && status !== 'requested') {
    return deadline(Date.parse(input.cancelRequestedAt), 'cancel', 'cancel');
  }
  const since = Date.parse(input.enteredAt);
  if (status === 'requested') {
    if (input.activeSince === null) return null;
    return deadline(Math.max(Date.parse(input.activeSince), since), 'claim', 'claim');
  }
  if (status === 'claimed') {
    return input.kind === 'rollback' ? deadline(since, 'start', 'start') : deadline(since, 'fetch', 'fetch');
  }
  const entry = LIMIT_OF[status];
  return entry ? deadline(since, entry.kind, entry.limit) : null;
}
