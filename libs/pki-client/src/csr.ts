import { createPublicKey } from 'node:crypto';
import forge from 'node-forge';
import { normalizeDnsName } from './names.js';
import { opensslSigner, readPrivateKey } from './keys.js';

/**
 * A subject attribute encoded as UTF8String (forge's default, PrintableString, cannot hold `*` or `_`).
 * The cast works around @types/node-forge, which types `valueTagClass` as a class instead of a tag.
 */
export function utf8Attribute(name: string, value: string): forge.pki.CertificateField {
  return { name, value, valueTagClass: forge.asn1.Type.UTF8 } as unknown as forge.pki.CertificateField;
}

/** The upper bound of a subject common name (RFC 5280 ub-common-name). Longer names go only in the SAN. */
export const COMMON_NAME_MAX = 64;

export interface CsrOptions {
  /** The key pair's private key (PEM or KeyObject). It signs the request and stays here. */
  privateKey: string | import('node:crypto').KeyObject;
  /** DNS names to certify; the first is also the subject CN when it fits in 64 characters. */
  names: readonly string[];
  allowWildcards?: boolean;
}

/**
 * Builds a PKCS#10 certificate signing request (SHA-256 with RSA) for `names`: subject CN = the first name,
 * subjectAltName = every name, requested through the extensionRequest attribute. Only the public key and
 * the names leave the machine.
 */
export function createCsr(options: CsrOptions): string {
  if (options.names.length === 0) throw new Error('a certificate request needs at least one DNS name');
  const names = [
    ...new Set(
      options.names.map((name) => normalizeDnsName(name, { allowWildcard: options.allowWildcards })),
    ),
  ];
  const privateKey = readPrivateKey(options.privateKey);
  if (privateKey.asymmetricKeyType !== 'rsa') throw new Error('the key must be an RSA key');
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(
    createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString(),
  );
  const [first] = names as [string];
  csr.setSubject(first.length <= COMMON_NAME_MAX ? [utf8Attribute('commonName', first)] : []);
  csr.setAttributes([
    {
      name: 'extensionRequest',
      extensions: [{ name: 'subjectAltName', altNames: names.map((value) => ({ type: 2, value })) }],
    },
  ]);
  const signer = opensslSigner(privateKey);
  csr.sign(signer.key, signer.md);
  return forge.pki.certificationRequestToPem(csr).replace(/\r\n/g, '\n');
}
