import {
  DATABASE_ANSWER_MS,
  DATABASE_RESTORE_MS,
  DomainError,
  type Actor,
  type AppView,
  type CommandEnvelope,
  type DatabaseCommandReply,
  type DatabaseOperation,
  type DeploymentView,
  type StoredEvent,
  type UploadRef,
} from '#contracts';
import type { DataSource } from 'typeorm';
import { nonTerminalDeployments } from '#persistence';
import type { LastHeartbeats } from '#messaging';
import type { Logger } from '#platform';
import { checkAppActor, type LiveApp } from './domain/app.js';
import type { LiveDeployment } from './domain/deployment.js';
import type {
  CreateAppCommand,
  DeploymentDecisions,
  RequestDeploymentCommand,
  RollbackCommand,
} from './decisions.js';
import { appViewOf, deploymentViewOf } from './reads.js';
import type { DatabaseRelay } from './database-relay.js';
import type { SecretStore } from './secret-store.js';
import type { Supervisor } from './supervisor.js';

/**
 * What the API asks of deployments, answered with views. Secret values go to the secret store before the
 * log names their versions: a crash in between leaves a row no event names (collected later), never an
 * event naming a value that is not there.
 */
export class DeploymentsCommands {
  constructor(
    private readonly decisions: DeploymentDecisions,
    private readonly secrets: SecretStore,
    private readonly supervisor: Supervisor,
    private readonly dataSource: DataSource,
    private readonly databases: DatabaseRelay,
    private readonly logger: Logger,
    /** The agents' last heartbeats: what runtimes each reports. */
    private readonly heartbeats?: Pick<LastHeartbeats, 'runtimesOf'>,
  ) {}

  /**
   * A database's operation, run by its agent: its credentials (sealed to the key the API made for this
   * request: they pass through here unread), a backup, the list of its backups, a restore. Admins only.
   */
  async database(
    command: CommandEnvelope<{ appName: string; operation: DatabaseOperation }>,
  ): Promise<DatabaseCommandReply> {
    const { appName, operation } = command.payload;
    if (command.actor.kind !== 'admin')
      throw new DomainError('forbidden', 'only an admin may ask for this of a database', 'appName');
    const app = await this.decisions.app(appName);
    if (app.status !== 'live') throw new DomainError('not_found', `no app ${appName}`, 'appName');
    const source = app.config.source;
    if (source.type !== 'database')
      throw new DomainError('invalid', `${appName} is an app, not a database`, 'appName');
    if (!app.current)
      throw new DomainError('conflict', `${appName} has not been deployed yet: deploy it first`, 'appName');
    const answer = await this.databases.ask(
      app.agentId,
      { appName, operation },
      operation.kind === 'restore' ? DATABASE_RESTORE_MS : DATABASE_ANSWER_MS,
    );
    if ('error' in answer)
      throw new DomainError('unavailable', `agent ${app.agentId}: ${answer.error}`, 'appName');
    const what =
      operation.kind === 'credentials'
        ? operation.rotate
          ? 'password rotated'
          : 'credentials read'
        : operation.kind;
    if (operation.kind !== 'backups')
      this.logger.info(`database ${what}`, { appName, agentId: app.agentId, by: command.actor });
    return {
      requestId: answer.requestId,
      agentId: app.agentId,
      engine: source.engine,
      hostname: app.config.hostname,
      answer,
    };
  }

  async createApp(
    command: CommandEnvelope<CreateAppCommand>,
    secretValues: Record<string, string>,
  ): Promise<AppView> {
    const { appName } = command.payload;
    const existing = await this.decisions.app(appName);
    if (existing.status === 'live' && existing.createdBy !== command.commandId) {
      throw new DomainError('conflict', `an app named ${appName} exists already`, 'name');
    }
    if (command.actor.kind === 'agent' && command.actor.id !== command.payload.agentId) {
      throw new DomainError('forbidden', 'an agent can only create apps for itself', 'agentId');
    }
    // An agent that reports its runtimes runs only those (one that reports none yet is taken at its word).
    const reported = this.heartbeats?.runtimesOf(command.payload.agentId);
    const runtime = command.payload.config.runtime;
    if (reported && !reported.includes(runtime)) {
      throw new DomainError(
        'invalid',
        `agent ${command.payload.agentId} reports the ${reported.join(' and ')} runtime only: it has no container engine (set deployments.container.socket in its config; deploy/podman/service.sh runs one)`,
        'runtime',
      );
    }
    // Version 1 of each secret; a retried create stores the same version again, which keeps the first.
    for (const [name, value] of Object.entries(secretValues)) await this.secrets.put(appName, name, 1, value);
    return appViewOf(await this.decisions.createApp(command));
  }

