import { generateKeyPairSync } from 'node:crypto';
import { makeTempDir } from '../harness/processes.js';
import { DomainError, toErrorBody, ValidationError } from '#contracts';
import { assertNamesAllowed, NameNotAllowedError, parseCsr } from '#pki';
import {
  agentDatabaseHostname,
  createCsr,
  decodeSinglePem,
  encodePem,
  generateRsaKeyPair,
} from '#pki-client';
import { openssl, put } from './helpers.js';

const domain = 'example.test';
const me = agentDatabaseHostname('agent-a', domain);
const other = agentDatabaseHostname('agent-b', domain);
const myRoutes = [`shop.apps.${domain}`];
const allowed = [me, ...myRoutes];

let key: string;
let temp: { path: string; remove(): Promise<void> };
const keyFiles: Record<string, string> = {};
beforeAll(async () => {
  temp = await makeTempDir('pki-csr');
  ({ privateKeyPem: key } = await generateRsaKeyPair(2048));
  // Keys for OpenSSL-made requests, generated once (fast, by node:crypto) and deleted with the directory.
  const pkcs8 = (k: ReturnType<typeof generateKeyPairSync>['privateKey']) =>
    k.export({ type: 'pkcs8', format: 'pem' }).toString();
  keyFiles.rsa2048 = await put(temp.path, 'rsa2048.pem', key);
  keyFiles.rsa3072 = await put(temp.path, 'rsa3072.pem', (await generateRsaKeyPair(3072)).privateKeyPem);
  keyFiles.rsa1024 = await put(
    temp.path,
    'rsa1024.pem',
    pkcs8(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey),
  );
  keyFiles.ec = await put(
    temp.path,
    'ec.pem',
    pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
  );
});
afterAll(async () => {
  await temp?.remove();
});

/** A CSR made by OpenSSL itself. */
async function opensslCsr(keyName: string, subject: string, extra: string[] = []): Promise<string> {
  const result = await openssl(['req', '-new', '-key', keyFiles[keyName]!, '-subj', subject, ...extra]);
  if (result.code !== 0) throw new Error(result.stderr);
  return result.stdout;
}

