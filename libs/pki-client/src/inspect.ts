import { X509Certificate } from 'node:crypto';
import { readPrivateKey, sha256Hex } from './keys.js';
import { decodePem } from './pem.js';
import { canonicalSerial } from './serial.js';

/** What a certificate says about itself, read with OpenSSL (node:crypto); nothing here needs the CA. */
export interface CertificateInfo {
  /** Lower-case hex, as the CA reports it in events. */
  serial: string;
  /** SHA-256 of the DER certificate, lower-case hex. */
  fingerprint: string;
  subject: string;
  issuer: string;
  /** DNS names of the subjectAltName, in order. */
  names: string[];
  notBefore: string;
  notAfter: string;
  isCa: boolean;
}

function certificateOf(pem: string | X509Certificate): X509Certificate {
  if (typeof pem !== 'string') return pem;
  const blocks = decodePem(pem).filter((block) => block.type === 'CERTIFICATE');
  if (blocks.length === 0) throw new Error('no CERTIFICATE block');
  return new X509Certificate(blocks[0]!.der);
}

function isoDate(text: string): string {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new Error(`unreadable certificate date ${JSON.stringify(text)}`);
  return date.toISOString();
}

/** Reads the first certificate of a PEM text (a leaf followed by its chain reads as the leaf). */
export function inspectCertificate(pem: string | X509Certificate): CertificateInfo {
  const certificate = certificateOf(pem);
  const names = (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4));
  return {
    serial: canonicalSerial(certificate.serialNumber),
    fingerprint: sha256Hex(certificate.raw),
    subject: certificate.subject,
    issuer: certificate.issuer,
    names,
    notBefore: isoDate(certificate.validFrom),
    notAfter: isoDate(certificate.validTo),
    isCa: certificate.ca,
  };
}

/** Whether the certificate's public key belongs to this private key (check before installing a pair). */
export function certificateMatchesKey(certificatePem: string, privateKeyPem: string): boolean {
  return certificateOf(certificatePem).checkPrivateKey(readPrivateKey(privateKeyPem));
}

/** Whether `certificatePem` names `caPem` as its issuer and carries a valid signature by it. */
export function isIssuedBy(certificatePem: string, caPem: string): boolean {
  const certificate = certificateOf(certificatePem);
  const ca = certificateOf(caPem);
  return certificate.checkIssued(ca) && certificate.verify(ca.publicKey);
}

/** Whether a certificate expiring at `notAfter` is inside its renewal window (or already expired). */
export function renewalDue(
  notAfter: string | Date,
  renewBeforeSeconds: number,
  now: Date = new Date(),
): boolean {
  const expiry = typeof notAfter === 'string' ? new Date(notAfter) : notAfter;
  if (Number.isNaN(expiry.getTime())) throw new Error('notAfter is not a date');
  return expiry.getTime() - renewBeforeSeconds * 1000 <= now.getTime();
}
