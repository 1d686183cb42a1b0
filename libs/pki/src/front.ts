import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  certificateMatchesKey,
  createCsr,
  decodePem,
  encodePem,
  frontCertificateNames,
  generateRsaKeyPair,
  inspectCertificate,
  isIssuedBy,
  renewalDue,
  writeFileAtomic,
  type RsaKeyBits,
} from '#pki-client';
import type { CertificateAuthority } from './ca.js';
import { assertNamesAllowed, parseCsr } from './csr.js';
import { issueCertificate, type IssuedCertificate } from './issue.js';

export interface FrontCertificateOptions {
  /** The installation's domain: the certificate covers `*.apps.<domain>` and `*.mongodb.<domain>`. */
  domain: string;
  /** Where the PEM bundle lives on the front server (written 0600, directory 0700 when created). */
  path: string;
  validitySeconds: number;
  /** Renew when the certificate expires within this many seconds. */
  renewBeforeSeconds: number;
  /** RSA size of the front's key; default 2048 (it does every TLS handshake of every app). */
  keyBits?: RsaKeyBits;
  now?: Date;
  /** Issue a new certificate even if the current one is fine. */
  force?: boolean;
}

export interface FrontCertificateResult {
  action: 'issued' | 'renewed' | 'kept';
  /** Why the file was (re)written or kept, for logs and the CLI. */
  reason: string;
  path: string;
  serial: string;
  fingerprint: string;
  names: string[];
  notBefore: string;
  notAfter: string;
  /** The new certificate when one was issued (public data; the key is only in the file). */
  issued?: IssuedCertificate;
}

/** Why the existing bundle at `path` must be replaced, or undefined when it is still good. */
async function problemWith(
  ca: CertificateAuthority,
  path: string,
  names: string[],
  renewBeforeSeconds: number,
  now: Date,
): Promise<{ missing: boolean; reason: string } | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      return { missing: true, reason: 'there is no certificate yet' };
    throw error;
  }
  try {
    const blocks = decodePem(text);
    const certificate = blocks.find((block) => block.type === 'CERTIFICATE');
    const key = blocks.find((block) => block.type === 'PRIVATE KEY');
    if (!certificate || !key) return { missing: false, reason: 'the file lacks a certificate or a key' };
    const certificatePem = encodePem('CERTIFICATE', certificate.der);
    if (!isIssuedBy(certificatePem, ca.certificatePem))
      return { missing: false, reason: 'the certificate was not issued by the current CA' };
    if (!certificateMatchesKey(certificatePem, encodePem('PRIVATE KEY', key.der)))
      return { missing: false, reason: 'the key does not match the certificate' };
    const info = inspectCertificate(certificatePem);
    if ([...info.names].sort().join(',') !== [...names].sort().join(','))
      return {
        missing: false,
        reason: `the certificate names ${info.names.join(', ')} instead of ${names.join(', ')}`,
      };
    // A certificate already ending with the CA cannot be extended by a new one: renewing it would only
    // churn (every check, until the CA itself is replaced).
    if (
      renewalDue(info.notAfter, renewBeforeSeconds, now) &&
      Date.parse(info.notAfter) + 1000 < Date.parse(ca.notAfter)
    )
      return {
        missing: false,
        reason: `the certificate expires at ${info.notAfter}, inside the renewal window`,
      };
    return undefined;
  } catch {
    return { missing: false, reason: 'the existing file cannot be read as a PEM bundle' };
  }
}

/**
 * Makes sure the front server has a valid certificate for `*.apps.<domain>` and `*.mongodb.<domain>` from
 * this CA, in one PEM file: certificate, then the chain (the CA), then the private key — what HAProxy's
 * `crt` and the Data Plane API's ssl_certificates storage take. The key is generated here, on the front
 * server, and written only to that file (mode 0600, atomically); it goes into no event, log or response.
 * Kept as it is while valid and outside the renewal window; otherwise a new key and certificate replace it.
 * Wildcards are accepted for exactly these two names, through the same CSR checks as agents' requests.
 */
export async function ensureFrontCertificate(
  ca: CertificateAuthority,
  options: FrontCertificateOptions,
): Promise<FrontCertificateResult> {
  const names = frontCertificateNames(options.domain);
  const now = options.now ?? new Date();
  const problem = options.force
    ? { missing: false, reason: 'a new certificate was requested' }
    : await problemWith(ca, options.path, names, options.renewBeforeSeconds, now);
  if (!problem) {
    const info = inspectCertificate(await readFile(options.path, 'utf8'));
    return {
      action: 'kept',
      reason: 'the certificate is valid and outside the renewal window',
      path: options.path,
      ...pick(info),
    };
  }
  const { privateKeyPem } = await generateRsaKeyPair(options.keyBits ?? 2048);
  const csr = parseCsr(createCsr({ privateKey: privateKeyPem, names, allowWildcards: true }), {
    field: 'front',
    allowWildcards: true,
  });
  assertNamesAllowed(csr.names, names, 'front');
  const issued = issueCertificate(ca, csr, { validitySeconds: options.validitySeconds, now });
  await mkdir(dirname(options.path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(options.path, issued.certificatePem + issued.chainPem + privateKeyPem, {
    mode: 0o600,
  });
  return {
    action: problem.missing ? 'issued' : 'renewed',
    reason: problem.reason,
    path: options.path,
    ...pick(issued),
    issued,
  };
}

function pick(info: {
  serial: string;
  fingerprint: string;
  names: string[];
  notBefore: string;
  notAfter: string;
}) {
  return {
    serial: info.serial,
    fingerprint: info.fingerprint,
    names: info.names,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
  };
}
