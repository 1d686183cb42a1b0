import { createPublicKey, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { DomainError } from '#contracts';
import {
  canonicalSerial,
  COMMON_NAME_MAX,
  generateSerial,
  opensslSigner,
  sha256Hex,
  utf8Attribute,
} from '#pki-client';
import { pemOf, signingKeyOf, type CertificateAuthority } from './ca.js';
import type { VerifiedCsr } from './csr.js';
import { wholeSeconds } from './der.js';

export interface IssueOptions {
  /** Lifetime from now; seconds so that tests can use very short ones. */
  validitySeconds: number;
  now?: Date;
  /** notBefore is set this far in the past to absorb clock skew on agents; default 300 s. */
  backdateSeconds?: number;
  /** Fixed serial (tests only); otherwise 126 random bits. */
  serial?: string;
}

/** What the CA issued. Public data only: it can go into an event, a projection and a response as it is. */
export interface IssuedCertificate {
  /** Lower-case hex, no leading zero octets. */
  serial: string;
  /** SHA-256 of the DER certificate, lower-case hex. */
  fingerprint: string;
  /** The subjectAltName DNS names, in order; the first is the subject CN when it fits in 64 characters. */
  names: string[];
  /** ISO-8601. */
  notBefore: string;
  notAfter: string;
  certificatePem: string;
  /** The chain to append when serving the certificate: the CA certificate. */
  chainPem: string;
  /** SHA-256 of the certified public key (SubjectPublicKeyInfo). */
  publicKeyFingerprint: string;
  /** Fingerprint of the issuing CA certificate. */
  issuerFingerprint: string;
}

/**
 * Signs a leaf certificate for a verified request. The profile is fixed: basicConstraints CA:FALSE
 * (critical), keyUsage digitalSignature + keyEncipherment (critical), extKeyUsage serverAuth + clientAuth,
 * subjectAltName = the requested DNS names, subjectKeyIdentifier, authorityKeyIdentifier = the CA's key id.
 * The subject is only `CN=<first name>` (empty, with a critical SAN, when that name exceeds 64 characters).
 * Call `assertNamesAllowed` first: this function certifies whatever names the request carries.
 */
export function issueCertificate(
  ca: CertificateAuthority,
  csr: VerifiedCsr,
  options: IssueOptions,
): IssuedCertificate {
  const { validitySeconds } = options;
  if (!Number.isInteger(validitySeconds) || validitySeconds < 1)
    throw new Error('validitySeconds must be a positive whole number');
  const backdateSeconds = options.backdateSeconds ?? 300;
  const now = wholeSeconds(options.now ?? new Date());
  const caNotAfter = new Date(ca.notAfter);
  if (now.getTime() >= caNotAfter.getTime())
    throw new DomainError('unavailable', `the CA expired at ${ca.notAfter}; a new CA must be created`);

  const certificate = forge.pki.createCertificate();
  certificate.serialNumber = canonicalSerial(options.serial ?? generateSerial());
  certificate.validity.notBefore = new Date(now.getTime() - backdateSeconds * 1000);
  // Never beyond the CA's own expiry: such a certificate could not be verified past that date anyway.
  certificate.validity.notAfter = new Date(
    Math.min(now.getTime() + validitySeconds * 1000, caNotAfter.getTime()),
  );
  certificate.publicKey = forge.pki.publicKeyFromPem(csr.publicKeyPem);
  const names = [...csr.names];
  const [first] = names as [string];
  const hasCommonName = first.length <= COMMON_NAME_MAX;
  certificate.setSubject(hasCommonName ? [utf8Attribute('commonName', first)] : []);
  certificate.setIssuer(ca.forgeCertificate.subject.attributes);
  certificate.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    // RFC 5280 4.2.1.6: with an empty subject the SAN must be critical.
    {
      name: 'subjectAltName',
      critical: !hasCommonName,
      altNames: names.map((value) => ({ type: 2, value })),
    },
    { name: 'subjectKeyIdentifier' },
    // The CA's key id, given explicitly: forge's `keyIdentifier: true` would take the leaf's own key.
    { name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(ca.keyIdentifier) },
  ]);
  const signer = opensslSigner(signingKeyOf(ca));
  certificate.sign(signer.key, signer.md);
  const certificatePem = pemOf(certificate);

  // Self-check with OpenSSL before anything leaves: issued by this CA, signature valid.
  const x509 = new X509Certificate(certificatePem);
  if (!x509.checkIssued(ca.x509) || !x509.verify(ca.x509.publicKey))
    throw new Error('internal: the issued certificate does not verify against the CA');

  return {
    serial: certificate.serialNumber,
    fingerprint: sha256Hex(x509.raw),
    names,
    notBefore: certificate.validity.notBefore.toISOString(),
    notAfter: certificate.validity.notAfter.toISOString(),
    certificatePem,
    chainPem: ca.certificatePem,
    publicKeyFingerprint: sha256Hex(
      createPublicKey(csr.publicKeyPem).export({ type: 'spki', format: 'der' }),
    ),
    issuerFingerprint: ca.fingerprint,
  };
}
