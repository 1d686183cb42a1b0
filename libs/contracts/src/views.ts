import type { DeploymentStatus } from './deployment-deadlines.js';
import type { AppConfig, DeploymentKind } from './events/app.js';
import type { DeploymentPhase } from './events/deployment.js';
import type { PROXY_NODE_STATUSES } from './events/proxy-node.js';
import type { RebuildStatus } from './projector.js';

/**
 * The shapes the API answers with beyond routes and certificates (those are in routing.ts and
 * certificates.ts): the API builds them from its projections, the dashboard imports them (type-only).
 */

export const AGENT_STATUSES = ['enrolled', 'online', 'offline', 'deregistered'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

export interface AgentView {
  agentId: string;
  status: AgentStatus;
  publicAddress: string;
  labels: Record<string, string>;
  enrolledAt: string;
  lastSeenAt: string | null;
  deregisteredAt: string | null;
  /** The runtimes its deployments can use, as its last heartbeat said (absent: not reported). */
  runtimes?: string[];
}

export type ProxyNodeStatus = (typeof PROXY_NODE_STATUSES)[number];

export interface ProxyNodeView {
  node: string;
  /** From the last ProxyNodeStatusChanged (the `proxy_nodes` projection); null if none was projected yet. */
  status: ProxyNodeStatus | null;
  configVersion: number | null;
  detail: string | null;
  changedAt: string | null;
  /** The node's liveness record (KV), or null when it has none. */
  live: {
    status: ProxyNodeStatus;
    lastSyncAt: string;
    lastSuccessAt: string | null;
    /** The configuration version HAProxy runs, as last verified. */
    appliedVersion: number | null;
    /** The HAProxy worker's pid (changes with every reload). */
    workerPid: number | null;
    routes: number;
    failedRoutes: number;
    detail: string | null;
  } | null;
}

/** One entry of the `event_log` index (the event itself is read from the log). */
export interface EventIndexEntry {
  sequence: number;
  eventId: string;
  type: string;
  aggregate: { type: string; id: string };
  actor: { kind: string; id: string };
  occurredAt: string;
  correlationId: string;
  causationId: string | null;
}

export interface EventPage {
  events: EventIndexEntry[];
  next: { before?: number; after?: number } | null;
}

/** Events per type (the `event_stats` projection). */
export interface EventTypeStatsView {
  type: string;
  count: number;
  lastSequence: number;
  lastOccurredAt: string;
}

export interface Overview {
  generatedAt: string;
  agents: { total: number; byStatus: Record<string, number> };
  routes: { total: number; byStatus: Record<string, number>; byKind: Record<string, number> };
  events: {
    total: number;
    lastSequence: number;
    lastOccurredAt: string | null;
    /** Events per minute over the last minutes, oldest first (minutes without events count 0). */
    perMinute: { minute: string; count: number }[];
  };
  projector: { position: number; projections: { name: string; lastSequence: number; updatedAt: string }[] };
  deadLetters: Record<'open' | 'retrying' | 'resolved', number>;
  /** null while the certificates projection is not deployed. */
  certificates: {
    expiringSoon: number;
    expired: number;
    withinDays: number;
    nextExpiry: string | null;
  } | null;
}

export type DeadLetterStatus = 'open' | 'retrying' | 'resolved' | 'dismissed';
export const DEAD_LETTER_STATUSES: readonly DeadLetterStatus[] = [
  'open',
  'retrying',
  'resolved',
  'dismissed',
];

export interface DeadLetterView {
  id: string;
  consumer: string;
  stream: string;
  sequence: number;
  subject: string;
  eventType: string | null;
  eventId: string | null;
  deliveries: number;
  error: string;
  status: DeadLetterStatus;
  payload: string;
  createdAt: string;
  updatedAt: string;
}

/** The dead letters of one message of the log: one bad message is usually a letter per consumer. */
export interface DeadLetterMessage {
  stream: string;
  sequence: number;
  subject: string;
  eventType: string | null;
  eventId: string | null;
  firstAt: string;
  lastAt: string;
  /** How many of its letters are still waiting (open or retrying). */
  waiting: number;
  letters: Pick<DeadLetterView, 'id' | 'consumer' | 'status' | 'deliveries' | 'error' | 'updatedAt'>[];
}

export interface DismissOutcome {
  sequence: number;
  changed: boolean;
  dismissed: { id: string; consumer: string }[];
}

/** The answer of a dead letter's retry: a consumer's letter is retried by it, a projection's by a rebuild. */
export interface RetryOutcome {
  /** `resolved`: the consumer handled it now; `failed`: it failed again; `rebuilding`: a projection is rebuilt. */
  outcome: 'resolved' | 'failed' | 'rebuilding';
  deadLetter: DeadLetterView;
  error?: string;
  rebuild?: RebuildStatus;
}

// ------------------------------------------------------------------ apps and deployments

/** The release an app serves, or one it keeps for a rollback. */
export interface ReleaseView {
  releaseId: string;
  number: number;
  commit: string | null;
}

/** An app (the `apps` projection). Secrets are names and versions: values never leave the secret store. */
export interface AppView {
  appName: string;
  agentId: string;
  hostname: string;
  routeId: string | null;
  config: AppConfig;
  secrets: { name: string; version: number; setAt: string }[];
  /** The release that should serve (the agent converges to it), with the port it listens on. */
  current: (ReleaseView & { port: number }) | null;
  /** Kept for rollback: the serving one first, then newest first. */
  keptReleases: (ReleaseView & { builtAt: string })[];
  activeDeploymentId: string | null;
  queuedDeploymentId: string | null;
  deploymentsCount: number;
  createdAt: string;
  updatedAt: string;
}

/**
 * One phase of a deployment's timeline. `at`: when it was reached; `durationMs`: from the phase before;
 * `deadlineAt`: only for the `current` one, the front's backstop. A rollback's fetch and build are
 * `skipped`, as are the phases a finished deployment never reached; `failed` is where it stopped.
 */
export interface PhaseView {
  phase: DeploymentPhase;
  state: 'done' | 'current' | 'pending' | 'skipped' | 'failed';
  at: string | null;
  durationMs: number | null;
  deadlineAt: string | null;
}

/** Why a deployment did not succeed (also while `reverting`): one shape for failed, cancelled, abandoned. */
export interface DeploymentFailureView {
  /** The phase it was working towards. */
  phase: DeploymentPhase;
  reason: string;
  exitCode: number | null;
  signal: string | null;
  lastLines: string[];
  /** The traffic was put back on the previous release. */
  reverted: boolean;
}

export interface DeploymentVerificationView {
  state: 'pending' | 'passed' | 'failed';
  fronts: { url: string; status: number | null; error: string | null; attempts: number }[];
  reason: string | null;
  /** Why nothing was probed, when nothing was. */
  skipped: string | null;
}

/** A deployment (the `deployments` projection). */
export interface DeploymentView {
  deploymentId: string;
  appName: string;
  agentId: string;
  /** The app's count: null until the app accepted it. */
  number: number | null;
  kind: DeploymentKind;
  status: DeploymentStatus;
  phases: PhaseView[];
  cancelRequested: { at: string; reason: string } | null;
  commit: string | null;
  release: { releaseId: string; number: number } | null;
  port: number | null;
  routeId: string | null;
  failure: DeploymentFailureView | null;
  verification: DeploymentVerificationView | null;
  /** The current status's deadline (null when terminal or queued). */
  deadlineAt: string | null;
  requestedAt: string;
  finishedAt: string | null;
  requestedBy: { kind: string; id: string };
}
