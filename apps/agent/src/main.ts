import { parseArgs } from 'node:util';
import { mkdir } from 'node:fs/promises';
import { createLogger, stopOnSignals } from '#platform';
import { Agent, AGENT_VERSION, EXIT_CODES, FatalAgentError } from './agent.js';
import { CertificateManager } from './certificates/manager.js';
import { loadAgentConfig } from './config.js';
import { DeploymentManager } from './deployments/manager.js';
import { defaultHandlers } from './handlers.js';

const logger = createLogger('agent');
try {
  const { values } = parseArgs({ options: { config: { type: 'string' } }, strict: true });
  const path = values.config ?? process.env.CL_AGENT_CONFIG ?? '/etc/cloudlunacy/agent.json';
  const config = await loadAgentConfig(path);
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const handlers = defaultHandlers();
  const certificates = new CertificateManager(
    config.certificates,
    config.stateDir,
    () => agent.agentId ?? '',
    logger.child({ component: 'certificates' }),
  ).register(handlers);
  const deployments = new DeploymentManager(
    config,
    `cloudlunacy-agent/${AGENT_VERSION}`,
    logger.child({ component: 'deployments' }),
    config.certificates.enabled ? certificates : undefined,
  ).register(handlers);
  const agent: Agent = new Agent(config, handlers, logger, undefined, [certificates, deployments]);
  stopOnSignals(logger, () => agent.stop());
  void agent.terminated.then(async (reason) => {
    logger.error(reason.message);
    await agent.stop();
    process.exit(EXIT_CODES.credentialsRefused);
  });
  await agent.start();
} catch (error) {
  logger.error(error instanceof FatalAgentError ? error.message : 'agent could not start', { error });
  process.exit(error instanceof FatalAgentError ? EXIT_CODES.enrollmentRefused : 1);
}
