import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { createLogger, loadConfig, NestJsonLogger, stopOnSignals } from '#platform';
import { proxySyncConfigSchema } from './config.js';
import { ProxySyncModule } from './proxy-sync.module.js';

const logger = createLogger('proxy-sync');
try {
  const config = loadConfig(proxySyncConfigSchema);
  const app = await NestFactory.createApplicationContext(ProxySyncModule.forRoot(config, logger), {
    logger: new NestJsonLogger(logger),
  });
  stopOnSignals(logger, () => app.close());
  logger.info('proxy-sync started', { node: config.CL_PROXY_NODE_ID });
} catch (error) {
  logger.error('proxy-sync could not start', { error });
  process.exit(1);
}
