import 'reflect-metadata';
import { createLogger, loadConfig, stopOnSignals } from '#platform';
import { createProjectorApp } from './app.js';
import { projectorConfigSchema } from './config.js';
import { LiveProjection } from './live-projection.js';

const logger = createLogger('projector');
try {
  const config = loadConfig(projectorConfigSchema);
  const app = await createProjectorApp(config, logger);
  stopOnSignals(logger, () => app.close());
  logger.info('projector started');
  await app.get(LiveProjection).failure.catch(async () => {
    await app.close().catch(() => undefined);
    process.exit(1);
  });
} catch (error) {
  logger.error('projector could not start', { error });
  process.exit(1);
}
