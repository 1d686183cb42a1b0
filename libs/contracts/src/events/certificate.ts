import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { dnsLabel, hostname, isoTimestamp, label } from '../fields.js';

/**
 * Certificates of the CloudLunacy CA. Events carry public data only: certificates, serials, names,
 * fingerprints, dates, reasons. A private key can never pass these schemas (PEM fields accept exactly one
 * CERTIFICATE block), so even a bug upstream cannot put one in the log.
 *
 * Aggregates: `ca` (id = the CA certificate's SHA-256 fingerprint) holds `CertificateAuthorityCreated`;
 * `certificate` (id = the holder: an agent id, or `_front` for the front server's own certificate) holds
 * every certificate of that holder, so one decision sees all of them (a retried request, a renewal, the
 * revocation of all of an agent's certificates) under one optimistic-concurrency check.
 */

/** The holder id of the front server's own certificate (`_` never appears in an agent id). */
export const FRONT_HOLDER = '_front';

/** A certificate serial as the CA writes it: lower-case hex, whole octets, no leading zero octet, ≤ 20 octets. */
export const certificateSerial = z
  .string({ error: 'must be a certificate serial (lower-case hex)' })
  .regex(/^(?!00)(?:[0-9a-f]{2}){1,20}$/, 'must be a certificate serial: lower-case hex of 1 to 20 octets');

/** SHA-256 as lower-case hex (certificate and public-key fingerprints). */
export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 fingerprint (64 hex digits)');

/** A DNS name in a certificate: a host name, or (front certificate only) `*.` and a host name. */
export const certificateName = z
  .string()
  .max(253, 'must be at most 253 characters')
  .refine((value) => hostname.safeParse(value.startsWith('*.') ? value.slice(2) : value).success, {
    message: 'must be a lower-case host name (or *. and a host name)',
  });

/** Exactly one PEM CERTIFICATE block: never a key, never anything else. */
export const certificatePem = z
  .string()
  .max(16 * 1024, 'must be at most 16 KiB')
  .regex(
    /^-----BEGIN CERTIFICATE-----\r?\n(?:[A-Za-z0-9+/=]{1,76}\r?\n)+-----END CERTIFICATE-----\r?\n?$/,
    'must be one PEM CERTIFICATE block',
  );

export const CERTIFICATE_STATUSES = ['issued', 'installed', 'superseded', 'revoked'] as const;
export type CertificateStatus = (typeof CERTIFICATE_STATUSES)[number];

/** RFC 5280 CRLReason names the CA writes (the same keys as `#pki`'s REVOCATION_REASONS). */
export const REVOCATION_REASON_NAMES = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
] as const;
export type RevocationReasonName = (typeof REVOCATION_REASON_NAMES)[number];
export const revocationReason = z.enum(REVOCATION_REASON_NAMES, {
  error: `must be one of ${REVOCATION_REASON_NAMES.join(', ')}`,
});

export const HOOK_STATUSES = ['none', 'succeeded', 'failed'] as const;
export type HookStatus = (typeof HOOK_STATUSES)[number];

export const CertificateAuthorityCreated = defineEvent({
  type: 'CertificateAuthorityCreated',
  aggregate: 'ca',
  version: 1,
  schema: z.strictObject({
    fingerprint: sha256Hex,
    serial: certificateSerial,
    subject: label(500),
    notBefore: isoTimestamp,
    notAfter: isoTimestamp,
    keyIdentifier: z.string().regex(/^[0-9a-f]{2,128}$/),
    certificatePem,
  }),
});

const issuedFields = {
  serial: certificateSerial,
  /** The agent the certificate belongs to; null for the front server's own certificate. */
  agentId: dnsLabel.nullable(),
  names: z.array(certificateName).min(1).max(100),
  notBefore: isoTimestamp,
  notAfter: isoTimestamp,
  /** SHA-256 of the DER certificate. */
  fingerprint: sha256Hex,
  /** SHA-256 of the certified public key: recognises a retried request for the same key pair. */
  publicKeyFingerprint: sha256Hex,
  issuerFingerprint: sha256Hex,
  certificatePem,
  /** What to serve after the certificate: the CA certificate. */
  chainPem: certificatePem,
};

/** A new certificate for a holder. */
export const CertificateIssued = defineEvent({
  type: 'CertificateIssued',
  aggregate: 'certificate',
  version: 1,
  schema: z.strictObject(issuedFields),
});

/** A certificate that replaces another one of the same holder (renewal, or new names). */
export const CertificateRenewed = defineEvent({
  type: 'CertificateRenewed',
  aggregate: 'certificate',
  version: 1,
  schema: z.strictObject({ ...issuedFields, replaces: certificateSerial }),
});

/** The holder confirmed it installed the certificate (and what its post-install hook did). */
export const CertificateInstalled = defineEvent({
  type: 'CertificateInstalled',
  aggregate: 'certificate',
  version: 1,
  schema: z.strictObject({
    serial: certificateSerial,
    hook: z.enum(HOOK_STATUSES),
    hookDetail: label(500).nullable(),
  }),
});

/** A certificate's replacement was installed: the holder no longer uses it (it stays valid until expiry). */
export const CertificateSuperseded = defineEvent({
  type: 'CertificateSuperseded',
  aggregate: 'certificate',
  version: 1,
  schema: z.strictObject({ serial: certificateSerial, by: certificateSerial }),
});

export const CertificateRevoked = defineEvent({
  type: 'CertificateRevoked',
  aggregate: 'certificate',
  version: 1,
  schema: z.strictObject({
    serial: certificateSerial,
    reason: revocationReason,
    detail: label(200),
  }),
});

export const certificateEvents = [
  CertificateAuthorityCreated,
  CertificateIssued,
  CertificateRenewed,
  CertificateInstalled,
  CertificateSuperseded,
  CertificateRevoked,
] as const;
