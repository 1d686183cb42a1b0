import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createAccount, createOperator, createUser } from '@nats-io/nkeys';
import {
  accountJwt,
  keyFromSeed,
  natsAuthConfig,
  operatorJwt,
  seedOf,
  serviceUserCreds,
  systemAccountJwt,
  systemUserCreds,
  type NatsKeys,
} from './nats-claims.js';
import { secretsLayout, type SecretsLayout } from './layout.js';
import { SERVICE_USERS, servicePermissions } from './service-permissions.js';

export interface SecretsOptions {
  /** Where nats-server keeps account JWTs it receives at run time (default `<dir>/nats/resolver`). */
  natsResolverDir?: string;
}

/**
 * One kind of installation secret. `files` are the paths it writes; it runs only when none of them
 * exists, and refuses when only some do (a half-written set must be looked at, not papered over).
 * Generators run in order and may read what earlier ones wrote. Add new secrets (the CA key, …) here.
 */
export interface SecretGenerator {
  name: string;
  files(layout: SecretsLayout): string[];
  generate(layout: SecretsLayout, options: SecretsOptions): Promise<Record<string, string | Uint8Array>>;
}

async function readSeed(path: string) {
  return keyFromSeed(await readFile(path, 'utf8'));
}

export async function readNatsKeys(layout: SecretsLayout): Promise<NatsKeys> {
  return {
    operator: await readSeed(layout.operatorSeed),
    operatorSigning: await readSeed(layout.operatorSigningSeed),
    systemAccount: await readSeed(layout.systemAccountSeed),
    account: await readSeed(layout.accountSeed),
    accountSigning: await readSeed(layout.accountSigningSeed),
    agentSigning: await readSeed(layout.agentSigningSeed),
    agentAccounts: Buffer.from((await readFile(layout.agentAccountsKey, 'utf8')).trim(), 'base64url'),
  };
}

export const secretGenerators: SecretGenerator[] = [
  {
    name: 'jwt-signing-key',
    files: (layout) => [layout.jwtPrivateKey, layout.jwtPublicKey],
    async generate(layout) {
      // ES256: access, refresh-bound and admin tokens are verified with `algorithms: ['ES256']`.
      const { privateKey, publicKey } = generateKeyPairSync('ec', {
        namedCurve: 'P-256',
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        publicKeyEncoding: { type: 'spki', format: 'pem' },
      });
      return { [layout.jwtPrivateKey]: privateKey, [layout.jwtPublicKey]: publicKey };
    },
  },
  {
    name: 'nats-keys',
    files: (layout) => [
      layout.operatorSeed,
      layout.operatorSigningSeed,
      layout.systemAccountSeed,
      layout.accountSeed,
      layout.accountSigningSeed,
    ],
    async generate(layout) {
      return {
        [layout.operatorSeed]: seedOf(createOperator()) + '\n',
        [layout.operatorSigningSeed]: seedOf(createOperator()) + '\n',
        [layout.systemAccountSeed]: seedOf(createAccount()) + '\n',
        [layout.accountSeed]: seedOf(createAccount()) + '\n',
        [layout.accountSigningSeed]: seedOf(createAccount()) + '\n',
      };
    },
  },
  {
    // Agents are users of accounts of their own (one per agent), signed by this key.
    name: 'nats-agent-keys',
    files: (layout) => [layout.agentSigningSeed, layout.agentAccountsKey],
    async generate(layout) {
      return {
        [layout.agentSigningSeed]: seedOf(createAccount()) + '\n',
        [layout.agentAccountsKey]: randomBytes(32).toString('base64url') + '\n',
      };
    },
  },
  {
    name: 'nats-jwts',
    files: (layout) => [layout.operatorJwt, layout.systemAccountJwt, layout.accountJwt],
    async generate(layout) {
      const keys = await readNatsKeys(layout);
      return {
        [layout.operatorJwt]: (await operatorJwt(keys)) + '\n',
        [layout.systemAccountJwt]: (await systemAccountJwt(keys)) + '\n',
        [layout.accountJwt]: (await accountJwt(keys)) + '\n',
      };
    },
  },
  {
    name: 'nats-credentials',
    files: (layout) => [layout.systemCreds, layout.adminCreds],
    async generate(layout) {
      const keys = await readNatsKeys(layout);
      return {
        [layout.systemCreds]: await systemUserCreds(keys, createUser()),
        [layout.adminCreds]: await serviceUserCreds(keys, createUser(), 'installation-admin'),
      };
    },
  },
  // One user per process, each allowed only its own subjects and JetStream calls. A generator per user:
  // an installation that gains a service gets its credentials without touching the others'.
  ...SERVICE_USERS.map((user): SecretGenerator => ({
    name: `nats-service-credentials-${user}`,
    files: (layout) => [layout.credsOf(user)],
    async generate(layout) {
      const keys = await readNatsKeys(layout);
      return {
        [layout.credsOf(user)]: await serviceUserCreds(keys, createUser(), user, servicePermissions(user)),
      };
    },
  })),
  {
    // Decrypts app secret values at rest; only the deployments service reads it.
    name: 'deployment-secret-store-key',
    files: (layout) => [layout.deploymentSecretStoreKey],
    async generate(layout) {
      return { [layout.deploymentSecretStoreKey]: randomBytes(32).toString('base64') + '\n' };
    },
  },
  {
    name: 'nats-server-auth-config',
    files: (layout) => [layout.natsAuthConfig],
    async generate(layout, options) {
      const keys = await readNatsKeys(layout);
      const read = async (path: string) => (await readFile(path, 'utf8')).trim();
      return {
        [layout.natsAuthConfig]: natsAuthConfig({
          operatorJwt: await read(layout.operatorJwt),
          systemAccountPublicKey: keys.systemAccount.getPublicKey(),
          accountPublicKey: keys.account.getPublicKey(),
          systemAccountJwt: await read(layout.systemAccountJwt),
          accountJwt: await read(layout.accountJwt),
          resolverDir: options.natsResolverDir ?? layout.natsResolverDir,
        }),
      };
    },
  },
];

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

export interface InitResult {
  dir: string;
  generated: string[];
  kept: string[];
}

/**
 * Creates every missing secret of an installation in `dir`. Idempotent: what exists is kept, never
 * overwritten (files are opened with O_EXCL). Files are 0600, directories 0700.
 */
export async function initSecrets(
  dir: string,
  options: SecretsOptions = {},
  generators: readonly SecretGenerator[] = secretGenerators,
): Promise<InitResult> {
  const layout = secretsLayout(dir);
  const result: InitResult = { dir, generated: [], kept: [] };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const generator of generators) {
    const files = generator.files(layout);
    const present = await Promise.all(files.map(exists));
    if (present.every(Boolean)) {
      result.kept.push(generator.name);
      continue;
    }
    if (present.some(Boolean)) {
      const missing = files.filter((_, index) => !present[index]);
      throw new Error(
        `secrets "${generator.name}" are incomplete in ${dir}: ${missing.join(', ')} missing while the others exist. ` +
          'Restore the missing files from a backup, or move the set away to generate a new one (every credential made from it stops working).',
      );
    }
    const contents = await generator.generate(layout, options);
    for (const [path, content] of Object.entries(contents)) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFile(path, content, { mode: 0o600, flag: 'wx' });
      await chmod(path, 0o600);
    }
    result.generated.push(generator.name);
  }
  if (!(await exists(options.natsResolverDir ?? layout.natsResolverDir))) {
    await mkdir(options.natsResolverDir ?? layout.natsResolverDir, { recursive: true, mode: 0o700 });
  }
  return result;
}
