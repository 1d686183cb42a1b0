import { addressPolicyOf } from '#contracts';
import {
  Inject,
  Injectable,
  Module,
  type BeforeApplicationShutdown,
  type DynamicModule,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { jetstreamManager } from '@nats-io/jetstream';
import { credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { EventStore, EventStoreModule, NATS_CONNECTION } from '#eventstore';
import { connectNats, HeartbeatRecorder, openHeartbeatsBucket } from '#messaging';
import { LOGGER, retryWhileTransient, type Logger } from '#platform';
import { AgentBroker } from './agent-broker.js';
import type { RegistrationConfig } from './config.js';
import { Liveness } from './liveness.js';
import { RegistrationController } from './registration.controller.js';
import { RegistrationCommands } from './registration.commands.js';
import { foldAgentsFromLog } from './startup.js';

const SYSTEM_CONNECTION = Symbol('SYSTEM_CONNECTION');
const REGISTRATION_CONFIG = Symbol('REGISTRATION_CONFIG');

/**
 * At start: makes sure the services' account has this release's exports, folds every agent from the
 * log and repairs the broker (each agent's own account, revoked for deregistered agents; consumers of
 * enrolled ones — whatever a crash between an append and a broker step left undone), then starts
 * liveness tracking.
 */
@Injectable()
export class RegistrationLifecycle
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  constructor(
    @Inject(EventStore) private readonly store: EventStore,
    @Inject(AgentBroker) private readonly broker: AgentBroker,
    @Inject(Liveness) private readonly liveness: Liveness,
    @Inject(SYSTEM_CONNECTION) private readonly system: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // A loaded broker may time a request out: wait and repeat (every step is idempotent), never exit.
    await retryWhileTransient(
      "the broker to take the agents' accounts",
      () => this.repairBroker(),
      this.logger,
    );
  }

  private async repairBroker(): Promise<void> {
    await this.broker.ensureServicesAccount();
    const agents = await foldAgentsFromLog(this.store);
    const active: string[] = [];
    let revoked = 0;
    const repairs: (() => Promise<void>)[] = [];
    for (const [agentId, state] of agents) {
      if (state.status === 'deregistered') {
        revoked++;
        const at = new Date(state.deregisteredAt ?? Date.now());
        repairs.push(async () => {
          await this.broker.ensureAccount(agentId, { deregisteredAt: at });
          await this.broker.deleteConsumer(agentId);
        });
      } else if (state.status !== 'absent') {
        active.push(agentId);
        repairs.push(async () => {
          await this.broker.ensureAccount(agentId);
          await this.broker.ensureConsumer(agentId);
        });
      }
    }
    for (let index = 0; index < repairs.length; index += 50) {
      await Promise.all(repairs.slice(index, index + 50).map((repair) => repair()));
    }
    this.liveness.start(agents);
    this.logger.info('registration ready', { agents: active.length, revoked });
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.liveness.stop();
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.system.isClosed()) await this.system.close();
  }
}

@Module({})
export class RegistrationModule {
  static forRoot(config: RegistrationConfig, logger: Logger): DynamicModule {
    return {
      module: RegistrationModule,
      imports: [EventStoreModule.forRoot(config, 'registration')],
      controllers: [RegistrationController],
      providers: [
        { provide: REGISTRATION_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        {
          provide: SYSTEM_CONNECTION,
          useFactory: () =>
            connectNats(
              config,
              'registration-system',
              logger,
              credsAuthenticator(AgentBroker.systemCredentials(config)),
            ),
        },
        {
          provide: AgentBroker,
          useFactory: (connection: NatsConnection, system: NatsConnection) =>
            retryWhileTransient(
              'JetStream to provision the AGENTS stream',
              async () => AgentBroker.open(await jetstreamManager(connection), system, config, logger),
              logger,
            ),
          inject: [NATS_CONNECTION, SYSTEM_CONNECTION],
        },
        {
          provide: Liveness,
          useFactory: async (store: EventStore, connection: NatsConnection) => {
            const heartbeats = await retryWhileTransient(
              'JetStream to open the agent heartbeats bucket',
              () => openHeartbeatsBucket(connection),
              logger,
            );
            return new Liveness(
              store,
              connection,
              { timeoutMs: config.CL_LIVENESS_TIMEOUT_MS, checkMs: config.CL_LIVENESS_CHECK_MS },
              logger.child({ component: 'liveness' }),
              new HeartbeatRecorder(heartbeats, logger.child({ component: 'heartbeats' })),
            );
          },
          inject: [EventStore, NATS_CONNECTION],
        },
        {
          provide: RegistrationCommands,
          useFactory: (store: EventStore, broker: AgentBroker, liveness: Liveness) =>
            new RegistrationCommands(
              store,
              broker,
              logger,
              {
                enrolled: (agentId) => liveness.enrolled(agentId),
                deregistered: (agentId) => liveness.deregistered(agentId),
              },
              addressPolicyOf(config),
            ),
          inject: [EventStore, AgentBroker, Liveness],
        },
        RegistrationLifecycle,
      ],
      exports: [RegistrationCommands, Liveness],
    };
  }
}
