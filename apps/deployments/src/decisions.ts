import {
  DomainError,
  type Actor,
  type AppConfig,
  type ClaimRequest,
  type CommandEnvelope,
  type DeploymentKind,
  type EventContext,
  type RenewRequest,
  type ReportRequest,
  type StoredEvent,
} from '#contracts';
import { commandHandler, contextOf, type EventStore } from '#eventstore';
import { commandKey, uuidV5, type Logger } from '#platform';
import { foldAgentForDeployments } from './domain/agent.js';
import {
  checkAppActor,
  decideAccept,
  decideConfigure,
  decideCreateApp,
  decideFinish,
  decideRemoveSecret,
  decideSetSecret,
  evolveApp,
  foldApp,
  initialAppState,
  nextSecretVersion,
  rollbackTarget,
  type LiveApp,
} from './domain/app.js';
import { overdue, type LeaseRecord } from './domain/deadlines.js';
import {
  checkLeaseHolder,
  decideAgentGone,
  decideCancel,
  decideClaim,
  decideReport,
  decideSuperseded,
  decideVerification,
  evolveDeployment,
  foldDeployment,
  initialDeploymentState,
  isTerminal,
  servingRelease,
  type DeploymentState,
  type FrontProbe,
  type LiveDeployment,
} from './domain/deployment.js';
import type { DeploymentAgentChannel } from './agent-channel.js';
import type { Leases } from './leases.js';
import type { PhaseLimits } from '#contracts';

/** Namespace of deployment ids (a fixed random UUID): ids are UUID v5 names inside it. */
export const DEPLOYMENT_ID_NAMESPACE = '3b0f6a52-1c7e-4d89-a2f4-9e6d5c3b8a17';

/** What the service does by itself (deadlines, finishing, verification). */
export const DEPLOYMENTS_ACTOR: Actor = { kind: 'service', id: 'deployments' };

const apps = commandHandler({ evolve: evolveApp, initialState: initialAppState });
const deployments = commandHandler({ evolve: evolveDeployment, initialState: initialDeploymentState });

export interface DeploymentsOptions {
  leaseTtlMs: number;
  leaseRenewMs: number;
  limits: (config: AppConfig) => PhaseLimits;
}

export interface CreateAppCommand {
  appName: string;
  agentId: string;
  config: AppConfig;
}

export interface RequestDeploymentCommand {
  appName: string;
  ref?: string;
  upload?: { uploadId: string; sha256: string; bytes: number };
}

export interface RollbackCommand {
  appName: string;
  release?: number | string;
}

/** Where a deployment stands, for the agent that holds it. */
export interface Progress {
  deploymentId: string;
  status: string;
  cancelRequested: boolean;
  verification: 'pending' | 'passed' | 'failed' | null;
  leaseExpiresAt: string | null;
}

/** The service's context for what it appends by itself. */
export function systemContext(correlationId: string): EventContext {
  return { actor: DEPLOYMENTS_ACTOR, correlationId, causationId: null };
}

/**
 * The decisions of deployments on the log. Each decision is a pure function (`domain/`) of states folded from the
 * log; this class loads them, appends with optimistic concurrency and message ids derived from the
 * command, and decides again when it loses a race.
 */
export class DeploymentDecisions {
  constructor(
    private readonly store: EventStore,
    private readonly leases: Leases,
    private readonly channel: DeploymentAgentChannel,
    private readonly options: DeploymentsOptions,
    private readonly logger: Logger,
  ) {}

  async app(appName: string) {
    return foldApp((await this.store.readAggregate('app', appName)).events);
  }

  async deployment(deploymentId: string): Promise<DeploymentState> {
    return foldDeployment((await this.store.readAggregate('deployment', deploymentId)).events);
  }

