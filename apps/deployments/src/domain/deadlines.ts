import { deploymentDeadline, type NewEvent } from '#contracts';
import type { LiveApp } from './app.js';
import {
  abandoned,
  isTerminal,
  isVerified,
  nextPhase,
  succeeded,
  type DeploymentState,
  type LiveDeployment,
} from './deployment.js';

/**
 * Nothing stays in progress forever: every status has a deadline, computed from the log alone (the limits
 * are snapshotted in DeploymentRequested). The agent keeps its own, shorter, limits; these are the
 * front's backstop, each with `slack` added. The lease runs on its own clock.
 */

/** A claim's lease as the KV bucket holds it; null when there is none (never written, or expired away). */
export interface LeaseRecord {
  leaseId: string;
  expiresAt: string;
}

export interface Deadline {
  /** When the current status must have moved on. */
  at: number;
  /** What the front appends when it has not. */
  events: () => NewEvent[];
}

/** What the front says when a limit passed, by the limit. */
const FAILURE_REASON: Record<string, (state: LiveDeployment, seconds: number) => string> = {
  claim: (state, s) =>
    `agent ${state.agentId} did not claim it in ${s} s (offline, or busy building another app)`,
  fetch: (_, s) => `the source was not fetched in ${s} s`,
  build: (_, s) => `the build did not finish in ${s} s`,
  start: (_, s) => `the release did not start in ${s} s`,
  health: (_, s) => `the health check did not pass in ${s} s`,
  switch: (_, s) => `the route did not switch in ${s} s`,
  revert: (_, s) => `the agent did not put the traffic back in ${s} s`,
};

/**
 * The deadline of the deployment's current status (one definition with the projection's:
 * `deploymentDeadline` in #contracts), with what the front appends when it passes; null when none runs.
 */
export function currentDeadline(state: LiveDeployment, app: LiveApp | null): Deadline | null {
  const deadline = deploymentDeadline({
    status: state.status,
    kind: state.kind,
    enteredAt: state.enteredAt,
    limits: state.limits,
    cancelRequestedAt: state.cancelRequested?.at ?? null,
    activeSince:
      app !== null && app.active === state.deploymentId ? (app.activeSince ?? state.requestedAt) : null,
  });
  if (deadline === null) return null;
  const id = state.deploymentId;
  const events = (): NewEvent[] => {
    switch (deadline.kind) {
      case 'cancel':
        return [
          {
            type: 'DeploymentCancelled',
            data: {
              deploymentId: id,
              phase: nextPhase(state),
              reason: 'requested',
              supersededBy: null,
              reverted: false,
            },
          },
        ];
      case 'verify':
        return [
          {
            type: 'DeploymentVerificationFailed',
            data: {
              deploymentId: id,
              reason: `the front did not verify the release in ${deadline.limitSeconds} s`,
              fronts: [],
            },
          },
        ];
      case 'drain':
        return [succeeded(state, false, app)];
      default:
        return [
          {
            type: 'DeploymentFailed',
            data: {
              deploymentId: id,
              phase: nextPhase(state),
              reason: FAILURE_REASON[deadline.kind]!(state, deadline.limitSeconds),
              exitCode: null,
              signal: null,
              lastLines: [],
              reverted: false,
            },
          },
        ];
    }
  };
  return { at: deadline.at, events };
}

/**
 * What the front appends now for a deployment whose time ran out, or [] when none did. A lease that cannot
 * be read is not evidence: the caller skips the tick instead of calling this.
 */
export function overdue(
  state: DeploymentState,
  app: LiveApp | null,
  lease: LeaseRecord | null,
  now: number,
): NewEvent[] {
  if (state.status === 'absent' || isTerminal(state.status)) return [];
  if (state.lease !== null && leaseExpired(state, lease, now)) {
    return isVerified(state)
      ? [succeeded(state, false, app)]
      : [abandoned(state, 'lease-expired', lastRenewal(state.lease, lease))];
  }
  const deadline = currentDeadline(state, app);
  return deadline !== null && now > deadline.at ? deadline.events() : [];
}

/** When the lease was last written (claim or renewal): its record's expiry less one lease; null without one. */
function lastRenewal(claimed: { leaseId: string; ttlMs: number }, lease: LeaseRecord | null): string | null {
  if (lease === null || lease.leaseId !== claimed.leaseId) return null;
  return new Date(Date.parse(lease.expiresAt) - claimed.ttlMs).toISOString();
}

/**
 * A lease is expired when its record says so, or when there is no record of this lease although the claim
 * is older than one lease: the record may lag the claim by one write, never by a whole lease.
 */
export function leaseExpired(state: LiveDeployment, lease: LeaseRecord | null, now: number): boolean {
  if (state.lease === null) return false;
  if (lease !== null && lease.leaseId === state.lease.leaseId) return now > Date.parse(lease.expiresAt);
  return now > Date.parse(state.lease.claimedAt) + state.lease.ttlMs;
}
