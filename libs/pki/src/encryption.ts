import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { CaStoreError } from './errors.js';

/**
 * The CA private key is encrypted at rest with AES-256-GCM under a key derived (HKDF-SHA256, fresh random
 * salt per write) from the installation's CA encryption key: 32 random bytes kept in a secret file,
 * separate from the CA directory. The secret is already uniformly random, so HKDF is the right derivation
 * (a password hash like scrypt would only add latency); passphrases are refused rather than stretched.
 */

export const CA_ENCRYPTION_KEY_BYTES = 32;
const KEY_INFO = 'cloudlunacy/pki/ca-private-key/aes-256-gcm/v1';
const KEY_ID_INFO = 'cloudlunacy/pki/ca-encryption-key-id/v1';

const secrets = new WeakMap<CaEncryptionKey, Buffer>();

/** The installation's CA encryption key. Prints as `[redacted]` in logs, JSON and `util.inspect`. */
export class CaEncryptionKey {
  /**
   * A short public identifier of the key (HKDF output, not the key): stored beside the ciphertext so a
   * wrong key is reported as such, distinct from a damaged file.
   */
  readonly id: string;

  private constructor(secret: Buffer) {
    secrets.set(this, secret);
    this.id = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), KEY_ID_INFO, 8)).toString('hex');
  }

  /** Reads the key from its text form (base64 or base64url of 32 bytes, surrounding whitespace ignored). */
  static fromText(text: string, source = 'the CA encryption key'): CaEncryptionKey {
    const trimmed = text.trim();
    const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)
      ? Buffer.from(trimmed, 'base64')
      : /^[A-Za-z0-9_-]+$/.test(trimmed)
        ? Buffer.from(trimmed, 'base64url')
        : undefined;
    if (!bytes || bytes.length !== CA_ENCRYPTION_KEY_BYTES) {
      throw new CaStoreError(
        'key-file',
        `${source} must be ${CA_ENCRYPTION_KEY_BYTES} random bytes in base64 (as written by \`npm run cli -- init\`; ` +
          'a passphrase is not accepted)',
      );
    }
    return new CaEncryptionKey(bytes);
  }

  static generate(): CaEncryptionKey {
    return new CaEncryptionKey(randomBytes(CA_ENCRYPTION_KEY_BYTES));
  }

  toJSON(): string {
    return `[CaEncryptionKey ${this.id} redacted]`;
  }

  toString(): string {
    return this.toJSON();
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}

/** A new CA encryption key in its file form: base64 of 32 random bytes and a newline. */
export function generateCaEncryptionKey(): string {
  return randomBytes(CA_ENCRYPTION_KEY_BYTES).toString('base64') + '\n';
}

/** Where `cli init` keeps the CA encryption key inside an installation's secrets directory. */
export function caEncryptionKeyPath(secretsDir: string): string {
  return join(secretsDir, 'pki', 'ca-encryption.key');
}

/**
 * The installation secret generator for the CA encryption key, shaped like `SecretGenerator` of `#auth`
 * (structurally: it needs only `layout.dir`), so `cli init` can run it with the others.
 */
export const caEncryptionKeySecret = {
  name: 'pki-ca-encryption-key',
  files: (layout: { dir: string }): string[] => [caEncryptionKeyPath(layout.dir)],
  async generate(layout: { dir: string }): Promise<Record<string, string>> {
    return { [caEncryptionKeyPath(layout.dir)]: generateCaEncryptionKey() };
  },
};

/** Reads the CA encryption key from its secret file; errors name the file, never its content. */
export async function readCaEncryptionKey(path: string): Promise<CaEncryptionKey> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CaStoreError(
      'key-file',
      code === 'ENOENT'
        ? `the CA encryption key file ${path} does not exist (create it with \`npm run cli -- init --secrets <dir>\`, or restore it from the secrets backup)`
        : `cannot read the CA encryption key file ${path}: ${code ?? String(error)}`,
      path,
    );
  }
  return CaEncryptionKey.fromText(text, `the CA encryption key file ${path}`);
}

/** The encrypted private key as stored in `ca.json`. Binary fields are base64. */
export interface SealedPrivateKey {
  cipher: 'aes-256-gcm';
  kdf: 'hkdf-sha256';
  /** `CaEncryptionKey.id` of the key that sealed it. */
  keyId: string;
  salt: string;
  iv: string;
  tag: string;
  /** AES-256-GCM of the PKCS#8 DER private key. */
  ciphertext: string;
}

function derivedKey(key: CaEncryptionKey, salt: Buffer): Buffer {
  const secret = secrets.get(key);
  if (!secret) throw new Error('not a CaEncryptionKey');
  return Buffer.from(hkdfSync('sha256', secret, salt, KEY_INFO, 32));
}

/**
 * Encrypts a private key. `associatedData` (authenticated, not encrypted) binds the ciphertext to its
 * context — the CA certificate's fingerprint — so it cannot be paired with another certificate unnoticed.
 */
export function sealPrivateKey(
  privateKey: KeyObject,
  key: CaEncryptionKey,
  associatedData: string,
): SealedPrivateKey {
  const salt = randomBytes(32);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', derivedKey(key, salt), iv);
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const plaintext = privateKey.export({ type: 'pkcs8', format: 'der' });
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  plaintext.fill(0);
  return {
    cipher: 'aes-256-gcm',
    kdf: 'hkdf-sha256',
    keyId: key.id,
    salt: salt.toString('base64'),
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    ciphertext: ciphertext.toString('base64'),
  };
}

/** Decrypts a sealed private key; a wrong key and a damaged file are told apart, each naming `path`. */
export function openPrivateKey(
  sealed: SealedPrivateKey,
  key: CaEncryptionKey,
  associatedData: string,
  path: string,
): KeyObject {
  if (sealed.keyId !== key.id) {
    throw new CaStoreError(
      'wrong-key',
      `the CA private key in ${path} was encrypted with key ${sealed.keyId}, but the configured CA encryption key is ${key.id}: ` +
        'point CL_PKI_CA_KEY_FILE at the right key file (or restore it from the secrets backup)',
      path,
    );
  }
  let plaintext: Buffer;
  try {
    // authTagLength pins the tag to 16 bytes: GCM would otherwise accept a truncated (forgeable) tag.
    const decipher = createDecipheriv(
      'aes-256-gcm',
      derivedKey(key, Buffer.from(sealed.salt, 'base64')),
      Buffer.from(sealed.iv, 'base64'),
      { authTagLength: 16 },
    );
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    plaintext = Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]);
  } catch {
    throw new CaStoreError(
      'corrupt',
      `the CA private key in ${path} does not decrypt although the key id matches: the file was altered or damaged ` +
        '(or its certificate was replaced); restore ca.json from a backup',
      path,
    );
  }
  try {
    return createPrivateKey({ key: plaintext, format: 'der', type: 'pkcs8' });
  } catch {
    throw new CaStoreError('corrupt', `the decrypted CA private key in ${path} is not a PKCS#8 key`, path);
  } finally {
    plaintext.fill(0);
  }
}
