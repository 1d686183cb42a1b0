import 'reflect-metadata';
import { createLogger, loadConfig, stopOnSignals } from '#platform';
import { createRegistrationApp } from './app.js';
import { registrationConfigSchema } from './config.js';

const logger = createLogger('registration');
try {
  const config = loadConfig(registrationConfigSchema);
  const app = await createRegistrationApp(config, logger);
  stopOnSignals(logger, () => app.close());
  logger.info('registration started');
} catch (error) {
  logger.error('registration could not start', { error });
  process.exit(1);
}
