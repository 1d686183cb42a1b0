import { DomainError, type SecretsRequest } from '#contracts';
import { seal } from '#pki-client';
import { checkLeaseHolder, isTerminal } from './domain/deployment.js';
import type { DeploymentDecisions } from './decisions.js';
import { MissingSecretError, type SecretStore } from './secret-store.js';

/**
 * Secret values for the agent that runs the app, at the moment it starts a release: sealed to a key the
 * agent made for this one request, so only the process that asked can open the answer, even on a broker
 * connection without TLS. Only the versions the deployment (or the serving release) names are given.
 */
export class SecretDelivery {
  constructor(
    private readonly commands: DeploymentDecisions,
    private readonly store: SecretStore,
  ) {}

  async deliver(agentId: string, request: SecretsRequest) {
    const { appName, refs, info } = await this.authorise(agentId, request);
    let values: Record<string, string>;
    try {
      values = await this.store.values(appName, refs);
    } catch (error) {
      if (error instanceof MissingSecretError) throw new DomainError('conflict', error.message, 'secrets');
      throw error;
    }
    try {
      return { sealed: seal(request.publicKey, JSON.stringify(values), info), names: Object.keys(values) };
    } catch {
      throw new DomainError(
        'invalid',
        'publicKey must be an X25519 public key (SPKI DER, base64)',
        'publicKey',
      );
    }
  }

  private async authorise(agentId: string, request: SecretsRequest) {
    if ('deploymentId' in request) {
      const deployment = await this.commands.deployment(request.deploymentId);
      checkLeaseHolder(deployment, agentId, request.deploymentId, request.leaseId);
      return {
        appName: deployment.appName,
        refs: deployment.config.secrets,
        info: `cloudlunacy-secrets-v1:${request.deploymentId}`,
      };
    }
    // Restarting the serving release (after an agent restart): only the app's current one, on its agent.
    const app = await this.commands.app(request.appName);
    if (app.status !== 'live' || app.agentId !== agentId || app.current?.releaseId !== request.releaseId) {
      throw new DomainError(
        'forbidden',
        `agent ${agentId} does not serve release ${request.releaseId}`,
        'releaseId',
      );
    }
    const deployment = await this.commands.deployment(request.releaseId);
    if (deployment.status === 'absent' || !isTerminal(deployment.status)) {
      throw new DomainError('conflict', `release ${request.releaseId} is not serving`, 'releaseId');
    }
    // The versions the serving release was deployed with (a rollback's are its own deployment's).
    return {
      appName: app.appName,
      refs: deployment.config.secrets,
      info: `cloudlunacy-secrets-v1:${request.releaseId}`,
    };
  }
}
