import 'reflect-metadata';
import { createLogger, loadConfig, stopOnSignals } from '#platform';
import { createRoutingApp } from './app.js';
import { routingConfigSchema } from './config.js';

const logger = createLogger('routing');
try {
  const config = loadConfig(routingConfigSchema);
  const app = await createRoutingApp(config, logger);
  stopOnSignals(logger, () => app.close());
  logger.info('routing started', { domain: config.CL_DOMAIN, sniZones: config.CL_ROUTING_SNI_ZONES });
} catch (error) {
  logger.error('routing could not start', { error });
  process.exit(1);
}
