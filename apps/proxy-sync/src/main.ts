import 'reflect-metadata';
import { createLogger, loadConfig, stopOnSignals } from '#platform';
import { createProxySyncApp } from './app.js';
import { proxySyncConfigSchema } from './config.js';

const logger = createLogger('proxy-sync');
try {
  const config = loadConfig(proxySyncConfigSchema);
  const app = await createProxySyncApp(config, logger);
  stopOnSignals(logger, () => app.close());
  logger.info('proxy-sync started', { node: config.CL_PROXY_NODE_ID });
} catch (error) {
  logger.error('proxy-sync could not start', { error });
  process.exit(1);
}