  /** An app for an agent that exists and is not deregistered; its name is claimed at sequence 0. */
  async createApp(command: CommandEnvelope<CreateAppCommand>): Promise<LiveApp> {
    const { payload } = command;
    const agent = foldAgentForDeployments((await this.store.readAggregate('agent', payload.agentId)).events);
    if (agent.status === 'absent')
      throw new DomainError('not_found', `no agent ${payload.agentId}`, 'agentId');
    if (agent.status === 'deregistered') {
      throw new DomainError('conflict', `agent ${payload.agentId} is deregistered`, 'agentId');
    }
    const { newState } = await apps.handle(
      this.store,
      { type: 'app', id: payload.appName },
      (state) => decideCreateApp(state, { actor: command.actor, commandId: command.commandId, ...payload }),
      {
        context: contextOf(command),
        commandId: `app-created:${commandKey(command.actor, command.commandId)}`,
      },
    );
    this.logger.info('app created', {
      appName: payload.appName,
      agentId: payload.agentId,
      by: command.actor,
    });
    return newState as LiveApp;
  }

  async configureApp(command: CommandEnvelope<{ appName: string; config: (app: LiveApp) => AppConfig }>) {
    const { newState } = await apps.handle(
      this.store,
      { type: 'app', id: command.payload.appName },
      (state) => {
        checkAppActor(command.actor, state, command.payload.appName);
        return decideConfigure(state, command.payload.config(state));
      },
      {
        context: contextOf(command),
        commandId: `app-configured:${commandKey(command.actor, command.commandId)}`,
      },
    );
    return newState as LiveApp;
  }

  /** The version a new secret value gets; the value is stored under it before the event names it. */
  async secretVersion(command: CommandEnvelope<{ appName: string; name: string }>): Promise<number> {
    const app = await this.app(command.payload.appName);
    checkAppActor(command.actor, app, command.payload.appName);
    return nextSecretVersion(app, command.payload.name, command.commandId);
  }

  async secretSet(command: CommandEnvelope<{ appName: string; name: string; version: number }>) {
    const { payload } = command;
    const { newState } = await apps.handle(
      this.store,
      { type: 'app', id: payload.appName },
      (state) => {
        checkAppActor(command.actor, state, payload.appName);
        if (nextSecretVersion(state, payload.name, command.commandId) !== payload.version) {
          throw new DomainError('conflict', `secret ${payload.name} changed meanwhile; try again`, 'name');
        }
        return decideSetSecret(state, payload.name, payload.version, command.commandId);
      },
      {
        context: contextOf(command),
        commandId: `secret-set:${payload.appName}:${payload.name}:${payload.version}`,
      },
    );
    return newState as LiveApp;
  }

  async removeSecret(command: CommandEnvelope<{ appName: string; name: string }>) {
    const { payload } = command;
    const { newState } = await apps.handle(
      this.store,
      { type: 'app', id: payload.appName },
      (state) => {
        checkAppActor(command.actor, state, payload.appName);
        if (state.secrets[payload.name] === undefined) {
          throw new DomainError('not_found', `${payload.appName} has no secret ${payload.name}`, 'name');
        }
        return decideRemoveSecret(state, payload.name);
      },
      {
        context: contextOf(command),
        commandId: `secret-removed:${commandKey(command.actor, command.commandId)}`,
      },
    );
    return newState as LiveApp;
  }

  /** A deployment of the app's source (at a ref, or an upload). */
  async requestDeployment(command: CommandEnvelope<RequestDeploymentCommand>) {
    const app = await this.app(command.payload.appName);
    checkAppActor(command.actor, app, command.payload.appName);
    const { ref, upload } = command.payload;
    if (app.config.source.type === 'upload' && upload === undefined) {
      throw new DomainError(
        'invalid',
        `${app.appName} deploys uploads: POST the .tar.gz as the body (Content-Type: application/gzip)`,
        'Content-Type',
      );
    }
    if (app.config.source.type === 'database' && (upload !== undefined || ref !== undefined)) {
      throw new DomainError(
        'invalid',
        `${app.appName} is a ${app.config.source.engine} database: deploy it with an empty body`,
        upload !== undefined ? 'Content-Type' : 'ref',
      );
    }
    if (app.config.source.type === 'image' && (upload !== undefined || ref !== undefined)) {
      throw new DomainError(
        'invalid',
        `${app.appName} deploys the image ${app.config.source.image}: deploy it with an empty body (PATCH the app to change the image)`,
        upload !== undefined ? 'Content-Type' : 'ref',
      );
    }
    if (app.config.source.type === 'git' && upload !== undefined) {
      throw new DomainError(
        'invalid',
        `${app.appName} deploys from git: give a ref (JSON), not a tarball`,
        'Content-Type',
      );
    }
    return this.request(command, app, 'deploy', {
      ref: app.config.source.type === 'git' ? (ref ?? app.config.source.ref) : null,
      upload: upload ?? null,
      targetRelease: null,
    });
  }

