import { resolve } from 'node:path';
import { initSecrets, secretGenerators, type SecretGenerator } from '#auth';
import { caEncryptionKeySecret } from '#pki';
import { UsageError, type CliCommand } from '../command.js';

/** What `cli init` creates: the auth and NATS secrets, then the key that encrypts the CA's private key. */
export const installationGenerators: readonly SecretGenerator[] = [
  ...secretGenerators,
  caEncryptionKeySecret,
];

export const installationCommands: CliCommand[] = [
  {
    path: ['init'],
    summary: 'create the installation secrets that are missing (never overwrites)',
    usage: '--secrets <dir> [--nats-resolver-dir <dir>]',
    options: { secrets: { type: 'string' }, 'nats-resolver-dir': { type: 'string' } },
    async run({ values }) {
      if (typeof values.secrets !== 'string') throw new UsageError('--secrets <dir> is required');
      const resolverDir = values['nats-resolver-dir'];
      const result = await initSecrets(
        resolve(values.secrets),
        { natsResolverDir: typeof resolverDir === 'string' ? resolve(resolverDir) : undefined },
        installationGenerators,
      );
      console.log(
        JSON.stringify({
          secrets: result.dir,
          generated: result.generated,
          kept: result.kept,
          generators: installationGenerators.map((generator) => generator.name),
        }),
      );
    },
  },
];
