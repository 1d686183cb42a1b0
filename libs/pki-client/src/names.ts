import { dnsLabel, hostname } from '#contracts';

/**
 * DNS names as they appear in certificates: lower-case RFC 1123 host names, and — only where a caller
 * allows it — a wildcard `*.` in the left-most label covering at least two more labels (`*.apps.example.com`,
 * never `*.com` or `a*.example.com`).
 */

export interface DnsNameOptions {
  allowWildcard?: boolean;
}

/** Why `name` cannot be a certificate DNS name, or undefined when it can. Expects lower case. */
export function dnsNameProblem(name: string, options: DnsNameOptions = {}): string | undefined {
  if (name.startsWith('*.')) {
    if (!options.allowWildcard) return 'wildcard names are not allowed here';
    const base = name.slice(2);
    if (!hostname.safeParse(base).success) return 'must be "*." followed by a lower-case RFC 1123 host name';
    if (base.split('.').length < 2) return 'a wildcard must cover at least two labels (*.example.com)';
    return undefined;
  }
  if (name.includes('*')) return 'a wildcard is only allowed as the whole left-most label ("*.")';
  const parsed = hostname.safeParse(name);
  return parsed.success ? undefined : (parsed.error.issues[0]?.message ?? 'is not a host name');
}

/**
 * Lower-cases a requested DNS name (DNS is case-insensitive; certificates carry the lower-case form) and
 * checks it. Throws an Error whose message starts with the offending name.
 */
export function normalizeDnsName(name: unknown, options: DnsNameOptions = {}): string {
  if (typeof name !== 'string') throw new Error('a DNS name must be a string');
  const lower = name.toLowerCase();
  const problem = dnsNameProblem(lower, options);
  if (problem) throw new Error(`"${printable(name)}": ${problem}`);
  return lower;
}

/** Quotes untrusted text safely in an error message: no control characters, bounded length. */
export function printable(value: string, max = 80): string {
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** The name an agent's TLS services (its database) answer to: `<agentId>.mongodb.<domain>`. */
export function agentDatabaseHostname(agentId: string, domain: string): string {
  const id = dnsLabel.parse(agentId);
  const name = `${id}.mongodb.${hostname.parse(domain)}`;
  return hostname.parse(name);
}

/** The names of the front server's own certificate: `*.apps.<domain>` and `*.mongodb.<domain>`. */
export function frontCertificateNames(domain: string): string[] {
  const base = hostname.parse(domain);
  return [`*.apps.${base}`, `*.mongodb.${base}`];
}