  /** Starts a kept release again: no fetch, no build. */
  async rollback(command: CommandEnvelope<RollbackCommand>) {
    const app = await this.app(command.payload.appName);
    checkAppActor(command.actor, app, command.payload.appName);
    const target = rollbackTarget(app, command.payload.release);
    return this.request(command, app, 'rollback', {
      ref: null,
      upload: null,
      targetRelease: { releaseId: target.releaseId, number: target.number },
    });
  }

  /**
   * Two appends: DeploymentRequested (sequence 0 of a new aggregate), then DeploymentAccepted on the app
   * (the app is the lock of one active deployment). A retried command names the same deployment and
   * completes what the first attempt left; the supervisor completes it when nobody retries.
   */
  private async request(
    command: CommandEnvelope<unknown>,
    app: LiveApp,
    kind: DeploymentKind,
    what: Pick<LiveDeployment, 'ref' | 'upload' | 'targetRelease'>,
  ) {
    const deploymentId = uuidV5(
      JSON.stringify([command.actor.kind, command.actor.id, app.appName, command.commandId]),
      DEPLOYMENT_ID_NAMESPACE,
    );
    const context = contextOf(command);
    await deployments.handle(
      this.store,
      { type: 'deployment', id: deploymentId },
      (state) =>
        state.status !== 'absent'
          ? []
          : [
              {
                type: 'DeploymentRequested',
                data: {
                  deploymentId,
                  appName: app.appName,
                  agentId: app.agentId,
                  kind,
                  ...what,
                  previous: app.current,
                  config: app.config,
                  routeId: app.routeId,
                  limits: this.options.limits(app.config),
                },
              },
            ],
      { context, commandId: `deployment-requested:${deploymentId}` },
    );
    await this.accept(deploymentId, context);
    this.logger.info('deployment requested', { deploymentId, appName: app.appName, kind, by: command.actor });
    return this.deployment(deploymentId) as Promise<LiveDeployment>;
  }

  /** The app takes the deployment (at once, or queued behind the active one, replacing a queued one). */
  async accept(deploymentId: string, context: EventContext): Promise<void> {
    const deployment = await this.deployment(deploymentId);
    if (deployment.status === 'absent') return;
    const { events, newState } = await apps.handle(
      this.store,
      { type: 'app', id: deployment.appName },
      (state) => (state.status === 'live' ? decideAccept(state, deploymentId, deployment.kind) : []),
      { context, commandId: `deployment-accepted:${deploymentId}` },
    );
    const accepted = events.find((event) => event.type === 'DeploymentAccepted');
    if (accepted?.data.supersedes) await this.supersede(accepted.data.supersedes, deploymentId, context);
    const app = newState as LiveApp;
    if (app.active === deploymentId)
      await this.channel.assigned(deployment.agentId, deploymentId, app.appName, 0);
  }

  private async supersede(deploymentId: string, by: string, context: EventContext): Promise<void> {
    await deployments.handle(
      this.store,
      { type: 'deployment', id: deploymentId },
      (state) => decideSuperseded(state, by),
      { context, commandId: `dep-superseded:${deploymentId}` },
    );
    await this.finish(deploymentId, context.correlationId);
  }

