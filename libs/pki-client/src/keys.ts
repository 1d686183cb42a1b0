import { createHash, createPrivateKey, generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type forge from 'node-forge';

const generateKeyPairAsync = promisify(generateKeyPair);

/** RSA sizes we generate: X.509 in node-forge is RSA-only, and 2048 bits is the accepted minimum. */
export type RsaKeyBits = 2048 | 3072 | 4096;

export interface GeneratedKeyPair {
  /** PKCS#8 PEM (a PEM block with BEGIN/END PRIVATE KEY lines). Write it with mode 0600; it never leaves this machine. */
  privateKeyPem: string;
  /** SubjectPublicKeyInfo PEM. */
  publicKeyPem: string;
}

/**
 * Generates an RSA key pair with OpenSSL (node:crypto, off the main thread): the same keys node-forge
 * would make, without pure-JS prime search on the event loop.
 */
export async function generateRsaKeyPair(bits: RsaKeyBits = 3072): Promise<GeneratedKeyPair> {
  if (bits !== 2048 && bits !== 3072 && bits !== 4096)
    throw new Error('RSA key size must be 2048, 3072 or 4096');
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicExponent: 0x10001,
  });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Reads a private key PEM (PKCS#8 or PKCS#1) into a KeyObject; the error never contains the key. */
export function readPrivateKey(pem: string | KeyObject): KeyObject {
  if (typeof pem !== 'string') return pem;
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new Error('the private key is not a readable unencrypted PEM key');
  }
}

/** SHA-256 of a DER structure as lower-case hex: the fingerprint of certificates and public keys. */
export function sha256Hex(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** SHA-256 of the SubjectPublicKeyInfo: identifies a key pair without revealing anything about it. */
export function publicKeyFingerprint(key: KeyObject): string {
  return sha256Hex(key.export({ type: 'spki', format: 'der' }));
}

/**
 * Lets node-forge build and sign a structure (certificate, CSR) while the signature itself is made by
 * OpenSSL with `privateKey`: forge hands the DER to be signed to `md.update` and asks `key.sign` for the
 * signature. RSA PKCS#1 v1.5 with SHA-256, i.e. sha256WithRSAEncryption.
 */
export function opensslSigner(privateKey: KeyObject): {
  key: forge.pki.rsa.PrivateKey;
  md: forge.md.MessageDigest;
} {
  if (privateKey.asymmetricKeyType !== 'rsa') throw new Error('only RSA keys can sign X.509 here');
  const chunks: string[] = [];
  const md = {
    algorithm: 'sha256',
    update(bytes: string) {
      chunks.push(bytes);
      return md;
    },
    digest() {
      throw new Error('not a real digest: the signature is computed by OpenSSL');
    },
  };
  const key = {
    sign: () => sign('sha256', Buffer.from(chunks.join(''), 'binary'), privateKey).toString('binary'),
  };
  return {
    key: key as unknown as forge.pki.rsa.PrivateKey,
    md: md as unknown as forge.md.MessageDigest,
  };
}
