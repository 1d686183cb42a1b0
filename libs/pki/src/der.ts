import forge from 'node-forge';
import { serialToDerInteger } from '#pki-client';

/**
 * Small DER tools. node-forge re-encodes what it parses; to verify a signature over the exact bytes that
 * were signed we need their position in the original buffer, which `readTlv` gives. The encoders build the
 * pieces forge has no writer for (CRLs, name constraints).
 */

const { asn1 } = forge;

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  SEQUENCE: 0x30,
  CONTEXT_0_CONSTRUCTED: 0xa0,
} as const;

export interface Tlv {
  tag: number;
  /** Offset of the tag octet. */
  start: number;
  /** Offset of the first content octet. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
}

/** Reads one DER tag-length-value at `offset`; refuses indefinite and non-minimal lengths (BER, not DER). */
export function readTlv(der: Uint8Array, offset = 0): Tlv {
  if (offset + 2 > der.length) throw new Error('truncated DER');
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('multi-octet DER tags are not expected here');
  const first = der[offset + 1]!;
  let length = first;
  let header = 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0) throw new Error('indefinite length is not DER');
    if (count > 4) throw new Error('DER length too large');
    if (offset + 2 + count > der.length) throw new Error('truncated DER');
    length = 0;
    for (let index = 0; index < count; index++) length = length * 256 + der[offset + 2 + index]!;
    if (length < 0x80 || der[offset + 2] === 0) throw new Error('non-minimal DER length');
    header += count;
  }
  const end = offset + header + length;
  if (end > der.length) throw new Error('truncated DER');
  return { tag, start: offset, contentStart: offset + header, end };
}

/** The TLVs directly inside a constructed TLV. */
export function childrenOf(der: Uint8Array, parent: Tlv): Tlv[] {
  const children: Tlv[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readTlv(der, offset);
    if (child.end > parent.end) throw new Error('DER child overruns its parent');
    children.push(child);
    offset = child.end;
  }
  return children;
}

/** forge's binary strings ⇄ Buffers. */
export const toBinary = (bytes: Uint8Array): string => Buffer.from(bytes).toString('binary');
export const fromBinary = (binary: string): Buffer => Buffer.from(binary, 'binary');

export const seq = (items: forge.asn1.Asn1[]): forge.asn1.Asn1 =>
  asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
export const oid = (id: string): forge.asn1.Asn1 =>
  asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(id).getBytes());
export const octetString = (bytes: string): forge.asn1.Asn1 =>
  asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
export const nullValue = (): forge.asn1.Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '');

/** A positive INTEGER from a hex serial, minimally encoded. */
export function serialInteger(serial: string): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, toBinary(serialToDerInteger(serial)));
}

/** A non-negative INTEGER from a bigint, minimally encoded. */
export function bigIntInteger(value: bigint): forge.asn1.Asn1 {
  if (value < 0n) throw new Error('negative integers are not encoded here');
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = '0' + hex;
  let bytes = Buffer.from(hex, 'hex');
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, toBinary(bytes));
}

/** RFC 5280 Time: UTCTime for 1950–2049, GeneralizedTime otherwise; whole seconds, always `Z`. */
export function timeValue(date: Date): forge.asn1.Asn1 {
  const year = date.getUTCFullYear();
  return year >= 1950 && year < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

/** A date truncated to whole seconds: what X.509 can carry. */
export function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

/** An X.509 Extension: SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING (DER of value) }. */
export function extension(id: string, value: forge.asn1.Asn1, critical = false): forge.asn1.Asn1 {
  const items = [oid(id)];
  if (critical) items.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BOOLEAN, false, '\xff'));
  items.push(octetString(asn1.toDer(value).getBytes()));
  return seq(items);
}

export const OID = {
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
  sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
  sha1WithRSAEncryption: '1.2.840.113549.1.1.5',
  md5WithRSAEncryption: '1.2.840.113549.1.1.4',
  rsassaPss: '1.2.840.113549.1.1.10',
  authorityKeyIdentifier: '2.5.29.35',
  cRLNumber: '2.5.29.20',
  cRLReason: '2.5.29.21',
  nameConstraints: '2.5.29.30',
} as const;