  async cancel(command: CommandEnvelope<{ deploymentId: string; reason?: string }>) {
    const { deploymentId } = command.payload;
    const current = await this.deployment(deploymentId);
    if (
      current.status === 'absent' ||
      (command.actor.kind === 'agent' && current.agentId !== command.actor.id)
    ) {
      throw command.actor.kind === 'agent'
        ? new DomainError(
            'forbidden',
            `agent ${command.actor.id} has no deployment ${deploymentId}`,
            'deploymentId',
          )
        : new DomainError('not_found', `no deployment ${deploymentId}`, 'deploymentId');
    }
    const { newState, events } = await deployments.handle(
      this.store,
      { type: 'deployment', id: deploymentId },
      (state) =>
        decideCancel(
          state,
          deploymentId,
          command.payload.reason ?? `cancelled by ${command.actor.kind} ${command.actor.id}`,
        ),
      {
        context: contextOf(command),
        commandId: `dep-cancel:${deploymentId}:${commandKey(command.actor, command.commandId)}`,
      },
    );
    const state = newState as LiveDeployment;
    if (isTerminal(state.status)) await this.finish(deploymentId, command.correlationId);
    else if (events.length > 0) await this.notifyChanged(state);
    return state;
  }

  // -------------------------------------------------------------------------------------------------
  // The agent's side: claim, renew, report.

  async claim(agentId: string, request: ClaimRequest, correlationId: string) {
    const before = await this.deployment(request.deploymentId);
    const app = before.status === 'absent' ? null : await this.app(before.appName);
    const active = app?.status === 'live' && app.active === request.deploymentId;
    const { newState } = await deployments.handle(
      this.store,
      { type: 'deployment', id: request.deploymentId },
      (state) =>
        decideClaim(state, request.deploymentId, {
          agentId,
          leaseId: request.leaseId,
          agentVersion: request.agentVersion,
          leaseTtlMs: this.options.leaseTtlMs,
          active,
        }),
      {
        context: { actor: { kind: 'agent', id: agentId }, correlationId, causationId: null },
        commandId: `dep-claimed:${request.deploymentId}:${request.leaseId}`,
      },
    );
    const state = newState as LiveDeployment;
    const expiresAt = await this.writeLease(state, agentId, request.leaseId);
    return {
      deployment: state,
      number: app?.status === 'live' ? (app.accepted[request.deploymentId] ?? null) : null,
      lease: { ttlMs: this.options.leaseTtlMs, renewEveryMs: this.options.leaseRenewMs, expiresAt },
    };
  }

  private async writeLease(state: LiveDeployment, agentId: string, leaseId: string): Promise<string> {
    const expiresAt = new Date(Date.now() + this.options.leaseTtlMs).toISOString();
    await this.leases.write(state.deploymentId, { agentId, leaseId, expiresAt });
    return expiresAt;
  }

  /** Keeps the claim alive; a renewal cannot extend a phase's deadline, only the lease. */
  async renew(agentId: string, request: RenewRequest): Promise<Progress> {
    const state = await this.deployment(request.deploymentId);
    checkLeaseHolder(state, agentId, request.deploymentId, request.leaseId);
    const expiresAt = await this.writeLease(state, agentId, request.leaseId);
    return progressOf(state, expiresAt);
  }

  async report(agentId: string, request: ReportRequest, correlationId: string): Promise<Progress> {
    const before = await this.deployment(request.deploymentId);
    const appState = before.status === 'absent' ? null : await this.app(before.appName);
    const app = appState?.status === 'live' ? appState : null;
    const { newState } = await deployments.handle(
      this.store,
      { type: 'deployment', id: request.deploymentId },
      (state) => decideReport(state, request.deploymentId, agentId, request.leaseId, request.report, app),
      {
        context: { actor: { kind: 'agent', id: agentId }, correlationId, causationId: null },
        commandId: `dep-report:${request.deploymentId}:${request.report.phase}`,
      },
    );
    const state = newState as LiveDeployment;
    if (isTerminal(state.status)) await this.finish(state.deploymentId, correlationId);
    return progressOf(state, null);
  }

  // -------------------------------------------------------------------------------------------------
  // What the service does by itself.

