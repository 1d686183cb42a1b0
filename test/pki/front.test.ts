import { request } from 'node:https';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import {
  CaEncryptionKey,
  CaStore,
  ensureFrontCertificate,
  generateCaEncryptionKey,
  type CertificateAuthority,
} from '#pki';
import { certificateMatchesKey, decodePem, encodePem, inspectCertificate } from '#pki-client';
import { certsCommands } from '../../apps/cli/src/commands/certs.js';
import { freePort } from '../harness/ports.js';
import { makeTempDir, portAccepts, startProcess, waitFor } from '../harness/processes.js';
import { openssl, put } from './helpers.js';

const HAPROXY = process.env.CL_HAPROXY_BIN ?? '/usr/sbin/haproxy';
const domain = 'example.test';
let temp: { path: string; remove(): Promise<void> };
let ca: CertificateAuthority;
let caFile: string;

beforeAll(async () => {
  temp = await makeTempDir('pki-front');
  const store = new CaStore({ dir: join(temp.path, 'ca'), encryptionKey: CaEncryptionKey.generate() });
  ({ ca } = await store.openOrCreate({ installation: domain, permittedDomains: [domain] }));
  caFile = store.paths.caPem;
});
afterAll(async () => {
  await temp?.remove();
});

const day = 86_400;
const options = (path: string, extra: Partial<Parameters<typeof ensureFrontCertificate>[1]> = {}) => ({
  domain,
  path,
  validitySeconds: 90 * day,
  renewBeforeSeconds: 30 * day,
  ...extra,
});

test('the front bundle: certificate, CA, key — 0600, wildcard names, verified by openssl', async () => {
  const path = join(temp.path, 'front', 'front.pem');
  const result = await ensureFrontCertificate(ca, options(path));
  expect(result).toEqual(
    expect.objectContaining({ action: 'issued', path, names: [`*.apps.${domain}`, `*.mongodb.${domain}`] }),
  );
  expect((await stat(path)).mode & 0o777).toBe(0o600);
  const text = await readFile(path, 'utf8');
  const blocks = decodePem(text);
  expect(blocks.map((block) => block.type)).toEqual(['CERTIFICATE', 'CERTIFICATE', 'PRIVATE KEY']);
  expect(encodePem('CERTIFICATE', blocks[1]!.der)).toBe(ca.certificatePem);
  expect(certificateMatchesKey(text, encodePem('PRIVATE KEY', blocks[2]!.der))).toBe(true);
  const leaf = await put(temp.path, 'front-leaf.pem', encodePem('CERTIFICATE', blocks[0]!.der));
  expect(
    (
      await openssl(['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', caFile, leaf])
    ).stdout.trim(),
  ).toBe(`${leaf}: OK`);
  const shown = await openssl(['x509', '-in', leaf, '-noout', '-text']);
  expect(shown.stdout).toMatch(new RegExp(`DNS:\\*\\.apps\\.${domain}, DNS:\\*\\.mongodb\\.${domain}`));
  expect(shown.stdout).toMatch(new RegExp(`Subject: CN ?= ?\\*\\.apps\\.${domain}`));
  // The result (what a service would log or record) holds no key.
  expect(JSON.stringify(result)).not.toMatch(/PRIVATE KEY/);
});

test('a valid front certificate is kept; inside the renewal window it is renewed with a new key', async () => {
  const path = join(temp.path, 'renew', 'front.pem');
  const first = await ensureFrontCertificate(
    ca,
    options(path, { validitySeconds: 3600, renewBeforeSeconds: 600 }),
  );
  const firstKey = decodePem(await readFile(path, 'utf8'))[2]!.der;
  const kept = await ensureFrontCertificate(
    ca,
    options(path, { validitySeconds: 3600, renewBeforeSeconds: 600 }),
  );
  expect(kept.action).toBe('kept');
  expect(kept.fingerprint).toBe(first.fingerprint);

  const later = new Date(Date.now() + 3100_000); // 50 minutes on: 10 minutes before expiry
  const renewed = await ensureFrontCertificate(
    ca,
    options(path, { validitySeconds: 3600, renewBeforeSeconds: 600, now: later }),
  );
  expect(renewed.action).toBe('renewed');
  expect(renewed.reason).toMatch(/inside the renewal window/);
  expect(renewed.serial).not.toBe(first.serial);
  expect(decodePem(await readFile(path, 'utf8'))[2]!.der.equals(firstKey)).toBe(false);
  expect(new Date(renewed.notAfter).getTime()).toBeGreaterThan(new Date(first.notAfter).getTime());
});

test('a bundle from another CA, or a damaged one, is replaced', async () => {
  const path = join(temp.path, 'replace', 'front.pem');
  const other = new CaStore({ dir: join(temp.path, 'other-ca'), encryptionKey: CaEncryptionKey.generate() });
  const { ca: otherCa } = await other.openOrCreate({ installation: domain });
  await ensureFrontCertificate(otherCa, options(path));
  const replaced = await ensureFrontCertificate(ca, options(path));
  expect(replaced).toEqual(
    expect.objectContaining({
      action: 'renewed',
      reason: 'the certificate was not issued by the current CA',
    }),
  );
  await writeFile(path, 'garbage');
  expect((await ensureFrontCertificate(ca, options(path))).reason).toBe(
    'the existing file cannot be read as a PEM bundle',
  );
  expect(inspectCertificate(await readFile(path, 'utf8')).issuer).toContain(`CloudLunacy CA ${domain}`);
});

