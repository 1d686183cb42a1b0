import { z } from 'zod';

/**
 * The wire form of a sealed box (docs/plans/deployments.md §6.3): an answer readable only by the holder
 * of the X25519 key it was sealed to. Sealing and opening are in `#pki-client` (`sealed-box.ts`).
 */
export const SEALED_BOX_ALG = 'x25519-hkdf-sha256-aes256gcm';

/** 2 MiB of base64 (1.5 MiB of plaintext): far above 100 secrets, low enough to bound a reply. */
export const MAX_SEALED_CIPHERTEXT_BASE64 = 2 * 1024 * 1024;

/** Standard alphabet, padded: the form Buffer#toString('base64') writes. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const base64 = (schema: z.ZodString) => schema.regex(BASE64, 'must be standard base64 with padding');

export const sealedBox = z.strictObject({
  alg: z.literal(SEALED_BOX_ALG),
  /** An X25519 SubjectPublicKeyInfo is always 44 bytes of DER: 60 characters. */
  ephemeralPublicKey: base64(z.string().length(60, 'must be an X25519 SPKI key (60 base64 characters)')),
  nonce: base64(z.string().length(16, 'must be 12 bytes (16 base64 characters)')),
  /** Empty for an empty plaintext. */
  ciphertext: base64(
    z
      .string()
      .max(MAX_SEALED_CIPHERTEXT_BASE64, `must be at most ${MAX_SEALED_CIPHERTEXT_BASE64} characters`),
  ),
  tag: base64(z.string().length(24, 'must be 16 bytes (24 base64 characters)')),
});