  /** A terminal deployment still active (or queued) on its app: record the outcome and let the next run. */
  async finish(deploymentId: string, correlationId: string): Promise<void> {
    const state = await this.deployment(deploymentId);
    if (state.status === 'absent' || !isTerminal(state.status)) return;
    const { events, newState } = await apps.handle(
      this.store,
      { type: 'app', id: state.appName },
      (app) =>
        app.status !== 'live'
          ? []
          : decideFinish(app, {
              deploymentId,
              outcome: state.status as 'succeeded' | 'failed' | 'cancelled' | 'abandoned',
              release: state.status === 'succeeded' ? servingRelease(state) : null,
              routeId: state.routeId,
            }),
      { context: systemContext(correlationId), commandId: `dep-finished:${deploymentId}` },
    );
    const activated = events.find((event) => event.type === 'DeploymentActivated');
    if (activated) {
      const app = newState as LiveApp;
      await this.channel.assigned(app.agentId, activated.data.deploymentId, app.appName, 0);
    }
    this.logger.info('deployment finished', {
      deploymentId,
      appName: state.appName,
      outcome: state.status,
      phase: state.failure?.phase,
      reason: state.failure?.reason,
    });
  }

  /** Appends what a passed deadline or an expired lease calls for; returns whether it did. */
  async enforceDeadlines(deploymentId: string, now: number, lease: LeaseRecord | null): Promise<boolean> {
    const before = await this.deployment(deploymentId);
    if (before.status === 'absent' || isTerminal(before.status)) return false;
    const appState = await this.app(before.appName);
    const app = appState.status === 'live' ? appState : null;
    const { events, newState } = await deployments.handle(
      this.store,
      { type: 'deployment', id: deploymentId },
      (state) => overdue(state, app, lease, now),
      { context: systemContext(deploymentId) },
    );
    if (events.length === 0) return false;
    this.logger.warn('deployment deadline passed', {
      deploymentId,
      events: events.map((event) => event.type),
    });
    const state = newState as LiveDeployment;
    if (isTerminal(state.status)) await this.finish(deploymentId, deploymentId);
    else await this.notifyChanged(state);
    return true;
  }

  async recordVerification(
    deploymentId: string,
    result:
      | { passed: true; fronts: FrontProbe[]; skipped: string | null }
      | { passed: false; fronts: FrontProbe[]; reason: string },
  ): Promise<void> {
    const { events, newState } = await deployments.handle(
      this.store,
      { type: 'deployment', id: deploymentId },
      (state) => decideVerification(state, result),
      { context: systemContext(deploymentId), commandId: `dep-verification:${deploymentId}` },
    );
    if (events.length > 0) await this.notifyChanged(newState as LiveDeployment);
  }

  /** A deregistered agent's deployments can never finish: ended now, not at their deadlines. */
  async agentDeregistered(event: StoredEvent, deploymentIds: readonly string[]): Promise<void> {
    for (const deploymentId of deploymentIds) {
      const before = await this.deployment(deploymentId);
      if (before.status === 'absent' || before.agentId !== event.aggregate.id) continue;
      const app = await this.app(before.appName);
      await deployments.handle(
        this.store,
        { type: 'deployment', id: deploymentId },
        (state) => decideAgentGone(state, app.status === 'live' ? app : null),
        { context: { ...systemContext(event.correlationId), causationId: event.id } },
      );
      await this.finish(deploymentId, event.correlationId);
    }
  }

  /** Announces a waiting deployment to its agent again (the first poke may have been missed). */
  async assignAgain(state: LiveDeployment, window: number): Promise<void> {
    await this.channel.assigned(state.agentId, state.deploymentId, state.appName, window);
  }

  async notifyChanged(state: LiveDeployment, sequence = Date.now()): Promise<void> {
    await this.channel.changed(
      state.agentId,
      {
        deploymentId: state.deploymentId,
        status: state.status,
        cancelRequested: state.cancelRequested !== null,
        verification: state.verification,
      },
      sequence,
    );
  }
}

export function progressOf(state: LiveDeployment, leaseExpiresAt: string | null): Progress {
  return {
    deploymentId: state.deploymentId,
    status: state.status,
    cancelRequested: state.cancelRequested !== null,
    verification: state.verification,
    leaseExpiresAt,
  };
}
