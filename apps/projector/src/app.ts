import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { PROJECTOR_SERVICE } from '#contracts';
import { commandServerOptions } from '#messaging';
import { NestJsonLogger, type Logger } from '#platform';
import type { ProjectorConfig } from './config.js';
import { ProjectorModule } from './projector.module.js';

/**
 * The projector: the live projections follow the log from the start (LiveProjection), and its admin
 * commands arrive over NATS request/reply (`cmd.projector.*`). It serves no HTTP, so it is a microservice.
 */
export async function createProjectorApp(
  config: ProjectorConfig,
  logger: Logger,
  options: { nestLogs?: boolean } = {},
): Promise<INestMicroservice> {
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(
    ProjectorModule.forRoot(config, logger),
    {
      ...commandServerOptions(config, PROJECTOR_SERVICE),
      logger: options.nestLogs === false ? false : new NestJsonLogger(logger),
    },
  );
  await app.listen();
  return app;
}
