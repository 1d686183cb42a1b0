import type { DataSource } from 'typeorm';
import { deploymentDeadline, type AppView, type DeploymentView } from '#contracts';
import { appsOfAgent, appViewOfRow, deploymentViewOfRow, nonTerminalDeployments } from '#persistence';
import type { LiveApp } from './domain/app.js';
import type { LiveDeployment } from './domain/deployment.js';

/**
 * Views of apps and deployments. A command answers with the state it just folded from the log (the
 * projection may not have it yet); lists come from the projections.
 */
export class DeploymentsReads {
  constructor(
    private readonly dataSource: DataSource,
    private readonly publicAddressOf: (agentId: string) => Promise<string | null>,
  ) {}

  /** The agent's whole desired state, for its reconcile: its apps and the deployments waiting for it. */
  async assignedTo(agentId: string) {
    const [apps, running, publicAddress] = await Promise.all([
      appsOfAgent(this.dataSource, agentId),
      nonTerminalDeployments(this.dataSource, { agentId }),
      this.publicAddressOf(agentId),
    ]);
    return {
      publicAddress,
      apps: apps.map((app) => ({
        appName: app.appName,
        hostname: app.hostname,
        routeId: app.routeId,
        current: app.current,
        keptReleases: app.keptReleases,
        releasesKept: app.config.releasesKept,
        drain: app.config.drain,
        limits: app.config.limits,
        healthCheck: app.config.healthCheck,
        activeDeploymentId: app.activeDeploymentId,
        database: app.config.source.type === 'database' ? { engine: app.config.source.engine } : null,
      })),
      inFlight: running.map((deployment) => ({
        deploymentId: deployment.deploymentId,
        appName: deployment.appName,
        status: deployment.status,
      })),
    };
  }

  /** What a claim answers: the deployment's whole spec, its number, the lease and the deadlines. */
  claimAnswer(claimed: {
    deployment: LiveDeployment;
    number: number | null;
    lease: { ttlMs: number; renewEveryMs: number; expiresAt: string };
  }) {
    const { deployment } = claimed;
    return {
      deploymentId: deployment.deploymentId,
      appName: deployment.appName,
      number: claimed.number,
      kind: deployment.kind,
      ref: deployment.ref,
      upload: deployment.upload,
      targetRelease: deployment.targetRelease,
      previous: deployment.previous,
      config: deployment.config,
      routeId: deployment.routeId,
      limits: deployment.limits,
      status: deployment.status,
      lease: claimed.lease,
    };
  }
}

export function appViewOf(app: LiveApp): AppView {
  return appViewOfRow({
    app_name: app.appName,
    agent_id: app.agentId,
    hostname: app.config.hostname,
    route_id: app.routeId,
    config: app.config,
    secrets: app.secrets,
    current_release: app.current,
    kept_releases: app.keptReleases,
    active_deployment_id: app.active,
    queued_deployment_id: app.queued,
    deployments_count: app.deploymentsCount,
    created_at: app.createdAt,
    updated_at: app.updatedAt,
  });
}

export function deploymentViewOf(state: LiveDeployment, app: LiveApp | null): DeploymentView {
  const deadline = deploymentDeadline({
    status: state.status,
    kind: state.kind,
    enteredAt: state.enteredAt,
    limits: state.limits,
    cancelRequestedAt: state.cancelRequested?.at ?? null,
    activeSince: app?.active === state.deploymentId ? (app.activeSince ?? state.requestedAt) : null,
  });
  return deploymentViewOfRow({
    deployment_id: state.deploymentId,
    app_name: state.appName,
    agent_id: state.agentId,
    number: app?.accepted[state.deploymentId] ?? null,
    kind: state.kind,
    status: state.status,
    phases: state.phases,
    cancel_requested_at: state.cancelRequested?.at ?? null,
    cancel_reason: state.cancelRequested?.reason ?? null,
    commit: state.commit,
    release_id: state.release?.releaseId ?? null,
    release_number: state.release?.number ?? null,
    port: state.port,
    route_id: state.routeId,
    failure: state.failure ? { ...state.failure, reverted: state.reverted } : null,
    verification: state.verification
      ? { state: state.verification, fronts: [], reason: state.failure?.reason ?? null, skipped: null }
      : null,
    deadline_at: deadline ? new Date(deadline.at).toISOString() : null,
    requested_at: state.requestedAt,
    finished_at: state.finishedAt,
    requested_by: state.requestedBy,
  } as Parameters<typeof deploymentViewOfRow>[0]);
}
