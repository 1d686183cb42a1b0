import 'reflect-metadata';
import { createLogger, loadConfig, stopOnSignals } from '#platform';
import { createDeploymentsApp } from './app.js';
import { deploymentsConfigSchema } from './config.js';

const logger = createLogger('deployments');
try {
  const config = loadConfig(deploymentsConfigSchema);
  const app = await createDeploymentsApp(config, logger);
  stopOnSignals(logger, () => app.close());
  logger.info('deployments started', {
    domain: config.CL_DOMAIN,
    verifyUrls: config.CL_DEPLOY_VERIFY_URLS,
    fileRoots: config.CL_DEPLOY_FILE_ROOTS,
  });
  if (config.CL_DEPLOY_VERIFY_URLS.length === 0) {
    logger.warn('CL_DEPLOY_VERIFY_URLS is empty: deployments will be recorded as verified without a probe');
  }
} catch (error) {
  logger.error('deployments could not start', { error });
  process.exit(1);
}
