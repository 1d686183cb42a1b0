import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { commandServerOptions } from '#messaging';
import { NestJsonLogger, type Logger } from '#platform';
import type { RegistrationConfig } from './config.js';
import { RegistrationModule } from './registration.module.js';

/**
 * The registration service: commands over NATS request/reply (`cmd.registration.*`) and the agents'
 * heartbeats. It consumes no events, so unlike routing and certificates it is a plain microservice: it
 * starts answering once the broker is repaired (the module's bootstrap) and liveness tracking runs.
 */
export async function createRegistrationApp(
  config: RegistrationConfig,
  logger: Logger,
  options: { nestLogs?: boolean } = {},
): Promise<INestMicroservice> {
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(
    RegistrationModule.forRoot(config, logger),
    {
      ...commandServerOptions(config, 'registration'),
      logger: options.nestLogs === false ? false : new NestJsonLogger(logger),
    },
  );
  try {
    await app.listen();
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}
