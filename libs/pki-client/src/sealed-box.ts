import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { MAX_SEALED_CIPHERTEXT_BASE64, SEALED_BOX_ALG } from '#contracts';

/**
 * Sealed boxes (docs/plans/deployments.md §6.3): the deployments service seals secret values to an
 * X25519 key the agent made for that one request, so the reply is readable only by the process that
 * asked, although it crosses a broker that runs without TLS.
 *
 * ephemeral X25519 → diffieHellman → HKDF-SHA256(salt = ephemeralPub DER ‖ recipientPub DER, info)
 * → AES-256-GCM (random 12-byte nonce, AAD = info). The salt binds both keys, the info the purpose.
 */

/** Plain fields, all standard base64. The wire schema is `sealedBox` in `#contracts`. */
export interface SealedBox {
  alg: typeof SEALED_BOX_ALG;
  /** SPKI DER of the sender's one-time key. */
  ephemeralPublicKey: string;
  nonce: string;
  ciphertext: string;
  tag: string;
}

export interface SealingKeyPair {
  /** SPKI DER, base64: what the agent sends. */
  publicKey: string;
  /** Stays in memory, for one `open`. */
  privateKey: KeyObject;
}

/** What fits in the ciphertext bound of `sealedBox` (base64 is 4 characters per 3 bytes). */
export const MAX_SEALED_PLAINTEXT_BYTES = (MAX_SEALED_CIPHERTEXT_BASE64 / 4) * 3;

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** X25519 SubjectPublicKeyInfo: a 12-byte header and the 32-byte key. */
const X25519_SPKI_BYTES = 44;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const REFUSED = 'sealed box does not open';
/** The one message for every failure to authenticate, so that it tells an attacker nothing. */
const DOES_NOT_OPEN = `${REFUSED}: wrong key, info or tampered data`;

export class SealedBoxError extends Error {
  override readonly name = 'SealedBoxError';
}

export function generateSealingKeyPair(): SealingKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return { publicKey: spki(publicKey).toString('base64'), privateKey };
}

export function seal(
  recipientPublicKeySpkiBase64: string,
  plaintext: Buffer | string,
  info: string,
): SealedBox {
  const recipient = readX25519PublicKey(recipientPublicKeySpkiBase64, 'the recipient public key');
  const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
  if (data.length > MAX_SEALED_PLAINTEXT_BYTES)
    throw new SealedBoxError(
      `a sealed box holds at most ${MAX_SEALED_PLAINTEXT_BYTES} bytes, not ${data.length}`,
    );
  const aad = infoBytes(info);
  const ephemeral = generateKeyPairSync('x25519');
  const ephemeralDer = spki(ephemeral.publicKey);
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient });
  } catch {
    // OpenSSL refuses a low-order point (an all-zero shared secret).
    throw new SealedBoxError('the recipient public key is not usable for X25519');
  }
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(shared, ephemeralDer, spki(recipient), aad), nonce);
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(data), cipher.final()]);
  return {
    alg: SEALED_BOX_ALG,
    ephemeralPublicKey: ephemeralDer.toString('base64'),
    nonce: nonce.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  };
}

/** The plaintext, or a SealedBoxError; the shape is checked before any cryptography runs. */
export function open(sealed: SealedBox, privateKey: KeyObject, info: string): Buffer {
  if (sealed === null || typeof sealed !== 'object') throw new SealedBoxError(`${REFUSED}: not an object`);
  if (sealed.alg !== SEALED_BOX_ALG) throw new SealedBoxError(`${REFUSED}: alg must be ${SEALED_BOX_ALG}`);
  const nonce = decodeBase64(sealed.nonce, `${REFUSED}: nonce`, NONCE_BYTES);
  const tag = decodeBase64(sealed.tag, `${REFUSED}: tag`, TAG_BYTES);
  const ciphertext = decodeBase64(sealed.ciphertext, `${REFUSED}: ciphertext`);
  const ephemeral = readX25519PublicKey(sealed.ephemeralPublicKey, `${REFUSED}: ephemeralPublicKey`);
  if (privateKey?.type !== 'private' || privateKey.asymmetricKeyType !== 'x25519')
    throw new SealedBoxError(`${REFUSED}: the private key must be an X25519 private key`);
  const aad = infoBytes(info);
  try {
    const shared = diffieHellman({ privateKey, publicKey: ephemeral });
    const key = deriveKey(shared, spki(ephemeral), spki(createPublicKey(privateKey)), aad);
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new SealedBoxError(DOES_NOT_OPEN);
  }
}

function deriveKey(shared: Buffer, ephemeralDer: Buffer, recipientDer: Buffer, info: Buffer): Buffer {
  return Buffer.from(
    hkdfSync('sha256', shared, Buffer.concat([ephemeralDer, recipientDer]), info, KEY_BYTES),
  );
}

function spki(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/** An empty info would let a box sealed for one purpose open for any other that forgot to set it. */
function infoBytes(info: string): Buffer {
  if (typeof info !== 'string' || info.length === 0)
    throw new SealedBoxError('the info string must not be empty');
  return Buffer.from(info, 'utf8');
}

function readX25519PublicKey(base64: unknown, what: string): KeyObject {
  const der = decodeBase64(base64, what, X25519_SPKI_BYTES, 'must be an X25519 SPKI DER key in base64');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    throw new SealedBoxError(`${what} must be an X25519 SPKI DER key in base64`);
  }
  if (key.asymmetricKeyType !== 'x25519')
    throw new SealedBoxError(`${what} must be an X25519 key, not ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

/**
 * Canonical standard base64 only, and the exact length when one is given: checked before use.
 * `what` names the field in the error, e.g. "sealed box does not open: nonce".
 */
function decodeBase64(value: unknown, what: string, bytes?: number, expected?: string): Buffer {
  const refuse = () =>
    new SealedBoxError(
      `${what} ${expected ?? (bytes === undefined ? 'must be base64' : `must be ${bytes} bytes of base64`)}`,
    );
  const maxChars = bytes === undefined ? MAX_SEALED_CIPHERTEXT_BASE64 : Math.ceil(bytes / 3) * 4;
  if (typeof value !== 'string' || value.length > maxChars || value.length % 4 !== 0 || !BASE64.test(value))
    throw refuse();
  const decoded = Buffer.from(value, 'base64');
  if (decoded.toString('base64') !== value || (bytes !== undefined && decoded.length !== bytes))
    throw refuse();
  return decoded;
}
