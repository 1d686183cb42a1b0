import { copyFile, lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initSecrets } from '#auth';
import {
  CaEncryptionKey,
  caEncryptionKeyPath,
  caEncryptionKeySecret,
  CaStore,
  CaStoreError,
  generateCaEncryptionKey,
  issueCertificate,
  parseCsr,
  readCaEncryptionKey,
} from '#pki';
import { createCsr, generateRsaKeyPair } from '#pki-client';
import { makeTempDir } from '../harness/processes.js';
import { openssl, put } from './helpers.js';

const domain = 'example.test';
let temp: { path: string; remove(): Promise<void> };
let key: CaEncryptionKey;
let keyFile: string;
let dir: string;
let fingerprint: string;
let leafKey: string;

beforeAll(async () => {
  temp = await makeTempDir('pki-store');
  keyFile = await put(temp.path, 'ca-encryption.key', generateCaEncryptionKey());
  key = await readCaEncryptionKey(keyFile);
  dir = join(temp.path, 'ca');
  const opened = await new CaStore({ dir, encryptionKey: key }).openOrCreate({ installation: domain });
  expect(opened.created).toBe(true);
  fingerprint = opened.ca.fingerprint;
  ({ privateKeyPem: leafKey } = await generateRsaKeyPair(2048));
});
afterAll(async () => {
  await temp?.remove();
});

async function storeError(promise: Promise<unknown>): Promise<CaStoreError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(CaStoreError);
    return error as CaStoreError;
  }
  throw new Error('expected a CaStoreError');
}

/** A copy of the CA directory to damage or rotate without touching the original. */
async function copyOfStore(name: string): Promise<string> {
  const target = join(temp.path, name);
  await mkdir(target, { mode: 0o700 });
  await copyFile(join(dir, 'ca.json'), join(target, 'ca.json'));
  return target;
}

test('files on disk: ca.json 0600 with no readable private key, ca.pem 0644, directory 0700', async () => {
  expect((await stat(dir)).mode & 0o777).toBe(0o700);
  expect((await stat(join(dir, 'ca.json'))).mode & 0o777).toBe(0o600);
  expect((await stat(join(dir, 'ca.pem'))).mode & 0o777).toBe(0o644);
  const entries = await readdir(dir);
  expect(entries.sort()).toEqual(['ca.json', 'ca.pem']); // no temporary file left behind
  for (const entry of entries) {
    const content = await readFile(join(dir, entry), 'utf8');
    expect(content).not.toMatch(/PRIVATE KEY/);
  }
  const file = JSON.parse(await readFile(join(dir, 'ca.json'), 'utf8'));
  expect(file).toEqual({
    format: 'cloudlunacy-ca',
    version: 1,
    createdAt: expect.any(String),
    fingerprint,
    certificate: expect.stringMatching(/^-----BEGIN CERTIFICATE-----/),
    privateKey: {
      cipher: 'aes-256-gcm',
      kdf: 'hkdf-sha256',
      keyId: key.id,
      salt: expect.any(String),
      iv: expect.any(String),
      tag: expect.any(String),
      ciphertext: expect.any(String),
    },
  });
  // The ciphertext is not a DER private key that OpenSSL could read.
  const der = await put(temp.path, 'ciphertext.der', '');
  await writeFile(der, Buffer.from(file.privateKey.ciphertext, 'base64'));
  const attempt = await openssl(['pkey', '-inform', 'DER', '-in', der, '-noout']);
  expect(attempt.code).not.toBe(0);
});