  configureApp(command: Parameters<DeploymentDecisions['configureApp']>[0]): Promise<AppView> {
    return this.decisions.configureApp(command).then(appViewOf);
  }

  async setSecret(command: CommandEnvelope<{ appName: string; name: string; value: string }>) {
    const { appName, name, value } = command.payload;
    const version = await this.decisions.secretVersion({ ...command, payload: { appName, name } });
    await this.secrets.put(appName, name, version, value);
    const app = await this.decisions.secretSet({ ...command, payload: { appName, name, version } });
    return { name, version, setAt: app.secrets[name]?.setAt ?? null };
  }

  async removeSecret(command: CommandEnvelope<{ appName: string; name: string }>) {
    await this.decisions.removeSecret(command);
    return { name: command.payload.name, removed: true };
  }

  /** The deployment as accepted; one of an upload says which (the projected view does not). */
  async requestDeployment(
    command: CommandEnvelope<RequestDeploymentCommand>,
  ): Promise<DeploymentView & { upload?: UploadRef }> {
    const state = await this.decisions.requestDeployment(command);
    const view = await this.viewOf(state);
    return state.upload ? { ...view, upload: state.upload } : view;
  }

  async rollback(command: CommandEnvelope<RollbackCommand>): Promise<DeploymentView> {
    return this.viewOf(await this.decisions.rollback(command));
  }

  async cancel(command: CommandEnvelope<{ deploymentId: string; reason?: string }>): Promise<DeploymentView> {
    const state = await this.decisions.cancel(command);
    this.supervisor.poke(state.deploymentId);
    return this.viewOf(state);
  }

  async getApp(actor: Actor, appName: string): Promise<AppView> {
    const app = await this.decisions.app(appName);
    checkAppActor(actor, app, appName);
    return appViewOf(app);
  }

  async getDeployment(actor: Actor, deploymentId: string): Promise<DeploymentView> {
    return this.viewOf(await this.visibleDeployment(actor, deploymentId));
  }

  /**
   * The upload a deployment deploys, for its agent's download: the same 403 for another agent's
   * deployment and an unknown one; an admin may see it too.
   */
  async getSource(
    actor: Actor,
    deploymentId: string,
  ): Promise<{ deploymentId: string; agentId: string; upload: UploadRef }> {
    const state = await this.visibleDeployment(actor, deploymentId);
    if (!state.upload) {
      throw new DomainError('not_found', `deployment ${deploymentId} has no uploaded source`, 'deploymentId');
    }
    return { deploymentId, agentId: state.agentId, upload: state.upload };
  }

  private async visibleDeployment(actor: Actor, deploymentId: string): Promise<LiveDeployment> {
    const state = await this.decisions.deployment(deploymentId);
    if (state.status === 'absent' || (actor.kind === 'agent' && actor.id !== state.agentId)) {
      throw actor.kind === 'agent'
        ? new DomainError('forbidden', `agent ${actor.id} has no deployment ${deploymentId}`, 'deploymentId')
        : new DomainError('not_found', `no deployment ${deploymentId}`, 'deploymentId');
    }
    return state;
  }

  private async viewOf(state: LiveDeployment): Promise<DeploymentView> {
    this.supervisor.poke(state.deploymentId);
    const app = await this.decisions.app(state.appName);
    return deploymentViewOf(state, app.status === 'live' ? (app as LiveApp) : null);
  }

  /** A deployment's event: the supervisor looks at it again (and the agent hears of what it must act on). */
  deploymentEvent(event: StoredEvent): void {
    this.supervisor.poke(event.aggregate.id);
  }

  async agentDeregistered(event: StoredEvent): Promise<void> {
    const running = await nonTerminalDeployments(this.dataSource, { agentId: event.aggregate.id });
    await this.decisions.agentDeregistered(
      event,
      running.map((deployment) => deployment.deploymentId),
    );
    this.logger.info('ended the deployments of a deregistered agent', {
      agentId: event.aggregate.id,
      deployments: running.length,
    });
  }
}
