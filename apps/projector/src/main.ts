import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { commandServerOptions } from '#messaging';
import { createLogger, loadConfig, NestJsonLogger, stopOnSignals } from '#platform';
import { projectorConfigSchema } from './config.js';
import { ProjectorModule } from './projector.module.js';
import { ProjectorService } from './projector.service.js';

const logger = createLogger('projector');
try {
  const config = loadConfig(projectorConfigSchema);
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(
    ProjectorModule.forRoot(config, logger),
    {
      ...commandServerOptions(config, 'projector'),
      logger: new NestJsonLogger(logger),
    },
  );
  await app.listen();
  stopOnSignals(logger, () => app.close());
  logger.info('projector started');
  await app.get(ProjectorService).failure.catch(async () => {
    await app.close().catch(() => undefined);
    process.exit(1);
  });
} catch (error) {
  logger.error('projector could not start', { error });
  process.exit(1);
}
