import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import { CaEncryptionKey, generateCaEncryptionKey, openPrivateKey, sealPrivateKey } from './encryption.js';
import { CaStoreError } from './errors.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });

function caught(work: () => unknown): CaStoreError {
  try {
    work();
  } catch (error) {
    expect(error).toBeInstanceOf(CaStoreError);
    return error as CaStoreError;
  }
  throw new Error('expected a CaStoreError');
}

describe('CaEncryptionKey', () => {
  it('reads 32 bytes in base64 or base64url, with whitespace', () => {
    const text = generateCaEncryptionKey();
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    const bytes = Buffer.from(text, 'base64');
    const a = CaEncryptionKey.fromText(text);
    const b = CaEncryptionKey.fromText(`  ${bytes.toString('base64url')}\n`);
    expect(a.id).toBe(b.id);
    expect(a.id).toMatch(/^[0-9a-f]{16}$/);
    expect(CaEncryptionKey.generate().id).not.toBe(a.id);
  });

  it.each([
    ['a passphrase', 'correct horse battery staple'],
    ['16 bytes', Buffer.alloc(16, 1).toString('base64')],
    ['33 bytes', Buffer.alloc(33, 1).toString('base64')],
    ['empty', '\n'],
  ])('refuses %s, naming the source', (_what, text) => {
    const error = caught(() => CaEncryptionKey.fromText(text, 'CL_PKI_CA_KEY_FILE'));
    expect(error.code).toBe('key-file');
    expect(error.message).toMatch(/^CL_PKI_CA_KEY_FILE must be 32 random bytes in base64/);
  });

  it('never prints its secret', () => {
    const text = generateCaEncryptionKey().trim();
    const key = CaEncryptionKey.fromText(text);
    const shown = [JSON.stringify({ key }), String(key), inspect(key), inspect({ nested: key })].join(' ');
    expect(shown).not.toContain(text);
    expect(shown).toContain('redacted');
  });
});

describe('sealPrivateKey / openPrivateKey', () => {
  const key = CaEncryptionKey.generate();
  const sealed = sealPrivateKey(privateKey, key, 'aad');

  it('round-trips, with a fresh salt and IV every time, and no plaintext in the output', () => {
    const opened = openPrivateKey(sealed, key, 'aad', 'ca.json');
    expect(opened.export({ type: 'pkcs8', format: 'der' })).toEqual(pkcs8);
    const again = sealPrivateKey(privateKey, key, 'aad');
    expect(again.salt).not.toBe(sealed.salt);
    expect(again.iv).not.toBe(sealed.iv);
    expect(again.ciphertext).not.toBe(sealed.ciphertext);
    expect(Buffer.from(sealed.ciphertext, 'base64').includes(pkcs8.subarray(0, 24))).toBe(false);
    expect(sealed).toEqual(
      expect.objectContaining({ cipher: 'aes-256-gcm', kdf: 'hkdf-sha256', keyId: key.id }),
    );
  });

  it('tells a wrong key from a damaged file', () => {
    expect(caught(() => openPrivateKey(sealed, CaEncryptionKey.generate(), 'aad', 'ca.json')).code).toBe(
      'wrong-key',
    );
    const flipped = Buffer.from(sealed.ciphertext, 'base64');
    flipped[0]! ^= 1;
    const damaged = { ...sealed, ciphertext: flipped.toString('base64') };
    expect(caught(() => openPrivateKey(damaged, key, 'aad', 'ca.json')).code).toBe('corrupt');
    expect(caught(() => openPrivateKey(sealed, key, 'other aad', 'ca.json')).code).toBe('corrupt');
  });

  it('refuses a truncated authentication tag (GCM would otherwise accept short, forgeable tags)', () => {
    const short = { ...sealed, tag: Buffer.from(sealed.tag, 'base64').subarray(0, 4).toString('base64') };
    expect(caught(() => openPrivateKey(short, key, 'aad', 'ca.json')).code).toBe('corrupt');
  });
});