test('the CA survives a restart: same fingerprint, and it still signs for the same ca.pem', async () => {
  // A new process: the key is read again from its file, the CA again from disk.
  const reopened = new CaStore({ dir, encryptionKey: await readCaEncryptionKey(keyFile) });
  const again = await reopened.openOrCreate({ installation: 'ignored when the CA exists' });
  expect(again.created).toBe(false);
  expect(again.ca.fingerprint).toBe(fingerprint);
  const issued = issueCertificate(
    again.ca,
    parseCsr(createCsr({ privateKey: leafKey, names: [`a.mongodb.${domain}`] })),
    {
      validitySeconds: 60,
    },
  );
  const file = await put(temp.path, 'after-restart.pem', issued.certificatePem);
  const verify = await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), file]);
  expect(verify.stdout.trim()).toBe(`${file}: OK`);
  const x509 = await openssl(['x509', '-in', join(dir, 'ca.pem'), '-noout', '-fingerprint', '-sha256']);
  expect(x509.stdout.split('=')[1]!.trim().replace(/:/g, '').toLowerCase()).toBe(fingerprint);
});

test('a wrong encryption key is a clear error that names the file and both key ids', async () => {
  const wrong = CaEncryptionKey.generate();
  const error = await storeError(new CaStore({ dir, encryptionKey: wrong }).load());
  expect(error.code).toBe('wrong-key');
  expect(error.path).toBe(join(dir, 'ca.json'));
  expect(error.message).toContain(join(dir, 'ca.json'));
  expect(error.message).toContain(wrong.id);
  expect(error.message).toContain(key.id);
  expect(error.message).toMatch(/CL_PKI_CA_KEY_FILE/);
  // openOrCreate must not "repair" a wrong key by creating a second CA.
  const again = await storeError(
    new CaStore({ dir, encryptionKey: wrong }).openOrCreate({ installation: domain }),
  );
  expect(again.code).toBe('wrong-key');
});

test('a damaged ca.json is reported as such, and nothing is created over it', async () => {
  const original = await readFile(join(dir, 'ca.json'), 'utf8');
  type CaFile = { fingerprint: string; privateKey: { ciphertext: string; tag: string } };
  const cases: [string, (file: CaFile) => string][] = [
    ['truncated', () => original.slice(0, original.length / 2)],
    [
      'ciphertext altered',
      (file) => {
        const bytes = Buffer.from(file.privateKey.ciphertext, 'base64');
        bytes[10]! ^= 0x01;
        return JSON.stringify({
          ...file,
          privateKey: { ...file.privateKey, ciphertext: bytes.toString('base64') },
        });
      },
    ],
    [
      'tag truncated',
      (file) =>
        JSON.stringify({ ...file, privateKey: { ...file.privateKey, tag: file.privateKey.tag.slice(0, 8) } }),
    ],
    ['fingerprint changed', (file) => JSON.stringify({ ...file, fingerprint: 'ab'.repeat(32) })],
    ['unknown field', (file) => JSON.stringify({ ...file, privateKeyPem: 'x' })],
  ];
  for (const [what, damage] of cases) {
    const target = await copyOfStore(`damaged-${what.replace(/ /g, '-')}`);
    const damaged = damage(JSON.parse(original));
    await writeFile(join(target, 'ca.json'), damaged);
    const error = await storeError(
      new CaStore({ dir: target, encryptionKey: key }).openOrCreate({ installation: domain }),
    );
    expect({ what, code: error.code }).toEqual({ what, code: 'corrupt' });
    expect(error.message).toContain(join(target, 'ca.json'));
    expect(await readFile(join(target, 'ca.json'), 'utf8')).toBe(damaged);
  }
});

test('a certificate swapped in from another CA does not decrypt with this key (authenticated binding)', async () => {
  const other = join(temp.path, 'other');
  await new CaStore({ dir: other, encryptionKey: key }).openOrCreate({ installation: 'other.test' });
  const mine = JSON.parse(await readFile(join(dir, 'ca.json'), 'utf8'));
  const theirs = JSON.parse(await readFile(join(other, 'ca.json'), 'utf8'));
  const target = await copyOfStore('swapped');
  await writeFile(
    join(target, 'ca.json'),
    JSON.stringify({ ...mine, certificate: theirs.certificate, fingerprint: theirs.fingerprint }),
  );
  const error = await storeError(new CaStore({ dir: target, encryptionKey: key }).load());
  expect(error.code).toBe('corrupt');
  expect(error.message).toMatch(/does not decrypt/);
});

