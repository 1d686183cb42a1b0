import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CaEncryptionKey,
  CaStore,
  createCrl,
  issueCertificate,
  parseCsr,
  type CertificateAuthority,
  type IssuedCertificate,
} from '#pki';
import { createCsr, generateRsaKeyPair } from '#pki-client';
import { makeTempDir } from '../harness/processes.js';
import { openssl, put } from './helpers.js';

const domain = 'example.test';
let temp: { path: string; remove(): Promise<void> };
let store: CaStore;
let ca: CertificateAuthority;
let caFile: string;
let revoked: IssuedCertificate;
let kept: IssuedCertificate;
let revokedFile: string;
let keptFile: string;

beforeAll(async () => {
  temp = await makeTempDir('pki-crl');
  store = new CaStore({ dir: join(temp.path, 'ca'), encryptionKey: CaEncryptionKey.generate() });
  ({ ca } = await store.openOrCreate({ installation: domain }));
  caFile = store.paths.caPem;
  const { privateKeyPem } = await generateRsaKeyPair(2048);
  const issue = (name: string) =>
    issueCertificate(ca, parseCsr(createCsr({ privateKey: privateKeyPem, names: [name] })), {
      validitySeconds: 3600,
    });
  revoked = issue(`gone.mongodb.${domain}`);
  kept = issue(`here.mongodb.${domain}`);
  revokedFile = await put(temp.path, 'revoked.pem', revoked.certificatePem);
  keptFile = await put(temp.path, 'kept.pem', kept.certificatePem);
});
afterAll(async () => {
  await temp?.remove();
});

async function crlFile(
  name: string,
  revokedSerials: { serial: string; reason?: 'keyCompromise' | 'cessationOfOperation' }[],
) {
  const crl = createCrl(ca, {
    crlNumber: await store.nextCrlNumber(),
    revoked: revokedSerials.map((entry) => ({ ...entry, revokedAt: new Date() })),
    validitySeconds: 3600,
  });
  return { crl, path: await put(temp.path, name, crl.pem) };
}

test('openssl verifies the CRL signature with the CA and shows a v2 CRL with its extensions', async () => {
  const { crl, path } = await crlFile('crl.pem', [
    { serial: revoked.serial, reason: 'cessationOfOperation' },
  ]);
  const result = await openssl(['crl', '-in', path, '-CAfile', caFile, '-noout', '-text']);
  expect(result.code).toBe(0);
  expect(result.stderr).toMatch(/verify OK/);
  const text = result.stdout;
  expect(text).toMatch(/Version 2 \(0x1\)/);
  expect(text).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
  expect(text).toMatch(
    new RegExp(`Issuer: O ?= ?CloudLunacy, OU ?= ?${domain}, CN ?= ?CloudLunacy CA ${domain}`),
  );
  expect(text).toMatch(/Last Update: .+ GMT/);
  expect(text).toMatch(/Next Update: .+ GMT/);
  expect(text).toMatch(/X509v3 Authority Key Identifier:/);
  const number = /X509v3 CRL Number:\s+(\d+)/.exec(text)?.[1];
  expect(number).toBe(crl.crlNumber);
  expect(text).toMatch(
    new RegExp(`Serial Number: ${revoked.serial.toUpperCase()}\\s+Revocation Date: .+ GMT`),
  );
  expect(text).toMatch(/X509v3 CRL Reason Code:\s+Cessation Of Operation/);
  expect(text).not.toMatch(new RegExp(kept.serial.toUpperCase()));
  // The same CRL in DER is read identically.
  const der = join(temp.path, 'crl.der');
  await writeFile(der, crl.der);
  expect((await openssl(['crl', '-inform', 'DER', '-in', der, '-CAfile', caFile, '-noout'])).stderr).toMatch(
    /verify OK/,
  );
});

test('openssl verify -crl_check rejects the revoked certificate and accepts the other', async () => {
  const { path } = await crlFile('crl-check.pem', [{ serial: revoked.serial, reason: 'keyCompromise' }]);
  const bad = await openssl(['verify', '-crl_check', '-CRLfile', path, '-CAfile', caFile, revokedFile]);
  expect(bad.code).not.toBe(0);
  expect(bad.stdout + bad.stderr).toMatch(/certificate revoked/);
  const good = await openssl(['verify', '-crl_check', '-CRLfile', path, '-CAfile', caFile, keptFile]);
  expect(good.stdout.trim()).toBe(`${keptFile}: OK`);
});

test('an empty CRL is valid and revokes nothing', async () => {
  const { path } = await crlFile('empty.pem', []);
  const text = await openssl(['crl', '-in', path, '-CAfile', caFile, '-noout', '-text']);
  expect(text.stderr).toMatch(/verify OK/);
  expect(text.stdout).toMatch(/No Revoked Certificates/);
  for (const file of [revokedFile, keptFile]) {
    const result = await openssl(['verify', '-crl_check', '-CRLfile', path, '-CAfile', caFile, file]);
    expect(result.stdout.trim()).toBe(`${file}: OK`);
  }
});

test('a CRL from another CA does not verify against this one', async () => {
  const other = new CaStore({ dir: join(temp.path, 'other'), encryptionKey: CaEncryptionKey.generate() });
  const { ca: otherCa } = await other.openOrCreate({ installation: domain });
  const forged = createCrl(otherCa, {
    crlNumber: 1n,
    revoked: [{ serial: kept.serial, revokedAt: new Date() }],
    validitySeconds: 60,
  });
  const path = await put(temp.path, 'forged.pem', forged.pem);
  const result = await openssl(['crl', '-in', path, '-CAfile', caFile, '-noout']);
  expect(result.stderr).not.toMatch(/verify OK/);
  expect(result.stderr).toMatch(/verify failure|unable to get issuer|signature failure/i);
  // … so checking against it fails rather than revoking our certificate.
  const check = await openssl(['verify', '-crl_check', '-CRLfile', path, '-CAfile', caFile, keptFile]);
  expect(check.code).not.toBe(0);
  expect(check.stdout + check.stderr).not.toMatch(/certificate revoked/);
});
