import { Inject, Injectable, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { createDomainRegistry, EVENTS_STREAM, EVENTS_SUBJECT_PREFIX, type EventRegistry } from '#contracts';
import { connectNats, natsConfigSchema } from '#messaging';
import { createLogger, env, retryWhileTransient, type Logger } from '#platform';
import { EventStore } from './event-store.js';
import { provisionAppendOnlyStream } from './streams.js';

export const eventStoreConfigSchema = natsConfigSchema.extend({
  CL_EVENTS_REPLICAS: env.int(1),
  /** How long a command id is remembered: a client retrying within it appends nothing new. */
  CL_EVENTS_DUPLICATE_WINDOW_MS: env.int(2 * 60 * 60 * 1000),
  /**
   * How long an append waits for the stream's acknowledgement. Right after a broker restart, JetStream
   * answers nothing until it has recovered its streams; a writer that retries anyway (proxy-sync's
   * reports, in its next pass) is better served by a shorter wait.
   */
  CL_EVENTS_PUBLISH_TIMEOUT_MS: env.int(5_000).pipe(z.number().int().min(100)),
});
export type EventStoreConfig = z.output<typeof eventStoreConfigSchema>;

/** Provisions the EVENTS stream (refusing an unsafe one) and returns the store over it. */
export async function openEventStore(
  connection: NatsConnection,
  config: EventStoreConfig,
  registry: EventRegistry = createDomainRegistry(),
  logger: Logger = createLogger('eventstore'),
): Promise<EventStore> {
  const jsm = await retryWhileTransient(
    `JetStream to provision the ${EVENTS_STREAM} stream`,
    async () => {
      const manager = await jetstreamManager(connection);
      const { notUpdated } = await provisionAppendOnlyStream(manager, {
        name: EVENTS_STREAM,
        subjects: [`${EVENTS_SUBJECT_PREFIX}.>`],
        replicas: config.CL_EVENTS_REPLICAS,
        duplicateWindowMs: config.CL_EVENTS_DUPLICATE_WINDOW_MS,
        description: 'CloudLunacy event log (append-only)',
      });
      if (notUpdated) logger.warn('stream settings left as they are', { reason: notUpdated });
      return manager;
    },
    logger,
  );
  return new EventStore(connection, jsm, { registry, publishTimeoutMs: config.CL_EVENTS_PUBLISH_TIMEOUT_MS });
}

export const NATS_CONNECTION = Symbol('NATS_CONNECTION');

@Injectable()
class NatsShutdown implements OnApplicationShutdown {
  constructor(@Inject(NATS_CONNECTION) private readonly connection: NatsConnection) {}
  async onApplicationShutdown(): Promise<void> {
    if (!this.connection.isClosed()) await this.connection.drain().catch(() => this.connection.close());
  }
}

/** Gives a Nest app its NATS connection and the event store. */
@Module({})
export class EventStoreModule {
  static forRoot(config: EventStoreConfig, serviceName: string): DynamicModule {
    return {
      module: EventStoreModule,
      global: true,
      providers: [
        {
          provide: NATS_CONNECTION,
          useFactory: () => connectNats(config, serviceName),
        },
        {
          provide: EventStore,
          useFactory: (connection: NatsConnection) =>
            openEventStore(connection, config, createDomainRegistry(), createLogger(serviceName)),
          inject: [NATS_CONNECTION],
        },
        NatsShutdown,
      ],
      exports: [NATS_CONNECTION, EventStore],
    };
  }
}
