import { X509Certificate } from 'node:crypto';
import { inspect } from 'node:util';
import forge from 'node-forge';
import { DomainError } from '#contracts';
import { createCsr, decodeSinglePem, generateRsaKeyPair } from '#pki-client';
import { createCertificateAuthority, type CertificateAuthority } from './ca.js';
import { createCrl } from './crl.js';
import { parseCsr, type VerifiedCsr } from './csr.js';
import { issueCertificate } from './issue.js';

let ca: CertificateAuthority;
let csr: VerifiedCsr;
let keyPem: string;

beforeAll(async () => {
  ca = await createCertificateAuthority({ installation: 'example.test', validityDays: 30 });
  ({ privateKeyPem: keyPem } = await generateRsaKeyPair(2048));
  csr = parseCsr(createCsr({ privateKey: keyPem, names: ['a.mongodb.example.test'] }));
});

describe('CertificateAuthority', () => {
  it('exposes public facts only, in JSON and in inspect', () => {
    const shown = JSON.stringify(ca) + inspect(ca) + inspect({ ca }, { depth: 5 });
    expect(shown).not.toMatch(/PRIVATE KEY/);
    expect(Object.keys(ca.toJSON()).sort()).toEqual(
      ['certificatePem', 'fingerprint', 'keyIdentifier', 'notAfter', 'notBefore', 'serial', 'subject'].sort(),
    );
    expect(ca.subject).toBe('O=CloudLunacy, OU=example.test, CN=CloudLunacy CA example.test');
  });

  it('refuses an installation name with control characters', async () => {
    await expect(createCertificateAuthority({ installation: 'a\nb' })).rejects.toThrow(/installation/);
  });
});

describe('issueCertificate', () => {
  const now = new Date('2030-01-01T00:00:00Z');

  it('sets validity from the options, backdated, in whole seconds', () => {
    const fresh = new Date(Date.now() + 1000);
    const issued = issueCertificate(ca, csr, { validitySeconds: 90, backdateSeconds: 30, now: fresh });
    const start = Math.floor(fresh.getTime() / 1000) * 1000;
    expect(new Date(issued.notBefore).getTime()).toBe(start - 30_000);
    expect(new Date(issued.notAfter).getTime()).toBe(start + 90_000);
  });

  it('never outlives the CA, and refuses to sign once the CA expired', () => {
    const issued = issueCertificate(ca, csr, { validitySeconds: 365 * 86_400 });
    expect(issued.notAfter).toBe(ca.notAfter);
    expect(() => issueCertificate(ca, csr, { validitySeconds: 60, now })).toThrow(DomainError);
    expect(() => issueCertificate(ca, csr, { validitySeconds: 0 })).toThrow(/positive/);
  });

  it('puts a name longer than 64 characters only in a critical SAN, with an empty subject', () => {
    const long = `${'a'.repeat(60)}.mongodb.example.test`;
    const request = parseCsr(createCsr({ privateKey: keyPem, names: [long] }));
    const issued = issueCertificate(ca, request, { validitySeconds: 60 });
    const certificate = forge.pki.certificateFromPem(issued.certificatePem);
    expect(certificate.subject.attributes).toEqual([]);
    expect(certificate.getExtension('subjectAltName')).toEqual(expect.objectContaining({ critical: true }));
    expect(new X509Certificate(issued.certificatePem).subjectAltName).toBe(`DNS:${long}`);
  });

  it('uses the serial it was given, canonically', () => {
    expect(issueCertificate(ca, csr, { validitySeconds: 60, serial: '00ABCDEF' }).serial).toBe('abcdef');
  });
});

describe('createCrl encoding', () => {
  const asn1Of = (pem: string) =>
    forge.asn1.fromDer(forge.util.createBuffer(decodeSinglePem(pem, 'X509 CRL').toString('binary')));
  const tbsOf = (pem: string) => (asn1Of(pem).value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[];

  it('is a v2 CRL: version 1, no revokedCertificates when empty, then [0] extensions', () => {
    const crl = createCrl(ca, {
      crlNumber: 7n,
      revoked: [],
      validitySeconds: 3600,
      thisUpdate: new Date('2030-01-01T00:00:00.500Z'),
    });
    const tbs = tbsOf(crl.pem);
    expect(forge.util.bytesToHex(tbs[0]!.value as string)).toBe('01');
    expect(tbs).toHaveLength(6); // version, signature, issuer, thisUpdate, nextUpdate, [0]
    expect(tbs[5]!.tagClass).toBe(forge.asn1.Class.CONTEXT_SPECIFIC);
    expect(crl.thisUpdate).toBe('2030-01-01T00:00:00.000Z');
    expect(crl.nextUpdate).toBe('2030-01-01T01:00:00.000Z');
    expect(crl.crlNumber).toBe('7');
  });

  it('lists each serial once, with a reasonCode only when a reason is given', () => {
    const crl = createCrl(ca, {
      crlNumber: 8n,
      revoked: [
        { serial: '4a', revokedAt: '2030-01-01T00:00:00Z', reason: 'superseded' },
        { serial: '004A', revokedAt: '2030-01-02T00:00:00Z' },
        { serial: 'ff', revokedAt: '2030-01-01T00:00:00Z' },
      ],
      validitySeconds: 60,
    });
    expect(crl.serials).toEqual(['4a', 'ff']);
    const entries = tbsOf(crl.pem)[5]!.value as forge.asn1.Asn1[];
    expect(entries).toHaveLength(2);
    const [first, second] = entries.map((entry) => entry.value as forge.asn1.Asn1[]);
    expect(first).toHaveLength(3); // serial, date, extensions (reasonCode)
    expect(second).toHaveLength(2); // no reason: no extensions
    expect(forge.util.bytesToHex(second![0]!.value as string)).toBe('00ff');
    const reason = forge.asn1.fromDer(
      ((first![2]!.value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[])[1]!.value as string,
    );
    expect(reason.type).toBe(forge.asn1.Type.ENUMERATED);
    expect((reason.value as string).charCodeAt(0)).toBe(4);
  });

  it('refuses bad input', () => {
    expect(() => createCrl(ca, { crlNumber: -1n, revoked: [], validitySeconds: 60 })).toThrow(/non-negative/);
    expect(() =>
      createCrl(ca, {
        crlNumber: 1n,
        revoked: [{ serial: 'zz', revokedAt: new Date() }],
        validitySeconds: 60,
      }),
    ).toThrow(/not hex/);
    expect(() =>
      createCrl(ca, { crlNumber: 1n, revoked: [{ serial: '01', revokedAt: 'soon' }], validitySeconds: 60 }),
    ).toThrow(/not a date/);
  });
});
