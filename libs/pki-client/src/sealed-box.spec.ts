import { generateKeyPairSync } from 'node:crypto';
import { sealedBox } from '#contracts';
import { generateSealingKeyPair, open, seal, SealedBoxError, type SealedBox } from './sealed-box.js';

const INFO = 'cloudlunacy-secrets-v1:7d1c4c2e-8a40-4c38-9e0c-2c7f6f3a1b11';
const DOES_NOT_OPEN = 'sealed box does not open: wrong key, info or tampered data';

/** The same base64 field with one bit of its decoded bytes flipped. */
const flip = (base64: string, byte: number, mask = 0x01): string => {
  const bytes = Buffer.from(base64, 'base64');
  bytes[byte] ^= mask;
  return bytes.toString('base64');
};

describe('sealed boxes', () => {
  const recipient = generateSealingKeyPair();
  const plaintext = JSON.stringify({ DB_PASSWORD: 'hunter2-hunter2', API_KEY: 'pässwörd "quoted"' });
  const sealed = seal(recipient.publicKey, plaintext, INFO);

  it('makes an X25519 key pair whose public half is SPKI DER in base64', () => {
    expect(recipient.privateKey.asymmetricKeyType).toBe('x25519');
    expect(Buffer.from(recipient.publicKey, 'base64')).toHaveLength(44);
  });

  it('round-trips a string, and matches the wire schema of #contracts', () => {
    expect(sealed.alg).toBe('x25519-hkdf-sha256-aes256gcm');
    expect(sealed.ciphertext).not.toContain('hunter2');
    expect(open(sealed, recipient.privateKey, INFO).toString('utf8')).toBe(plaintext);
    const parsed: SealedBox = sealedBox.parse(sealed);
    expect(parsed).toEqual(sealed);
  });

  it('round-trips binary data and an empty plaintext', () => {
    const binary = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 37) % 256));
    expect(open(seal(recipient.publicKey, binary, INFO), recipient.privateKey, INFO)).toEqual(binary);
    const empty = seal(recipient.publicKey, Buffer.alloc(0), INFO);
    expect(empty.ciphertext).toBe('');
    expect(sealedBox.safeParse(empty).success).toBe(true);
    expect(open(empty, recipient.privateKey, INFO)).toEqual(Buffer.alloc(0));
  });

  it('uses a fresh ephemeral key and nonce for every box', () => {
    const again = seal(recipient.publicKey, plaintext, INFO);
    expect(again.ephemeralPublicKey).not.toBe(sealed.ephemeralPublicKey);
    expect(again.nonce).not.toBe(sealed.nonce);
    expect(again.ciphertext).not.toBe(sealed.ciphertext);
  });

  it('does not open with another private key', () => {
    expect(() => open(sealed, generateSealingKeyPair().privateKey, INFO)).toThrow(
      new SealedBoxError(DOES_NOT_OPEN),
    );
  });

  it('does not open with another info (the AAD and HKDF info)', () => {
    expect(() => open(sealed, recipient.privateKey, `${INFO}x`)).toThrow(DOES_NOT_OPEN);
    expect(() => open(sealed, recipient.privateKey, 'cloudlunacy-secrets-v1:other')).toThrow(DOES_NOT_OPEN);
  });

  it.each([
    ['the tag', { tag: flip(sealed.tag, 0) }],
    ['the ciphertext', { ciphertext: flip(sealed.ciphertext, 3) }],
    ['the nonce', { nonce: flip(sealed.nonce, 11) }],
    ['the ephemeral key', { ephemeralPublicKey: flip(sealed.ephemeralPublicKey, 20) }],
    // X25519 ignores bit 255 of a public key: the same shared secret, refused only because the salt holds the DER.
    ['bit 255 of the ephemeral key', { ephemeralPublicKey: flip(sealed.ephemeralPublicKey, 43, 0x80) }],
  ])('does not open when %s changed', (_what, change) => {
    expect(() => open({ ...sealed, ...change }, recipient.privateKey, INFO)).toThrow(DOES_NOT_OPEN);
  });

  it.each([
    ['another alg', { alg: 'x25519-hkdf-sha256-chacha20' }, /alg must be x25519-hkdf-sha256-aes256gcm/],
    ['a short nonce', { nonce: Buffer.alloc(8).toString('base64') }, /nonce must be 12 bytes of base64/],
    ['a long tag', { tag: Buffer.alloc(20).toString('base64') }, /tag must be 16 bytes of base64/],
    ['a truncated tag', { tag: Buffer.alloc(12).toString('base64') }, /tag must be 16 bytes of base64/],
    ['URL-safe base64', { ciphertext: '-_-_' }, /ciphertext must be base64/],
    // Padding bits set: Buffer would decode it to the same bytes as 'AAAA…AA=='.
    ['non-canonical base64', { tag: `${'A'.repeat(21)}B==` }, /tag must be 16 bytes of base64/],
    [
      'an ephemeral key that is not a key',
      { ephemeralPublicKey: Buffer.alloc(44).toString('base64') },
      /ephemeralPublicKey must be an X25519 SPKI DER key/,
    ],
  ])('refuses %s before any cryptography', (_what, change, message) => {
    const changed = { ...sealed, ...change } as SealedBox;
    expect(() => open(changed, recipient.privateKey, INFO)).toThrow(SealedBoxError);
    expect(() => open(changed, recipient.privateKey, INFO)).toThrow(message);
  });

  it('refuses a recipient key that is not X25519, naming its type', () => {
    const ed25519 = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
    // Same 44-byte SPKI length as X25519: only the algorithm identifier tells them apart.
    expect(ed25519).toHaveLength(44);
    expect(() => seal(ed25519.toString('base64'), plaintext, INFO)).toThrow(
      'the recipient public key must be an X25519 key, not ed25519',
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({
      type: 'spki',
      format: 'der',
    });
    expect(() => seal(rsa.toString('base64'), plaintext, INFO)).toThrow(
      'the recipient public key must be an X25519 SPKI DER key in base64',
    );
    expect(() => seal('not base64!', plaintext, INFO)).toThrow(SealedBoxError);
  });

  it('refuses an ephemeral key that is not X25519, and a private key that is not X25519', () => {
    const ed25519 = generateKeyPairSync('ed25519');
    const ephemeralPublicKey = ed25519.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    expect(() => open({ ...sealed, ephemeralPublicKey }, recipient.privateKey, INFO)).toThrow(
      'sealed box does not open: ephemeralPublicKey must be an X25519 key, not ed25519',
    );
    expect(() => open(sealed, ed25519.privateKey, INFO)).toThrow(
      /the private key must be an X25519 private key/,
    );
  });

  it('refuses an empty info on both sides', () => {
    expect(() => seal(recipient.publicKey, plaintext, '')).toThrow('the info string must not be empty');
    expect(() => open(sealed, recipient.privateKey, '')).toThrow('the info string must not be empty');
  });
});

describe('sealedBox (wire schema)', () => {
  const valid = seal(generateSealingKeyPair().publicKey, 'x', INFO);

  it.each([
    ['an extra field', { extra: 1 }],
    ['another alg', { alg: 'none' }],
    ['a short nonce', { nonce: 'AAAA' }],
    ['an unpadded tag', { tag: valid.tag.replace(/=+$/, '') }],
    ['an oversized ciphertext', { ciphertext: 'A'.repeat(2 * 1024 * 1024 + 4) }],
    ['a ciphertext that is not base64', { ciphertext: 'ab$d' }],
  ])('refuses %s', (_what, change) => {
    expect(sealedBox.safeParse({ ...valid, ...change }).success).toBe(false);
  });
});
