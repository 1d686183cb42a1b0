import {
  Inject,
  Injectable,
  Module,
  type BeforeApplicationShutdown,
  type DynamicModule,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { DataSource } from 'typeorm';
import { secretsLayout } from '#auth';
import { EventStore, EventStoreModule, NATS_CONNECTION } from '#eventstore';
import { AgentRequestServer, LastHeartbeats } from '#messaging';
import {
  DatabaseModule,
  deploymentById,
  insertSecretValue,
  nonTerminalDeployments,
  readSecretValues,
} from '#persistence';
import { LOGGER, type Logger } from '#platform';
import { agentDeploymentRequests } from './agent-requests.js';
import { DeploymentAgentChannel } from './agent-channel.js';
import { phaseLimitsOf, type DeploymentsConfig } from './config.js';
import { DeploymentDecisions } from './decisions.js';
import { DeploymentsCommands } from './deployments.commands.js';
import { DeploymentsController, DeploymentsEventHandlers, INPUT_POLICY } from './deployments.controller.js';
import { foldAgentForDeployments } from './domain/agent.js';
import { FrontStreams } from './front-streams.js';
import { Leases } from './leases.js';
import { LogRelay } from './log-relay.js';
import { DeploymentsReads } from './reads.js';
import { SecretCollector } from './secret-collector.js';
import { SecretDelivery } from './secret-delivery.js';
import { SecretStore } from './secret-store.js';
import { Supervisor } from './supervisor.js';
import { UploadCheck } from './uploads.js';
import { Verifier } from './verifier.js';
import { DatabaseRelay } from './database-relay.js';

const SUPERVISE_MS = Symbol('SUPERVISE_MS');
/** The fronts answer from HAProxy's memory in milliseconds; a drain polls again soon anyway. */
const FRONT_STREAMS_WAIT_MS = 500;
const FRONT_NODES_CACHE_MS = 5_000;
const SECRET_GC_MS = Symbol('SECRET_GC_MS');

/** Starts the agents' requests, the log relay and the supervisor once the app is up; stops them first. */
@Injectable()
class Lifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private gcTimer?: NodeJS.Timeout;
  private collecting?: Promise<unknown>;

  constructor(
    @Inject(SecretCollector) private readonly collector: SecretCollector,
    @Inject(SECRET_GC_MS) private readonly gcMs: number,
    @Inject(AgentRequestServer) private readonly requests: AgentRequestServer,
    @Inject(LogRelay) private readonly relay: LogRelay,
    @Inject(DatabaseRelay) private readonly databases: DatabaseRelay,
    @Inject(Supervisor) private readonly supervisor: Supervisor,
    @Inject(SUPERVISE_MS) private readonly intervalMs: number,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.relay.provision();
    this.relay.start();
    this.databases.start();
    this.requests.start();
    void this.supervisor.tick();
    if (this.intervalMs > 0) this.timer = setInterval(() => void this.supervisor.tick(), this.intervalMs);
    if (this.gcMs > 0) {
      this.gcTimer = setInterval(() => {
        this.collecting ??= this.collector
          .collect()
          .catch((error: unknown) => this.logger.warn('secret collection failed; will try again', { error }))
          .finally(() => (this.collecting = undefined));
      }, this.gcMs);
    }
    this.logger.debug('deployments supervising', { everyMs: this.intervalMs });
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.gcTimer);
    await this.collecting;
    await this.requests.stop();
    await this.relay.stop();
    await this.databases.stop();
    await this.supervisor.stop();
  }
}

