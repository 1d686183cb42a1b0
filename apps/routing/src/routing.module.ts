import { addressPolicyOf } from '#contracts';
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
import { EventStore, EventStoreModule, NATS_CONNECTION } from '#eventstore';
import { DatabaseModule } from '#persistence';
import { AgentRequestServer } from '#messaging';
import { LOGGER, type Logger } from '#platform';
import { agentRouteRequests } from './agent-requests.js';
import type { RoutingConfig } from './config.js';
import { RoutingController, RoutingEventHandlers } from './routing.controller.js';
import { ProxyNodeWatch } from './proxy-node-watch.js';
import { RoutingCommands } from './routing.commands.js';

/** Starts answering agents' route requests once the app is up, and stops before it shuts down. */
@Injectable()
class AgentRequestsLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(@Inject(AgentRequestServer) private readonly requests: AgentRequestServer) {}
  onApplicationBootstrap(): void {
    this.requests.start();
  }
  async beforeApplicationShutdown(): Promise<void> {
    await this.requests.stop();
  }
}

const SWEEP_MS = Symbol('SWEEP_MS');

/** Runs the sweep of deregistered agents' routes at start and then every CL_ROUTING_SWEEP_MS. */
@Injectable()
class Sweeper implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    @Inject(RoutingCommands) private readonly commands: RoutingCommands,
    @Inject(SWEEP_MS) private readonly intervalMs: number,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    if (this.intervalMs <= 0) return;
    const tick = () => {
      if (this.running) return;
      this.running = this.commands
        .sweepDeregistered()
        .then(() => undefined)
        .catch((error: unknown) => this.logger.warn('sweep failed; will try again', { error }))
        .finally(() => (this.running = undefined));
    };
    this.timer = setInterval(tick, this.intervalMs);
    tick();
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}

const STALE_CHECK_MS = Symbol('STALE_CHECK_MS');

/** Looks at the proxy nodes' liveness records every CL_PROXY_STALE_CHECK_MS. */
@Injectable()
class ProxyNodeWatcher implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    @Inject(ProxyNodeWatch) private readonly watch: ProxyNodeWatch,
    @Inject(STALE_CHECK_MS) private readonly intervalMs: number,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    if (this.intervalMs <= 0) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.watch
        .sweep()
        .then(() => undefined)
        .catch((error: unknown) => this.logger.warn('proxy node check failed; will try again', { error }))
        .finally(() => (this.running = undefined));
    }, this.intervalMs);
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}

@Module({})
export class RoutingModule {
  static forRoot(config: RoutingConfig, logger: Logger): DynamicModule {
    return {
      module: RoutingModule,
      imports: [EventStoreModule.forRoot(config, 'routing'), DatabaseModule.forRoot(config, 'routing')],
      controllers: [RoutingController, RoutingEventHandlers],
      providers: [
        { provide: LOGGER, useValue: logger },
        {
          provide: RoutingCommands,
          useFactory: (store: EventStore, dataSource: DataSource) =>
            new RoutingCommands(
              store,
              dataSource,
              {
                rules: { domain: config.CL_DOMAIN, sniZones: config.CL_ROUTING_SNI_ZONES },
                addresses: addressPolicyOf(config),
                claimGraceMs: config.CL_ROUTING_CLAIM_GRACE_MS,
                projectionWaitMs: config.CL_ROUTING_PROJECTION_WAIT_MS,
              },
              logger,
            ),
          inject: [EventStore, DataSource],
        },
        {
          provide: AgentRequestServer,
          useFactory: (connection: NatsConnection, commands: RoutingCommands) =>
            agentRouteRequests(connection, commands, logger.child({ component: 'agent-requests' })),
          inject: [NATS_CONNECTION, RoutingCommands],
        },
        AgentRequestsLifecycle,
        { provide: SWEEP_MS, useValue: config.CL_ROUTING_SWEEP_MS },
        Sweeper,
        {
          provide: ProxyNodeWatch,
          useFactory: (connection: NatsConnection, store: EventStore) =>
            new ProxyNodeWatch(
              connection,
              store,
              { staleAfterMs: config.CL_PROXY_STALE_AFTER_MS, bucket: config.CL_PROXY_KV_BUCKET },
              logger.child({ component: 'proxy-nodes' }),
            ),
          inject: [NATS_CONNECTION, EventStore],
        },
        { provide: STALE_CHECK_MS, useValue: config.CL_PROXY_STALE_CHECK_MS },
        ProxyNodeWatcher,
      ],
      exports: [RoutingCommands],
    };
  }
}
