import { Inject, Injectable, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createDomainRegistry } from '#contracts';
import { EventStore } from '#eventstore';
import { connectNats, type NatsConfig } from '#messaging';

/** The API's own NATS connection: reading the log, and dead-letter retry requests. */
export const API_NATS = Symbol('API_NATS');

@Injectable()
class ApiNatsShutdown implements OnApplicationShutdown {
  constructor(@Inject(API_NATS) private readonly connection: NatsConnection) {}
  async onApplicationShutdown(): Promise<void> {
    if (!this.connection.isClosed()) await this.connection.drain().catch(() => this.connection.close());
  }
}

/**
 * Read access to the event log for the dashboard's endpoints. The API never appends: it does not
 * provision the stream either (that is the writing services' job), it only reads by sequence.
 */
@Module({})
export class EventLogModule {
  static forRoot(config: NatsConfig): DynamicModule {
    return {
      module: EventLogModule,
      providers: [
        { provide: API_NATS, useFactory: () => connectNats(config, 'api') },
        {
          provide: EventStore,
          useFactory: async (connection: NatsConnection) =>
            new EventStore(connection, await jetstreamManager(connection), {
              registry: createDomainRegistry(),
            }),
          inject: [API_NATS],
        },
        ApiNatsShutdown,
      ],
      exports: [API_NATS, EventStore],
    };
  }
}