function refusal(input: unknown, options?: Parameters<typeof parseCsr>[1]): ValidationError {
  try {
    parseCsr(input, options);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error('parseCsr accepted the request');
}

test('an agent’s own names pass the policy; another agent’s name is refused with that name', () => {
  const mine = parseCsr(createCsr({ privateKey: key, names: [me, ...myRoutes] }));
  expect(mine.names).toEqual([me, ...myRoutes]);
  expect(() => assertNamesAllowed(mine.names, allowed)).not.toThrow();

  const theirs = parseCsr(createCsr({ privateKey: key, names: [me, other] }));
  let error: unknown;
  try {
    assertNamesAllowed(theirs.names, allowed);
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(NameNotAllowedError);
  expect(error).toBeInstanceOf(DomainError);
  expect((error as NameNotAllowedError).offendingName).toBe(other);
  expect(toErrorBody(error)).toEqual({
    error: 'forbidden',
    message: `the certificate request names "${other}", which the requester does not own`,
    field: 'csr',
  });
  // Another agent's route hostname is just as foreign.
  const route = parseCsr(createCsr({ privateKey: key, names: [`bank.apps.${domain}`] }));
  expect(() => assertNamesAllowed(route.names, allowed)).toThrow(`"bank.apps.${domain}"`);
});

test('a CSR whose signature does not verify is refused', () => {
  const pem = createCsr({ privateKey: key, names: [me] });
  const der = decodeSinglePem(pem, 'CERTIFICATE REQUEST');
  // Change one letter of the requested name inside the signed part: the structure stays valid.
  const at = der.indexOf(Buffer.from('agent-a'));
  expect(at).toBeGreaterThan(0);
  const tampered = Buffer.from(der);
  tampered[at + 6] = 'b'.charCodeAt(0);
  const error = refusal(encodePem('CERTIFICATE REQUEST', tampered));
  expect(error.field).toBe('csr');
  expect(error.message).toBe(
    'csr: has a signature that does not verify: it was altered, or not signed by the key it contains',
  );
  // A flipped bit in the signature itself is refused the same way.
  const badSignature = Buffer.from(der);
  badSignature[badSignature.length - 1]! ^= 0x01;
  expect(refusal(encodePem('CERTIFICATE REQUEST', badSignature)).message).toMatch(
    /signature that does not verify/,
  );
});

test('a CSR signed by one key but carrying another key is refused', async () => {
  const pem = createCsr({ privateKey: key, names: [me] });
  const der = decodeSinglePem(pem, 'CERTIFICATE REQUEST');
  const { privateKeyPem } = await generateRsaKeyPair(2048);
  const otherDer = decodeSinglePem(
    createCsr({ privateKey: privateKeyPem, names: [me] }),
    'CERTIFICATE REQUEST',
  );
  // Same layout (same names, same key size): graft the other request's signature onto this one.
  const signatureLength = 256;
  const grafted = Buffer.concat([
    der.subarray(0, der.length - signatureLength),
    otherDer.subarray(otherDer.length - signatureLength),
  ]);
  expect(refusal(encodePem('CERTIFICATE REQUEST', grafted)).message).toMatch(
    /signature that does not verify/,
  );
});

test('an RSA key under 2048 bits is refused, naming the size', async () => {
  const pem = await opensslCsr('rsa1024', `/CN=${me}`);
  const error = refusal(pem);
  expect(error.field).toBe('csr');
  expect(error.message).toBe('csr: has an RSA key of 1024 bits; at least 2048 bits are required');
});

test('an EC key is refused: certificates here are RSA', async () => {
  const pem = await opensslCsr('ec', `/CN=${me}`);
  expect(refusal(pem).message).toBe('csr: has an EC key; only RSA keys are accepted');
});

test('a SHA-1 signed CSR is refused', async () => {
  const pem = await opensslCsr('rsa2048', `/CN=${me}`, ['-sha1']);
  expect(refusal(pem).message).toBe('csr: is signed with SHA-1; sign it with SHA-256 or stronger');
});

test.each([
  ['an empty string', ''],
  ['a number', 42],
  ['text that is not PEM', 'hello, please sign me'],
  [
    'a PEM block that is not base64',
    '-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n',
  ],
  [
    'base64 of random bytes',
    encodePem('CERTIFICATE REQUEST', Buffer.from('0123456789abcdef0123456789abcdef')),
  ],
  ['a truncated request', 'truncated'],
  ['a private key instead of a request', 'private key'],
  ['two requests', 'two'],
  ['text around the block', 'around'],
  ['a header inside the block', 'header'],
  ['too much text', 'x'.repeat(20_000)],
])('garbage is refused with a clear error naming the field: %s', (_what, input) => {
  let value: unknown = input;
  const good = createCsr({ privateKey: key, names: [me] });
  if (input === 'truncated') {
    const der = decodeSinglePem(good, 'CERTIFICATE REQUEST');
    value = encodePem('CERTIFICATE REQUEST', der.subarray(0, der.length - 10));
  } else if (input === 'private key') {
    value = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
  } else if (input === 'two') {
    value = good + good;
  } else if (input === 'around') {
    value = `please sign:\n${good}`;
  } else if (input === 'header') {
    value = good.replace('\n', '\nProc-Type: 4,ENCRYPTED\n\n');
  }
  const error = refusal(value, { field: 'data.csr' });
  expect(error.field).toBe('data.csr');
  expect(error.message).toMatch(/^data\.csr: (must be|is not|must hold)/);
  // The refusal never echoes the key material it was given.
  expect(error.message).not.toMatch(/PRIVATE KEY|MII/);
});

test('IP address, e-mail and URI names are refused, naming the name', async () => {
  const ip = await opensslCsr('rsa2048', `/CN=${me}`, ['-addext', `subjectAltName=DNS:${me},IP:10.0.0.7`]);
  expect(refusal(ip).message).toBe(
    'csr: requests an IP address "10.0.0.7" in its subjectAltName; only DNS names are certified',
  );
  const email = await opensslCsr('rsa2048', `/CN=${me}`, [
    '-addext',
    'subjectAltName=email:ops@example.test',
  ]);
  expect(refusal(email).message).toMatch(/an e-mail address "ops@example.test"/);
  const uri = await opensslCsr('rsa2048', `/CN=${me}`, [
    '-addext',
    'subjectAltName=URI:https://example.test/',
  ]);
  expect(refusal(uri).message).toMatch(/a URI "https:\/\/example.test\/"/);
});

test('wildcards are refused unless the caller allows them', async () => {
  const pem = await opensslCsr('rsa2048', `/CN=*.apps.${domain}`);
  expect(refusal(pem).message).toBe(
    `csr: subject CN "*.apps.${domain}": wildcard names are not allowed here`,
  );
  expect(parseCsr(pem, { allowWildcards: true }).names).toEqual([`*.apps.${domain}`]);
  const tooWide = await opensslCsr('rsa2048', '/CN=*.test');
  expect(refusal(tooWide, { allowWildcards: true }).message).toMatch(/at least two labels/);
  const partial = await opensslCsr('rsa2048', `/CN=db*.apps.${domain}`);
  expect(refusal(partial, { allowWildcards: true }).message).toMatch(
    /only allowed as the whole left-most label/,
  );
});

test('a CN that is not a host name is refused, naming it', async () => {
  const pem = await opensslCsr('rsa2048', '/CN=My Database Server');
  expect(refusal(pem).message).toMatch(
    /^csr: subject CN "My Database Server": must be a lower-case RFC 1123 host name/,
  );
});

test('a request from OpenSSL is read like ours: CN first, SAN names, lower-cased, de-duplicated', async () => {
  const pem = await opensslCsr('rsa3072', `/C=DE/O=Ignored/CN=${me.toUpperCase()}`, [
    '-addext',
    `subjectAltName=DNS:${me},DNS:Shop.Apps.${domain}`,
  ]);
  const csr = parseCsr(pem);
  expect(csr.names).toEqual([me, `shop.apps.${domain}`]);
  expect(csr.commonName).toBe(me);
  expect(csr.publicKeyBits).toBe(3072);
  expect(csr.signatureAlgorithm).toBe('sha256WithRSAEncryption');
  expect(csr.publicKeyFingerprint).toMatch(/^[0-9a-f]{64}$/);
});

test('our own CSRs satisfy openssl req -verify', async () => {
  const result = await openssl(['req', '-verify', '-noout', '-text'], {
    input: createCsr({ privateKey: key, names: [me, `shop.apps.${domain}`] }),
  });
  expect(result.code).toBe(0);
  expect(result.stderr + result.stdout).toMatch(/verify OK|Certificate request self-signature verify OK/);
  expect(result.stdout).toMatch(new RegExp(`DNS:${me}, DNS:shop.apps.${domain}`));
});
