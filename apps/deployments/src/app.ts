import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { aggregateTypeSubjects, DEPLOYMENTS_SERVICE } from '#contracts';
import { connectEventConsumer, EventStore, NATS_CONNECTION } from '#eventstore';
import { commandServerOptions } from '#messaging';
import { PostgresDeadLetters } from '#persistence';
import { NestJsonLogger, type Logger } from '#platform';
import type { DeploymentsConfig } from './config.js';
import { DeploymentsModule } from './deployments.module.js';

/** The durable consumers of deployments on the event log (and the names of their dead letters). */
export const DEPLOYMENTS_CONSUMER = 'deployments';
export const DEPLOYMENTS_AGENTS_CONSUMER = 'deployments-agents';

/**
 * The deployments service: commands over NATS request/reply (`cmd.deployments.*`), agents' deployment
 * requests and output on their own prefixes, and two durable consumers (deployments, and agents for
 * deregistrations: nats-server 2.9 takes one filter per consumer). It serves no HTTP.
 */
export async function createDeploymentsApp(
  config: DeploymentsConfig,
  logger: Logger,
  options: { nestLogs?: boolean } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create(await DeploymentsModule.forRoot(config, logger), {
    logger: options.nestLogs === false ? false : new NestJsonLogger(logger),
  });
  try {
    app.connectMicroservice<MicroserviceOptions>(commandServerOptions(config, DEPLOYMENTS_SERVICE), {
      inheritAppConfig: false,
    });
    const store = app.get(EventStore);
    for (const [durable, type] of [
      [DEPLOYMENTS_CONSUMER, 'deployment'],
      [DEPLOYMENTS_AGENTS_CONSUMER, 'agent'],
    ] as const) {
      connectEventConsumer(app, {
        connection: app.get(NATS_CONNECTION),
        store,
        durable,
        filterSubject: aggregateTypeSubjects(type, store.subjectPrefix),
        deadLetters: app.get(PostgresDeadLetters),
        logger,
      });
    }
    await app.startAllMicroservices();
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}
