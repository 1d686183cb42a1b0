import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  connect,
  credsAuthenticator,
  jwtAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { initSecrets, secretsLayout, type SecretsLayout } from '#auth';
import { startNats, type TestNats } from './nats.js';
import { makeTempDir } from './processes.js';

export interface TestInstallation {
  dir: string;
  layout: SecretsLayout;
  remove(): Promise<void>;
}

/** A new installation's secrets (what `cli init --secrets <dir>` makes) in a temporary directory. */
export async function createInstallation(): Promise<TestInstallation> {
  const temporary = await makeTempDir('secrets');
  const dir = join(temporary.path, 'secrets');
  await initSecrets(dir);
  return { dir, layout: secretsLayout(dir), remove: () => temporary.remove() };
}

export interface AuthNats extends TestNats {
  /** Connects with a .creds file of the installation (service or system user). */
  connectWithCreds(path: string, options?: Partial<ConnectionOptions>): Promise<NatsConnection>;
  /** Connects as an agent: its user JWT and its own seed. */
  connectWithJwt(jwt: string, seed: string, options?: Partial<ConnectionOptions>): Promise<NatsConnection>;
}

/** A private nats-server with the installation's generated auth config (operator, accounts, full resolver). */
export async function startAuthNats(installation: TestInstallation): Promise<AuthNats> {
  const nats = await startNats({ config: await readFile(installation.layout.natsAuthConfig, 'utf8') });
  const servers = nats.url;
  return Object.assign(nats, {
    connectWithCreds: async (path: string, options: Partial<ConnectionOptions> = {}) =>
      connect({ servers, authenticator: credsAuthenticator(await readFile(path)), ...options }),
    connectWithJwt: (jwt: string, seed: string, options: Partial<ConnectionOptions> = {}) =>
      connect({ servers, authenticator: jwtAuthenticator(jwt, new TextEncoder().encode(seed)), ...options }),
  });
}