test('HAProxy accepts the bundle as `crt` and serves it; a client trusting only the CA verifies it by SNI', async () => {
  const path = join(temp.path, 'haproxy', 'front.pem');
  await ensureFrontCertificate(ca, options(path));
  const port = await freePort();
  const config = await put(
    temp.path,
    'haproxy.cfg',
    [
      'global',
      '  maxconn 100',
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 5s',
      '  timeout server 5s',
      'frontend https',
      `  bind 127.0.0.1:${port} ssl crt ${path}`,
      '  http-request return status 200 content-type text/plain lf-string "sni=%[ssl_fc_sni]"',
      '',
    ].join('\n'),
  );
  const check = startProcess(HAPROXY, ['-c', '-f', config]);
  await new Promise((resolve) => check.child.once('exit', resolve));
  expect(check.child.exitCode).toBe(0);
  expect(check.output()).toMatch(/Configuration file is valid/);

  const haproxy = startProcess(HAPROXY, ['-db', '-f', config]);
  try {
    await waitFor('HAProxy to listen', () => portAccepts(port));
    const get = (servername: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/',
            servername,
            ca: ca.certificatePem,
            headers: { host: servername },
          },
          (response) => {
            let body = '';
            response.on('data', (chunk) => (body += chunk));
            response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    expect(await get(`shop.apps.${domain}`)).toEqual({ status: 200, body: `sni=shop.apps.${domain}` });
    expect(await get(`agent-1.mongodb.${domain}`)).toEqual({
      status: 200,
      body: `sni=agent-1.mongodb.${domain}`,
    });
    // A name outside the wildcards fails the client's hostname check.
    await expect(get(`a.b.apps.${domain}`)).rejects.toThrow(/does not match certificate's altnames/);
  } finally {
    await haproxy.stop();
  }
});

describe('cli certs', () => {
  const run = (path: string[], values: Record<string, string | boolean | undefined> = {}) => {
    const command = certsCommands.find((candidate) => candidate.path.join(' ') === path.join(' '));
    if (!command) throw new Error(`no command ${path.join(' ')}`);
    return command.run({ values, positionals: [] });
  };
  let saved: NodeJS.ProcessEnv;
  let printed: string[];
  beforeEach(async () => {
    saved = { ...process.env };
    printed = [];
    jest.spyOn(console, 'log').mockImplementation((line: unknown) => void printed.push(String(line)));
  });
  afterEach(() => {
    process.env = saved;
    jest.restoreAllMocks();
  });

  test('ca init, front, ca rekey: from CL_* configuration, printing no secret', async () => {
    const secrets = join(temp.path, 'cli-secrets');
    const keyFile = join(secrets, 'pki', 'ca-encryption.key');
    await mkdir(join(secrets, 'pki'), { recursive: true, mode: 0o700 });
    await writeFile(keyFile, generateCaEncryptionKey(), { mode: 0o600 });
    Object.assign(process.env, {
      CL_PKI_DIR: join(temp.path, 'cli-ca'),
      CL_SECRETS_DIR: secrets,
      CL_DOMAIN: domain,
    });

    await run(['certs', 'ca', 'init']);
    const init = JSON.parse(printed.pop()!);
    expect(init).toEqual(
      expect.objectContaining({ created: true, fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) }),
    );

    const out = join(temp.path, 'cli-front', 'front.pem');
    await run(['certs', 'front'], { out });
    const front = JSON.parse(printed.pop()!);
    expect(front).toEqual(
      expect.objectContaining({ action: 'issued', caFingerprint: init.fingerprint, path: out }),
    );
    await run(['certs', 'front'], { out });
    expect(JSON.parse(printed.pop()!).action).toBe('kept');

    const oldKey = await readFile(keyFile, 'utf8');
    await run(['certs', 'ca', 'rekey']);
    const rekey = JSON.parse(printed.pop()!);
    expect(rekey.fingerprint).toBe(init.fingerprint);
    expect(rekey.newKeyId).not.toBe(rekey.oldKeyId);
    expect(await readFile(`${keyFile}.previous`, 'utf8')).toBe(oldKey);
    expect(await readFile(keyFile, 'utf8')).not.toBe(oldKey);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    // After the rotation the configured (new) key opens the same CA.
    await run(['certs', 'ca', 'show']);
    expect(JSON.parse(printed.pop()!).fingerprint).toBe(init.fingerprint);

    const output = printed.join('\n') + JSON.stringify([init, front, rekey]);
    expect(output).not.toMatch(/PRIVATE KEY/);
    expect(output).not.toContain(oldKey.trim());
  });

  test('a missing domain is a configuration error naming CL_DOMAIN', async () => {
    delete process.env.CL_DOMAIN;
    Object.assign(process.env, { CL_PKI_DIR: join(temp.path, 'x'), CL_SECRETS_DIR: join(temp.path, 'y') });
    await expect(run(['certs', 'ca', 'init'])).rejects.toThrow(/CL_DOMAIN/);
  });
});
