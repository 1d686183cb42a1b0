import 'reflect-metadata';
import { loadPkiConfig } from '#pki';
import { createLogger, loadConfig, stopOnSignals } from '#platform';
import { createCertificatesApp } from './app.js';
import { certificatesConfigSchema } from './config.js';

const logger = createLogger('certificates');
try {
  const config = loadConfig(certificatesConfigSchema);
  const pki = loadPkiConfig();
  const app = await createCertificatesApp(config, pki, logger);
  stopOnSignals(logger, () => app.close());
  logger.info('certificates started', { domain: pki.domain, pkiDir: pki.dir });
} catch (error) {
  logger.error('certificates could not start', { error });
  process.exit(1);
}
