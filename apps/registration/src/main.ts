import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { commandServerOptions } from '#messaging';
import { createLogger, loadConfig, NestJsonLogger, stopOnSignals } from '#platform';
import { registrationConfigSchema } from './config.js';
import { RegistrationModule } from './registration.module.js';

const logger = createLogger('registration');
try {
  const config = loadConfig(registrationConfigSchema);
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(
    RegistrationModule.forRoot(config, logger),
    { ...commandServerOptions(config, 'registration'), logger: new NestJsonLogger(logger) },
  );
  stopOnSignals(logger, () => app.close());
  await app.listen();
  logger.info('registration started');
} catch (error) {
  logger.error('registration could not start', { error });
  process.exit(1);
}
