import { z } from 'zod';

/**
 * Field schemas shared by every edge. Anything that can reach haproxy.cfg, a map file, a NATS subject
 * or a certificate goes through one of these, so a space or a newline can never become configuration.
 */

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A lower-case RFC 1123 label: the form of agent ids, subdomains and zone names. */
export const dnsLabel = z
  .string()
  .min(1, 'must not be empty')
  .max(63, 'must be at most 63 characters')
  .regex(DNS_LABEL, 'must be a lower-case DNS label: a-z, 0-9 and inner hyphens');

/** A lower-case RFC 1123 host name (no wildcard, no trailing dot, at most 253 characters). */
export const hostname = z
  .string()
  .min(1, 'must not be empty')
  .max(253, 'must be at most 253 characters')
  .refine((value) => value.split('.').every((label) => DNS_LABEL.test(label)), {
    message: 'must be a lower-case RFC 1123 host name: labels of a-z, 0-9 and inner hyphens, joined by dots',
  });

export const port = z
  .number({ error: 'must be a number' })
  .int('must be an integer')
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');

const ipv4 = z.ipv4();
const ipv6 = z.ipv6();
const isIpLiteral = (value: string): boolean =>
  ipv4.safeParse(value).success || ipv6.safeParse(value).success;

/** An IPv4 or IPv6 literal address. Contracts stay free of node: imports so the dashboard can use them. */
export const ipAddress = z.string().refine(isIpLiteral, { message: 'must be an IPv4 or IPv6 address' });

/** A target host: an IP address or a host name. */
export const hostOrAddress = z
  .string()
  .min(1, 'must not be empty')
  .max(253, 'must be at most 253 characters')
  .refine((value) => isIpLiteral(value) || hostname.safeParse(value).success, {
    message: 'must be an IP address or a lower-case RFC 1123 host name',
  });

export const uuid = z.uuid('must be a UUID');

/** ISO-8601 timestamp with a time zone, as written by Date.prototype.toISOString. */
export const isoTimestamp = z.iso.datetime({ offset: true, error: 'must be an ISO-8601 timestamp' });

/** C0 control characters and DEL: a newline or NUL in a name could split a config or log line. */
export function hasControlCharacter(value: string): boolean {
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** Free text shown to people (names, reasons): bounded and without control characters. */
export const label = (max = 200) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .refine((value) => !hasControlCharacter(value), {
      message: 'must not contain control characters',
    });