test('a missing CA is a clear error for load()', async () => {
  const error = await storeError(new CaStore({ dir: join(temp.path, 'empty'), encryptionKey: key }).load());
  expect(error.code).toBe('missing');
  expect(error.message).toMatch(/ca\.json is missing/);
});

test('processes starting at once create exactly one CA', async () => {
  const shared = join(temp.path, 'race');
  const results = await Promise.all(
    Array.from({ length: 4 }, () =>
      new CaStore({ dir: shared, encryptionKey: key }).openOrCreate({ installation: domain }),
    ),
  );
  expect(results.filter((result) => result.created)).toHaveLength(1);
  // The others either lost the race (generated a CA, found the name taken, loaded the winner's) or came
  // late and simply loaded it; on a loaded machine the split varies, but at least one really raced.
  expect(results.filter((result) => result.raced).length).toBeGreaterThanOrEqual(1);
  expect(
    results.filter((result) => !result.created && !result.raced).length +
      results.filter((r) => r.raced).length,
  ).toBe(3);
  expect(new Set(results.map((result) => result.ca.fingerprint)).size).toBe(1);
  expect((await readdir(shared)).sort()).toEqual(['ca.json', 'ca.pem']);
});

test('rotating the encryption key keeps the CA and retires the old key', async () => {
  const target = await copyOfStore('rekey');
  const newKey = CaEncryptionKey.generate();
  const rotated = await new CaStore({ dir: target, encryptionKey: key }).rewrap(newKey);
  expect(rotated.fingerprint).toBe(fingerprint);
  expect((await new CaStore({ dir: target, encryptionKey: newKey }).load()).fingerprint).toBe(fingerprint);
  expect((await storeError(new CaStore({ dir: target, encryptionKey: key }).load())).code).toBe('wrong-key');
  expect((await stat(join(target, 'ca.json'))).mode & 0o777).toBe(0o600);
});

test('CRL numbers only grow, across store instances, and never fall below the clock', async () => {
  const store = new CaStore({ dir, encryptionKey: key });
  const now = new Date();
  const numbers = await Promise.all([
    store.nextCrlNumber(now),
    store.nextCrlNumber(now),
    store.nextCrlNumber(now),
  ]);
  const later = await new CaStore({ dir, encryptionKey: key }).nextCrlNumber(now);
  const all = [...numbers, later];
  expect([...all].sort((a, b) => (a < b ? -1 : 1))).toEqual(all);
  expect(new Set(all).size).toBe(4);
  expect(all[0]).toBeGreaterThanOrEqual(BigInt(Math.floor(now.getTime() / 1000)));
  expect((await stat(join(dir, 'crl-number'))).mode & 0o777).toBe(0o600);
});

test('the CA encryption key: generated by the init hook, read back, malformed files refused', async () => {
  const secrets = join(temp.path, 'secrets');
  const result = await initSecrets(secrets, {}, [caEncryptionKeySecret]);
  expect(result.generated).toEqual(['pki-ca-encryption-key']);
  const path = caEncryptionKeyPath(secrets);
  expect((await lstat(path)).mode & 0o777).toBe(0o600);
  const loaded = await readCaEncryptionKey(path);
  expect(loaded.id).toMatch(/^[0-9a-f]{16}$/);
  expect(JSON.stringify({ loaded })).not.toContain((await readFile(path, 'utf8')).trim());
  expect((await initSecrets(secrets, {}, [caEncryptionKeySecret])).kept).toEqual(['pki-ca-encryption-key']);

  const missing = await storeError(readCaEncryptionKey(join(secrets, 'nope.key')));
  expect(missing.code).toBe('key-file');
  expect(missing.message).toMatch(/does not exist/);
  const passphrase = await put(temp.path, 'passphrase.key', 'correct horse battery staple\n');
  const weak = await storeError(readCaEncryptionKey(passphrase));
  expect(weak.code).toBe('key-file');
  expect(weak.message).toBe(
    `the CA encryption key file ${passphrase} must be 32 random bytes in base64 (as written by \`npm run cli -- init\`; a passphrase is not accepted)`,
  );
});
