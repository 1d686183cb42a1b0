import type { NewEvent } from '#contracts';
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

const seconds = (value: number) => value * 1000;

/** The deadline of the deployment's current status, or null when none runs (terminal). */
export function currentDeadline(state: LiveDeployment, app: LiveApp | null): Deadline | null {
  if (isTerminal(state.status)) return null;
  const limits = state.limits;
  const slack = seconds(limits.slack);
  if (state.cancelRequested && !isVerified(state) && state.status !== 'requested') {
    return {
      at: Date.parse(state.cancelRequested.at) + seconds(limits.cancel) + slack,
      events: () => [
        {
          type: 'DeploymentCancelled',
          data: {
            deploymentId: state.deploymentId,
            phase: nextPhase(state),
            reason: 'requested',
            supersededBy: null,
            reverted: false,
          },
        },
      ],
    };
  }
  const since = Date.parse(state.enteredAt);
  const fail =
    (reason: string, reverted = false) =>
    (): NewEvent[] => [
      {
        type: 'DeploymentFailed',
        data: {
          deploymentId: state.deploymentId,
          phase: nextPhase(state),
          reason,
          exitCode: null,
          signal: null,
          lastLines: [],
          reverted,
        },
      },
    ];
  switch (state.status) {
    case 'requested': {
      // A queued deployment waits without a deadline of its own: the active one's bound it.
      if (app === null || app.active !== state.deploymentId) return null;
      const activeSince = Date.parse(app.activeSince ?? state.requestedAt);
      return {
        at: Math.max(activeSince, since) + seconds(limits.claim) + slack,
        events: fail(
          `agent ${state.agentId} did not claim it in ${limits.claim} s (offline, or busy building another app)`,
        ),
      };
    }
    case 'claimed':
      return state.kind === 'rollback'
        ? {
            at: since + seconds(limits.start) + slack,
            events: fail(`the release did not start in ${limits.start} s`),
          }
        : {
            at: since + seconds(limits.fetch) + slack,
            events: fail(`the source was not fetched in ${limits.fetch} s`),
          };
    case 'fetched':
      return {
        at: since + seconds(limits.build) + slack,
        events: fail(`the build did not finish in ${limits.build} s`),
      };
    case 'built':
      return {
        at: since + seconds(limits.start) + slack,
        events: fail(`the release did not start in ${limits.start} s`),
      };
    case 'started':
      return {
        at: since + seconds(limits.health) + slack,
        events: fail(`the health check did not pass in ${limits.health} s`),
      };
    case 'healthy':
      return {
        at: since + seconds(limits.switch) + slack,
        events: fail(`the route did not switch in ${limits.switch} s`),
      };
    case 'switched':
      return {
        at: since + seconds(limits.verify) + slack,
        events: () => [
          {
            type: 'DeploymentVerificationFailed',
            data: {
              deploymentId: state.deploymentId,
              reason: `the front did not verify the release in ${limits.verify} s`,
              fronts: [],
            },
          },
        ],
      };
    case 'reverting':
      return {
        at: since + seconds(limits.switch) + slack,
        events: fail(`the agent did not put the traffic back in ${limits.switch} s`),
      };
    case 'verified':
    case 'drained':
      return { at: since + seconds(limits.drain) + slack, events: () => [succeeded(state, false, app)] };
    default:
      return null;
  }
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
