import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** One encrypted value as its table keeps it. */
export interface SecretRow {
  appName: string;
  name: string;
  version: number;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** Where the rows live (the `app_secret_values` table): a store that can forget, unlike the log. */
export interface SecretRows {
  insert(row: SecretRow): Promise<void>;
  read(appName: string, refs: readonly { name: string; version: number }[]): Promise<SecretRow[]>;
}

const aadOf = (appName: string, name: string, version: number) =>
  Buffer.from(`cloudlunacy-secret\0${appName}\0${name}\0${version}`, 'utf8');

/**
 * App secret values, encrypted at rest with AES-256-GCM under the installation's secret-store key. The
 * additional data binds each value to its app, name and version: a row copied under another name or
 * version does not decrypt.
 */
export class SecretStore {
  constructor(
    private readonly key: Buffer,
    private readonly rows: SecretRows,
  ) {
    if (key.length !== 32) throw new Error('the secret store key must be 32 bytes');
  }

  static async fromKeyFile(path: string, rows: SecretRows): Promise<SecretStore> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new Error(
        `cannot read the secret store key ${path} (${(error as Error).message}): run \`cli init\` to create it`,
      );
    }
    return new SecretStore(Buffer.from(text.trim(), 'base64'), rows);
  }

  /** Stores a value under its version; storing the same version again keeps the first (a retry). */
  async put(appName: string, name: string, version: number, value: string): Promise<void> {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(aadOf(appName, name, version));
    const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    await this.rows.insert({ appName, name, version, nonce, ciphertext, tag: cipher.getAuthTag() });
  }

  /** The values of exactly these versions; a version that is gone is named in the error. */
  async values(
    appName: string,
    refs: readonly { name: string; version: number }[],
  ): Promise<Record<string, string>> {
    const rows = await this.rows.read(appName, refs);
    const values: Record<string, string> = {};
    for (const ref of refs) {
      const row = rows.find((candidate) => candidate.name === ref.name && candidate.version === ref.version);
      if (!row) throw new MissingSecretError(ref.name, ref.version);
      const decipher = createDecipheriv('aes-256-gcm', this.key, row.nonce);
      decipher.setAAD(aadOf(appName, row.name, row.version));
      decipher.setAuthTag(row.tag);
      values[ref.name] = Buffer.concat([decipher.update(row.ciphertext), decipher.final()]).toString('utf8');
    }
    return values;
  }
}

export class MissingSecretError extends Error {
  constructor(
    readonly secret: string,
    readonly version: number,
  ) {
    super(`secret ${secret} version ${version} is gone; set it again and deploy`);
    this.name = 'MissingSecretError';
  }
}
