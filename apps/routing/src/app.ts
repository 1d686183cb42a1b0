import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { aggregateTypeSubjects, ROUTING_SERVICE } from '#contracts';
import { connectEventConsumer, EventStore, NATS_CONNECTION } from '#eventstore';
import { commandServerOptions } from '#messaging';
import { PostgresDeadLetters } from '#persistence';
import { NestJsonLogger, type Logger } from '#platform';
import type { RoutingConfig } from './config.js';
import { RoutingModule } from './routing.module.js';

/** The durable consumer of routing on the event log (and the name of its dead letters). */
export const ROUTING_CONSUMER = 'routing';

/**
 * The routing service: commands over NATS request/reply (`cmd.routing.*`), agents' route requests on
 * their own prefixes, and a durable consumer of agent events. It serves no HTTP: the Nest app is only
 * the container of these three transports.
 */
export async function createRoutingApp(
  config: RoutingConfig,
  logger: Logger,
  options: { nestLogs?: boolean } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create(RoutingModule.forRoot(config, logger), {
    logger: options.nestLogs === false ? false : new NestJsonLogger(logger),
  });
  try {
    app.connectMicroservice<MicroserviceOptions>(commandServerOptions(config, ROUTING_SERVICE), {
      inheritAppConfig: false,
    });
    const store = app.get(EventStore);
    connectEventConsumer(app, {
      connection: app.get(NATS_CONNECTION),
      store,
      durable: ROUTING_CONSUMER,
      filterSubject: aggregateTypeSubjects('agent', store.subjectPrefix),
      deadLetters: app.get(PostgresDeadLetters),
      logger,
    });
    await app.startAllMicroservices();
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}
