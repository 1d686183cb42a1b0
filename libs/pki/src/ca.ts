import { createPublicKey, generateKeyPair, X509Certificate, type KeyObject } from 'node:crypto';
import { inspect, promisify } from 'node:util';
import forge from 'node-forge';
import { label, parseOrThrow } from '#contracts';
import {
  canonicalSerial,
  generateSerial,
  normalizeDnsName,
  opensslSigner,
  sha256Hex,
  utf8Attribute,
} from '#pki-client';
import { OID, seq, wholeSeconds } from './der.js';

const { asn1 } = forge;
const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * The CA's private key lives only here, keyed by the CA object, and only this library's signing code reads
 * it: the object itself holds public data, so logging it, returning it or putting it in an event cannot
 * leak the key.
 */
const signingKeys = new WeakMap<CertificateAuthority, KeyObject>();

export interface CreateCaOptions {
  /** Names the installation in the CA subject (`OU=<installation>`), typically its domain. */
  installation: string;
  /** Default 3650 (ten years). */
  validityDays?: number;
  /**
   * DNS name constraints (RFC 5280 4.2.1.10): the CA can vouch only for these domains and their
   * subdomains, and for no IP address. A user who adds ca.pem to a trust store then trusts it for
   * `*.<domain>` only, not for the whole web. Empty or absent: unconstrained.
   */
  permittedDomains?: readonly string[];
  /** RSA modulus size; default 3072 (NIST's 128-bit level, valid beyond 2030). */
  keyBits?: 3072 | 4096;
  now?: Date;
}

export function pemOf(certificate: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(certificate).replace(/\r\n/g, '\n');
}

/** The CloudLunacy CA: its public certificate and facts, with the private key out of reach. */
export class CertificateAuthority {
  readonly certificatePem: string;
  /** SHA-256 of the DER certificate, lower-case hex: the identity of this CA across restarts. */
  readonly fingerprint: string;
  readonly serial: string;
  readonly subject: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** subjectKeyIdentifier, lower-case hex; issued certificates carry it as authorityKeyIdentifier. */
  readonly keyIdentifier: string;
  /** forge's view of the certificate, for building what the CA signs. Public data only. */
  readonly forgeCertificate: forge.pki.Certificate;
  readonly x509: X509Certificate;

  private constructor(certificatePem: string, privateKey: KeyObject) {
    let x509: X509Certificate;
    let parsed: forge.pki.Certificate;
    try {
      x509 = new X509Certificate(certificatePem);
      parsed = forge.pki.certificateFromPem(certificatePem);
    } catch {
      throw new Error('the CA certificate is not a readable RSA X.509 certificate');
    }
    if (!x509.ca) throw new Error('the CA certificate does not have basicConstraints CA:TRUE');
    const keyUsage = parsed.getExtension('keyUsage') as
      { keyCertSign?: boolean; cRLSign?: boolean } | undefined;
    if (!keyUsage?.keyCertSign || !keyUsage.cRLSign)
      throw new Error('the CA certificate lacks keyUsage keyCertSign and cRLSign');
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa')
      throw new Error('the CA private key must be an RSA private key');
    if (!x509.checkPrivateKey(privateKey))
      throw new Error('the CA private key does not belong to the CA certificate');
    const ski = parsed.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
    this.certificatePem = certificatePem;
    this.fingerprint = sha256Hex(x509.raw);
    this.serial = canonicalSerial(x509.serialNumber);
    this.subject = x509.subject.replace(/\n/g, ', ');
    this.notBefore = parsed.validity.notBefore.toISOString();
    this.notAfter = parsed.validity.notAfter.toISOString();
    this.keyIdentifier = ski?.subjectKeyIdentifier ?? parsed.generateSubjectKeyIdentifier().toHex();
    this.forgeCertificate = parsed;
    this.x509 = x509;
    signingKeys.set(this, privateKey);
  }

  /** A CA from its certificate and private key; checks that they belong together and that it is a CA. */
  static fromParts(certificatePem: string, privateKey: KeyObject): CertificateAuthority {
    return new CertificateAuthority(certificatePem, privateKey);
  }

  /** Public facts only: safe in a log line, a response or an event. */
  toJSON() {
    return {
      fingerprint: this.fingerprint,
      serial: this.serial,
      subject: this.subject,
      notBefore: this.notBefore,
      notAfter: this.notAfter,
      keyIdentifier: this.keyIdentifier,
      certificatePem: this.certificatePem,
    };
  }

  [inspect.custom](): string {
    return `CertificateAuthority { subject: ${this.subject}, fingerprint: ${this.fingerprint} }`;
  }
}

/** The CA's signing key, for this library's signing code only (not exported from `#pki`). */
export function signingKeyOf(ca: CertificateAuthority): KeyObject {
  const key = signingKeys.get(ca);
  if (!key) throw new Error('not a CertificateAuthority');
  return key;
}

function nameConstraints(domains: readonly string[]): forge.asn1.Asn1 {
  const context = (tag: number, constructed: boolean, value: string | forge.asn1.Asn1[]) =>
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, tag, constructed, value);
  // GeneralSubtree ::= SEQUENCE { base GeneralName, minimum [0] DEFAULT 0, maximum [1] OPTIONAL }
  const permitted = context(
    0,
    true,
    domains.map((domain) => seq([context(2, false, domain)])),
  );
  // No IP address at all: 0.0.0.0/0 and ::/0 excluded (address + mask, all zero).
  const excluded = context(1, true, [
    seq([context(7, false, '\0'.repeat(8))]),
    seq([context(7, false, '\0'.repeat(32))]),
  ]);
  return seq([permitted, excluded]);
}

/** Creates a new self-signed CA with an RSA key generated by OpenSSL. The key never leaves memory here. */
export async function createCertificateAuthority(options: CreateCaOptions): Promise<CertificateAuthority> {
  const installation = parseOrThrow(label(64), options.installation, 'installation');
  const validityDays = options.validityDays ?? 3650;
  if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 36500)
    throw new Error('the CA validity must be a whole number of days between 1 and 36500');
  const permitted = [...new Set((options.permittedDomains ?? []).map((domain) => normalizeDnsName(domain)))];
  const bits = options.keyBits ?? 3072;
  if (bits !== 3072 && bits !== 4096) throw new Error('the CA key is RSA 3072 or 4096 bits');

  const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
  const certificate = forge.pki.createCertificate();
  certificate.publicKey = forge.pki.publicKeyFromPem(
    createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString(),
  );
  certificate.serialNumber = generateSerial();
  const now = wholeSeconds(options.now ?? new Date());
  // An hour of backdating absorbs clock skew between the front server and agents.
  certificate.validity.notBefore = new Date(now.getTime() - 3600_000);
  certificate.validity.notAfter = new Date(now.getTime() + validityDays * 86400_000);
  const commonName = `CloudLunacy CA ${installation}`;
  const subject = [
    utf8Attribute('organizationName', 'CloudLunacy'),
    utf8Attribute('organizationalUnitName', installation),
    utf8Attribute('commonName', commonName.length <= 64 ? commonName : 'CloudLunacy CA'),
  ];
  certificate.setSubject(subject);
  certificate.setIssuer(subject);
  const extensions: object[] = [
    // pathLen 0: the CA signs leaves only, never another CA.
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: true },
  ];
  if (permitted.length > 0)
    extensions.push({ id: OID.nameConstraints, critical: true, value: nameConstraints(permitted) });
  certificate.setExtensions(extensions);
  const signer = opensslSigner(privateKey);
  certificate.sign(signer.key, signer.md);
  return CertificateAuthority.fromParts(pemOf(certificate), privateKey);
}
