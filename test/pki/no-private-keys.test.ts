import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toErrorBody } from '#contracts';
import {
  assertNamesAllowed,
  CaEncryptionKey,
  CaStore,
  createCrl,
  ensureFrontCertificate,
  issueCertificate,
  parseCsr,
} from '#pki';
import { agentDatabaseHostname, createCsr, decodePem, generateRsaKeyPair } from '#pki-client';
import { createLogger } from '#platform';
import { signingKeyOf } from '../../libs/pki/src/ca.js';
import { makeTempDir } from '../harness/processes.js';

const domain = 'example.test';

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

/**
 * The grep-proof run of the PKI library: everything a certificates service would log, append as events or
 * answer, and everything on the CA's disk, is searched for private keys — by marker and by content.
 */
test('a full run leaves no private key in logs, event payloads, responses or the CA directory', async () => {
  const temp = await makeTempDir('pki-grep');
  try {
    const lines: string[] = [];
    const logger = createLogger('certificates', { write: (line) => lines.push(line), level: 'debug' });
    const events: unknown[] = [];
    const caDir = join(temp.path, 'ca');
    const key = CaEncryptionKey.generate();

    const { ca, created } = await new CaStore({ dir: caDir, encryptionKey: key }).openOrCreate({
      installation: domain,
      permittedDomains: [domain],
    });
    expect(created).toBe(true);
    events.push({
      type: 'CertificateAuthorityCreated',
      data: { certificatePem: ca.certificatePem, fingerprint: ca.fingerprint },
    });
    logger.info('CA ready', { ca, key });

    // An agent: its key stays with it; only the CSR crosses over.
    const agent = await generateRsaKeyPair(2048);
    const name = agentDatabaseHostname('agent-1', domain);
    const csr = parseCsr(createCsr({ privateKey: agent.privateKeyPem, names: [name] }));
    assertNamesAllowed(csr.names, [name]);
    const issued = issueCertificate(ca, csr, { validitySeconds: 120 });
    events.push({ type: 'CertificateIssued', data: issued });
    logger.info('certificate issued', { issued, csr });

    // An agent that sends its private key instead of a CSR is refused without the key being repeated.
    let refusal: unknown;
    try {
      parseCsr(agent.privateKeyPem);
    } catch (error) {
      refusal = error;
    }
    logger.warn('refused', { error: refusal, body: toErrorBody(refusal) });
    const response = JSON.stringify(toErrorBody(refusal));

    const crl = createCrl(ca, {
      crlNumber: 1n,
      revoked: [{ serial: issued.serial, revokedAt: new Date(), reason: 'cessationOfOperation' }],
      validitySeconds: 60,
    });
    events.push({ type: 'CertificateRevoked', data: { serial: issued.serial } });
    logger.info('crl', { crl: { ...crl, der: undefined } });

    const frontPath = join(temp.path, 'front', 'front.pem');
    const front = await ensureFrontCertificate(ca, {
      domain,
      path: frontPath,
      validitySeconds: 3600,
      renewBeforeSeconds: 60,
    });
    events.push({ type: 'CertificateIssued', data: front.issued });
    logger.info('front certificate', { front });

    const frontKeyBase64 = decodePem(await readFile(frontPath, 'utf8'))
      .find((block) => block.type === 'PRIVATE KEY')!
      .der.toString('base64');
    const secrets = {
      caKey: signingKeyOf(ca).export({ type: 'pkcs8', format: 'der' }),
      agentKey: decodePem(agent.privateKeyPem)[0]!.der,
      frontKey: Buffer.from(frontKeyBase64, 'base64'),
    };
    const searched: Record<string, string> = {
      logs: lines.join('\n'),
      events: JSON.stringify(events),
      response,
    };
    for (const file of await filesUnder(caDir)) searched[file] = await readFile(file, 'latin1');

    expect(lines.length).toBeGreaterThan(4);
    for (const [where, text] of Object.entries(searched)) {
      expect({ where, marker: /PRIVATE KEY/.test(text) }).toEqual({ where, marker: false });
      for (const [which, der] of Object.entries(secrets)) {
        // The key's DER in base64 (as PEM would carry it), a slice of it, and its raw bytes.
        const base64 = der.toString('base64');
        const found =
          text.includes(base64.slice(40, 120)) || text.includes(der.subarray(30, 90).toString('latin1'));
        expect({ where, which, found }).toEqual({ where, which, found: false });
      }
    }
    // Where the front key must be: only in its own 0600 file on the front server.
    expect(await readFile(frontPath, 'utf8')).toContain('-----BEGIN PRIVATE KEY-----');
  } finally {
    await temp.remove();
  }
});
