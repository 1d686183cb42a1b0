import { sign } from 'node:crypto';
import forge from 'node-forge';
import { canonicalSerial, encodePem } from '#pki-client';
import { signingKeyOf, type CertificateAuthority } from './ca.js';
import {
  bigIntInteger,
  extension,
  fromBinary,
  nullValue,
  OID,
  oid,
  seq,
  serialInteger,
  timeValue,
  toBinary,
  wholeSeconds,
} from './der.js';

const { asn1 } = forge;

/** RFC 5280 5.3.1 CRLReason codes (7 is unused; certificateHold and removeFromCRL are not used here). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export interface RevokedEntry {
  serial: string;
  revokedAt: string | Date;
  /** Omitted or `unspecified`: no reasonCode entry extension (RFC 5280 advises against `unspecified`). */
  reason?: RevocationReason;
}

export interface CrlOptions {
  /** cRLNumber: must grow with every CRL this CA publishes (`CaStore.nextCrlNumber()`). */
  crlNumber: bigint;
  revoked: readonly RevokedEntry[];
  /** Default now. */
  thisUpdate?: Date;
  /** How long relying parties may use this CRL before fetching a new one. */
  validitySeconds: number;
}

export interface Crl {
  pem: string;
  der: Buffer;
  crlNumber: string;
  thisUpdate: string;
  nextUpdate: string;
  /** Canonical serials listed. */
  serials: string[];
}

/**
 * Builds and signs an X.509 v2 CRL (RFC 5280 section 5) — node-forge has no CRL writer:
 *
 *   CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
 *   TBSCertList ::= SEQUENCE { version v2, signature sha256WithRSAEncryption, issuer, thisUpdate,
 *     nextUpdate, revokedCertificates (omitted when empty), crlExtensions [0] { authorityKeyIdentifier,
 *     cRLNumber } }
 *
 * Entries carry the serial, the revocation date and, when given, a reasonCode extension.
 */
export function createCrl(ca: CertificateAuthority, options: CrlOptions): Crl {
  if (typeof options.crlNumber !== 'bigint' || options.crlNumber < 0n)
    throw new Error('crlNumber must be a non-negative bigint');
  if (options.crlNumber >= 1n << 159n) throw new Error('crlNumber has at most 20 octets');
  if (!Number.isInteger(options.validitySeconds) || options.validitySeconds < 1)
    throw new Error('validitySeconds must be a positive whole number');
  const thisUpdate = wholeSeconds(options.thisUpdate ?? new Date());
  const nextUpdate = new Date(thisUpdate.getTime() + options.validitySeconds * 1000);
  const algorithm = seq([oid(OID.sha256WithRSAEncryption), nullValue()]);

  const seen = new Set<string>();
  const entries = options.revoked.flatMap((entry) => {
    const serial = canonicalSerial(entry.serial);
    if (seen.has(serial)) return [];
    seen.add(serial);
    const revokedAt = wholeSeconds(new Date(entry.revokedAt));
    if (Number.isNaN(revokedAt.getTime())) throw new Error(`revocation date of ${serial} is not a date`);
    const parts = [serialInteger(serial), timeValue(revokedAt)];
    const reason = entry.reason ?? 'unspecified';
    if (!(reason in REVOCATION_REASONS)) throw new Error(`unknown revocation reason ${String(reason)}`);
    if (reason !== 'unspecified') {
      const code = asn1.create(
        asn1.Class.UNIVERSAL,
        asn1.Type.ENUMERATED,
        false,
        String.fromCharCode(REVOCATION_REASONS[reason]),
      );
      parts.push(seq([extension(OID.cRLReason, code)]));
    }
    return [{ serial, asn1: seq(parts) }];
  });

  const crlExtensions = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [
    seq([
      extension(
        OID.authorityKeyIdentifier,
        seq([asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, forge.util.hexToBytes(ca.keyIdentifier))]),
      ),
      extension(OID.cRLNumber, bigIntInteger(options.crlNumber)),
    ]),
  ]);
  const tbs = seq([
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x01'), // v2
    algorithm,
    forge.pki.distinguishedNameToAsn1(ca.forgeCertificate.subject),
    timeValue(thisUpdate),
    timeValue(nextUpdate),
    ...(entries.length > 0 ? [seq(entries.map((entry) => entry.asn1))] : []),
    crlExtensions,
  ]);
  const tbsDer = fromBinary(asn1.toDer(tbs).getBytes());
  const signature = sign('sha256', tbsDer, signingKeyOf(ca));
  const certificateList = seq([
    tbs,
    algorithm,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + toBinary(signature)),
  ]);
  const der = fromBinary(asn1.toDer(certificateList).getBytes());
  return {
    pem: encodePem('X509 CRL', der),
    der,
    crlNumber: options.crlNumber.toString(),
    thisUpdate: thisUpdate.toISOString(),
    nextUpdate: nextUpdate.toISOString(),
    serials: entries.map((entry) => entry.serial),
  };
}
