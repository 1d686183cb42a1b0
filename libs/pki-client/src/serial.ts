import { randomBytes } from 'node:crypto';

/**
 * Certificate serial numbers as the project writes them: lower-case hex of the (positive) integer, no
 * colons, no leading zero octets. Generated serials are 16 random octets whose top bit is clear (so the DER
 * INTEGER is positive without a padding octet) and whose next bit is set (so it is never shorter): 126 bits
 * of randomness, more than the 64 that RFC 5280 / CA/B require, and always 32 hex digits.
 */
export function generateSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}

/** Canonical form of a serial given in hex (any case, optional colons): strips leading zero octets. */
export function canonicalSerial(serial: string): string {
  const hex = serial.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex)) throw new Error(`serial ${JSON.stringify(serial.slice(0, 60))} is not hex`);
  let digits = hex.replace(/^0+/, '');
  if (digits.length === 0) throw new Error('a certificate serial must be positive');
  if (digits.length % 2 === 1) digits = '0' + digits;
  if (digits.length > 40) throw new Error('a certificate serial has at most 20 octets');
  return digits;
}

/** The content octets of the DER INTEGER for a canonical serial (a 0x00 prefix when the top bit is set). */
export function serialToDerInteger(serial: string): Buffer {
  const bytes = Buffer.from(canonicalSerial(serial), 'hex');
  return bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}
