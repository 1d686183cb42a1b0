import { join } from 'node:path';
import type { ServiceUser } from './service-permissions.js';

/**
 * Where an installation's secrets live inside its secrets directory. Every file is written once by
 * `cli init --secrets <dir>` (mode 0600, never overwritten) and read by the services that need it:
 *
 * - the API and the CLI sign access/admin tokens with `auth/jwt-signing-key.pem`;
 * - registration makes each agent's own account (its identity derived from `nats/agent-accounts.key`),
 *   signs it with `nats/operator-signing.nk` and pushes it over `nats/system.creds`, and signs agent
 *   users with `nats/agent-signing.nk`; service users are signed with `nats/account-signing.nk`;
 * - each service, and the CLI, connects to NATS as a user of its own, `nats/<user>.creds`, allowed only
 *   what it needs (service-permissions.ts); `nats/installation-admin.creds` may do everything in the
 *   services' account (edit or delete streams) and nothing runs with it;
 * - nats-server includes `nats/auth.conf`.
 */
export function secretsLayout(dir: string) {
  return {
    dir,
    authDir: join(dir, 'auth'),
    natsDir: join(dir, 'nats'),
    jwtPrivateKey: join(dir, 'auth', 'jwt-signing-key.pem'),
    jwtPublicKey: join(dir, 'auth', 'jwt-signing-key.pub.pem'),
    operatorSeed: join(dir, 'nats', 'operator.nk'),
    operatorSigningSeed: join(dir, 'nats', 'operator-signing.nk'),
    systemAccountSeed: join(dir, 'nats', 'system-account.nk'),
    accountSeed: join(dir, 'nats', 'account.nk'),
    accountSigningSeed: join(dir, 'nats', 'account-signing.nk'),
    agentSigningSeed: join(dir, 'nats', 'agent-signing.nk'),
    agentAccountsKey: join(dir, 'nats', 'agent-accounts.key'),
    operatorJwt: join(dir, 'nats', 'operator.jwt'),
    systemAccountJwt: join(dir, 'nats', 'system-account.jwt'),
    accountJwt: join(dir, 'nats', 'account.jwt'),
    systemCreds: join(dir, 'nats', 'system.creds'),
    /** The credential of one process (`registration`, `api`, `cli-read`, …). */
    credsOf: (user: ServiceUser) => join(dir, 'nats', `${user}.creds`),
    adminCreds: join(dir, 'nats', 'installation-admin.creds'),
    natsAuthConfig: join(dir, 'nats', 'auth.conf'),
    natsResolverDir: join(dir, 'nats', 'resolver'),
    /** AES-256 key of the deployments service's secret store (app secret values, encrypted at rest). */
    deploymentSecretStoreKey: join(dir, 'deployments', 'secret-store.key'),
  };
}
export type SecretsLayout = ReturnType<typeof secretsLayout>;