@Module({})
export class DeploymentsModule {
  static async forRoot(config: DeploymentsConfig, logger: Logger): Promise<DynamicModule> {
    return {
      module: DeploymentsModule,
      imports: [
        EventStoreModule.forRoot(config, 'deployments'),
        DatabaseModule.forRoot(config, 'deployments'),
      ],
      controllers: [DeploymentsController, DeploymentsEventHandlers],
      providers: [
        { provide: LOGGER, useValue: logger },
        {
          provide: INPUT_POLICY,
          useValue: {
            domain: config.CL_DOMAIN,
            fileRoots: config.CL_DEPLOY_FILE_ROOTS,
            plainGitHosts: config.CL_DEPLOY_PLAIN_GIT_HOSTS,
          },
        },
        {
          provide: Leases,
          useFactory: (connection: NatsConnection) => new Leases(connection, config.CL_DEPLOY_LEASES_BUCKET),
          inject: [NATS_CONNECTION],
        },
        {
          provide: UploadCheck,
          useFactory: (connection: NatsConnection) => new UploadCheck(connection),
          inject: [NATS_CONNECTION],
        },
        {
          provide: DeploymentAgentChannel,
          useFactory: (connection: NatsConnection) =>
            new DeploymentAgentChannel(connection, logger.child({ component: 'agent-channel' })),
          inject: [NATS_CONNECTION],
        },
        {
          provide: DeploymentDecisions,
          useFactory: (store: EventStore, leases: Leases, channel: DeploymentAgentChannel) =>
            new DeploymentDecisions(
              store,
              leases,
              channel,
              {
                leaseTtlMs: config.CL_DEPLOY_LEASE_TTL_MS,
                leaseRenewMs: config.CL_DEPLOY_LEASE_RENEW_MS,
                limits: (app) => phaseLimitsOf(config, app),
              },
              logger,
            ),
          inject: [EventStore, Leases, DeploymentAgentChannel],
        },
        {
          provide: SecretStore,
          useFactory: (dataSource: DataSource) =>
            SecretStore.fromKeyFile(secretsLayout(config.CL_SECRETS_DIR).deploymentSecretStoreKey, {
              insert: async (row) => {
                await insertSecretValue(dataSource, row);
              },
              read: (appName, refs) => readSecretValues(dataSource, appName, refs),
            }),
          inject: [DataSource],
        },
        {
          provide: Supervisor,
          useFactory: (decisions: DeploymentDecisions, leases: Leases, dataSource: DataSource) =>
            new Supervisor(
              decisions,
              leases,
              new Verifier(
                config.CL_DEPLOY_VERIFY_URLS,
                config.CL_DEPLOY_VERIFY_CA_FILE,
                config.CL_DEPLOY_VERIFY_SNI_ADDRESSES,
              ),
              async () =>
                (await nonTerminalDeployments(dataSource)).map((deployment) => deployment.deploymentId),
              logger.child({ component: 'supervisor' }),
            ),
          inject: [DeploymentDecisions, Leases, DataSource],
        },
        {
          provide: DeploymentsCommands,
          useFactory: (
            decisions: DeploymentDecisions,
            secrets: SecretStore,
            supervisor: Supervisor,
            dataSource: DataSource,
            databases: DatabaseRelay,
            heartbeats: LastHeartbeats,
          ) =>
            new DeploymentsCommands(
              decisions,
              secrets,
              supervisor,
              dataSource,
              databases,
              logger,
              heartbeats,
            ),
          inject: [DeploymentDecisions, SecretStore, Supervisor, DataSource, DatabaseRelay, LastHeartbeats],
        },
        {
          provide: LastHeartbeats,
          useFactory: (connection: NatsConnection) => {
            const heartbeats = new LastHeartbeats(connection, logger.child({ component: 'heartbeats' }));
            heartbeats.start();
            return heartbeats;
          },
          inject: [NATS_CONNECTION],
        },
        {
          provide: DatabaseRelay,
          useFactory: (connection: NatsConnection) =>
            new DatabaseRelay(connection, logger.child({ component: 'databases' })),
          inject: [NATS_CONNECTION],
        },
        {
          provide: AgentRequestServer,
          useFactory: (
            connection: NatsConnection,
            decisions: DeploymentDecisions,
            store: EventStore,
            dataSource: DataSource,
            secrets: SecretStore,
            supervisor: Supervisor,
          ) =>
            agentDeploymentRequests(
              connection,
              decisions,
              new DeploymentsReads(dataSource, async (agentId) => {
                const agent = foldAgentForDeployments((await store.readAggregate('agent', agentId)).events);
                return agent.status === 'absent' ? null : agent.publicAddress;
              }),
              new SecretDelivery(decisions, secrets),
              new FrontStreams(connection, {
                liveWithinMs: config.CL_PROXY_STALE_AFTER_MS,
                maxWaitMs: FRONT_STREAMS_WAIT_MS,
                nodesCacheMs: FRONT_NODES_CACHE_MS,
                bucket: config.CL_PROXY_KV_BUCKET,
              }),
              logger.child({ component: 'agent-requests' }),
              (deploymentId) => supervisor.poke(deploymentId),
            ),
          inject: [NATS_CONNECTION, DeploymentDecisions, EventStore, DataSource, SecretStore, Supervisor],
        },
        {
          provide: LogRelay,
          useFactory: (
            connection: NatsConnection,
            decisions: DeploymentDecisions,
            dataSource: DataSource,
            secrets: SecretStore,
          ) =>
            new LogRelay(
              connection,
              async (deploymentId) => {
                const deployment = await deploymentById(dataSource, deploymentId);
                const state = deployment ? null : await decisions.deployment(deploymentId);
                const agentId =
                  deployment?.agentId ?? (state && state.status !== 'absent' ? state.agentId : null);
                if (agentId === null) return null;
                return {
                  agentId,
                  secrets: async () => {
                    const folded = await decisions.deployment(deploymentId);
                    if (folded.status === 'absent') return {};
                    return secrets.values(folded.appName, folded.config.secrets).catch(() => ({}));
                  },
                };
              },
              {
                maxAgeSeconds: config.CL_LOGS_MAX_AGE_S,
                maxBytes: config.CL_LOGS_MAX_BYTES,
                maxMessagesPerSubject: config.CL_LOGS_MAX_MSGS_PER_SUBJECT,
                replicas: config.CL_LOGS_REPLICAS,
                bytesPerSecondPerAgent: config.CL_DEPLOY_LOG_BYTES_PER_S,
              },
              logger.child({ component: 'log-relay' }),
            ),
          inject: [NATS_CONNECTION, DeploymentDecisions, DataSource, SecretStore],
        },
        { provide: SUPERVISE_MS, useValue: config.CL_DEPLOY_SUPERVISE_MS },
        { provide: SECRET_GC_MS, useValue: config.CL_DEPLOY_SECRET_GC_MS },
        {
          provide: SecretCollector,
          useFactory: (decisions: DeploymentDecisions, dataSource: DataSource) =>
            new SecretCollector(decisions, dataSource, logger.child({ component: 'secret-collector' })),
          inject: [DeploymentDecisions, DataSource],
        },
        Lifecycle,
      ],
      exports: [DeploymentsCommands],
    };
  }
}
