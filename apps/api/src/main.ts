import 'reflect-metadata';
import { createLogger, loadConfig, stopOnSignals } from '#platform';
import { createApiApp } from './api.module.js';
import { apiConfigSchema } from './config.js';

const logger = createLogger('api');
try {
  const config = loadConfig(apiConfigSchema);
  const app = await createApiApp(config, logger);
  stopOnSignals(logger, () => app.close());
  await app.listen(config.CL_API_PORT, config.CL_API_HOST);
  logger.info('api listening', { host: config.CL_API_HOST, port: config.CL_API_PORT });
} catch (error) {
  logger.error('api could not start', { error });
  process.exit(1);
}
