import { networkInterfaces } from 'node:os';
import { z } from 'zod';

/**
 * IP literals as the control plane compares and stores them, and the one address policy that enrollment
 * and every route target go through. One spelling per address, so an agent enrolled as `2001:db8::7`
 * cannot be told apart from `2001:DB8:0::7`, and `::ffff:127.0.0.1` is the IPv4 address it embeds.
 */

function parseIpv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((part) => (/^\d{1,3}$/.test(part) ? Number(part) : NaN));
  return bytes.every((byte) => Number.isInteger(byte) && byte >= 0 && byte <= 255) ? bytes : undefined;
}

/** Eight 16-bit groups, or undefined when `text` is not an IPv6 literal. */
function parseIpv6(text: string): number[] | undefined {
  let body = text.toLowerCase();
  if (body.includes('.')) {
    // An IPv4 tail (`::ffff:192.0.2.1`) is two groups written differently.
    const lastColon = body.lastIndexOf(':');
    const v4 = parseIpv4(body.slice(lastColon + 1));
    if (!v4 || lastColon < 0) return undefined;
    const high = ((v4[0]! << 8) | v4[1]!).toString(16);
    const low = ((v4[2]! << 8) | v4[3]!).toString(16);
    body = `${body.slice(0, lastColon + 1)}${high}:${low}`;
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const group = (part: string) => (/^[0-9a-f]{1,4}$/.test(part) ? parseInt(part, 16) : NaN);
  const head = halves[0] ? halves[0].split(':').map(group) : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':').map(group) : [];
  if ([...head, ...rest].some(Number.isNaN)) return undefined;
  const known = head.length + rest.length;
  if (halves.length === 1) return known === 8 ? head : undefined;
  if (known > 7) return undefined;
  return [...head, ...new Array<number>(8 - known).fill(0), ...rest];
}

export type ParsedAddress = { family: 4; bytes: number[] } | { family: 6; groups: number[] };

export function parseAddress(text: string): ParsedAddress | undefined {
  const v4 = parseIpv4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIpv6(text);
  if (!v6) return undefined;
  // IPv4-mapped (::ffff:a.b.c.d): the IPv4 address itself.
  if (v6.slice(0, 5).every((value) => value === 0) && v6[5] === 0xffff) {
    return { family: 4, bytes: [v6[6]! >> 8, v6[6]! & 0xff, v6[7]! >> 8, v6[7]! & 0xff] };
  }
  return { family: 6, groups: v6 };
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups as `::`. */
function formatIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8;) {
    if (groups[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  const hex = groups.map((value) => value.toString(16));
  if (bestLength < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** The one spelling of an address; undefined when `text` is not an IP literal. */
export function canonicalAddress(text: string): string | undefined {
  const parsed = parseAddress(text);
  if (!parsed) return undefined;
  return parsed.family === 4 ? parsed.bytes.join('.') : formatIpv6(parsed.groups);
}

// ---------------------------------------------------------------------------------------------------
// The address policy

/** Why an address may not be an agent's or a route's target; the rule is named in every refusal. */
export type AddressRule =
  | 'unspecified'
  | 'loopback'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'private'
  | 'shared'
  | 'documentation'
  | 'front';

/** An inclusive range of one family, as numbers (IPv4 in 32 bits, IPv6 in 128). */
export interface AddressRange {
  family: 4 | 6;
  first: bigint;
  last: bigint;
  /** As it was written, for messages. */
  text: string;
}

function toNumber(parsed: ParsedAddress): bigint {
  const parts = parsed.family === 4 ? parsed.bytes : parsed.groups;
  const width = parsed.family === 4 ? 8n : 16n;
  return parts.reduce((total, part) => (total << width) | BigInt(part), 0n);
}

function cidr(text: string): AddressRange {
  const [address, bits] = text.split('/');
  const parsed = parseAddress(address ?? '');
  const size = parsed?.family === 4 ? 32 : 128;
  const prefix = bits === undefined ? size : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!parsed || !(prefix >= 0 && prefix <= size)) throw new Error(`${text} is not an address or CIDR block`);
  const hostBits = BigInt(size - prefix);
  const first = (toNumber(parsed) >> hostBits) << hostBits;
  return { family: parsed.family, first, last: first + (1n << hostBits) - 1n, text };
}

/** `10.0.0.0/8`, `fd00::/8`, `127.0.0.2-127.0.0.254` or one address; throws with what is wrong. */
export function parseAddressRange(text: string): AddressRange {
  const trimmed = text.trim();
  if (!trimmed.includes('-')) return cidr(trimmed);
  const [from, to, ...rest] = trimmed.split('-');
  const first = parseAddress(from ?? '');
  const last = parseAddress(to ?? '');
  if (!first || !last || rest.length > 0 || first.family !== last.family) {
    throw new Error(`${trimmed} is not a range of two addresses of one family`);
  }
  const range = { family: first.family, first: toNumber(first), last: toNumber(last), text: trimmed };
  if (range.first > range.last) throw new Error(`${trimmed} ends before it starts`);
  return range;
}

function inRange(range: AddressRange, parsed: ParsedAddress): boolean {
  if (range.family !== parsed.family) return false;
  const value = toNumber(parsed);
  return value >= range.first && value <= range.last;
}

interface Block {
  rule: AddressRule;
  range: AddressRange;
  what: string;
}

const blocks = (rule: AddressRule, what: string, ...ranges: string[]): Block[] =>
  ranges.map((range) => ({ rule, what, range: cidr(range) }));

/** Never a host anyone may route to, whatever the settings say. Order matters: the first match is named. */
const NEVER: readonly Block[] = [
  ...blocks('unspecified', 'the unspecified address ("this network"), not a host', '0.0.0.0/8', '::/128'),
  ...blocks('broadcast', 'the broadcast address, not a host', '255.255.255.255/32'),
  ...blocks('multicast', 'a multicast address, not a host', '224.0.0.0/4', 'ff00::/8'),
  ...blocks(
    'link-local',
    'link-local (cloud metadata services live here), never reachable from the front',
    '169.254.0.0/16',
    'fe80::/10',
  ),
  ...blocks('reserved', 'reserved, not a host on the internet', '240.0.0.0/4', '2001::/32', '100::/64'),
];

/** Not a public host, refused unless the installation allows the range (CL_ALLOWED_PRIVATE_ADDRESSES). */
const UNLESS_ALLOWED: readonly Block[] = [
  ...blocks('loopback', 'a loopback address: the front server itself', '127.0.0.0/8', '::1/128'),
  ...blocks('private', 'a private address', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'),
  ...blocks('shared', 'in the carrier-grade NAT range', '100.64.0.0/10', '198.18.0.0/15'),
  ...blocks(
    'documentation',
    'reserved for documentation',
    '192.0.0.0/24',
    '192.0.2.0/24',
    '198.51.100.0/24',
    '203.0.113.0/24',
    '2001:db8::/32',
  ),
];

export interface AddressPolicy {
  /** Ranges of UNLESS_ALLOWED that this installation accepts (its VPSs on a private network, the local stack). */
  allowed: readonly AddressRange[];
  /** The front server's own addresses: never an agent's, never a target. */
  front: ReadonlySet<string>;
}

export const ALLOWED_ADDRESSES_SETTING = 'CL_ALLOWED_PRIVATE_ADDRESSES';

/** The front's own addresses always include the loopback ones, whatever its interfaces say. */
export function addressPolicy(
  allowed: readonly AddressRange[],
  frontAddresses: Iterable<string>,
): AddressPolicy {
  const front = new Set(['127.0.0.1', '::1']);
  for (const address of frontAddresses) {
    const canonical = canonicalAddress(address);
    if (canonical) front.add(canonical);
  }
  return { allowed, front };
}

/**
 * IPv6 spellings that carry an IPv4 address another way than `::ffff:` (already the IPv4 address
 * itself): IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::`. Each is
 * judged as the IPv4 address it leads to.
 */
function embeddedIpv4(parsed: ParsedAddress): string | undefined {
  if (parsed.family !== 6) return undefined;
  const g = parsed.groups;
  const v4 = (high: number, low: number) => [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
  if (g.slice(0, 6).every((value) => value === 0)) return v4(g[6]!, g[7]!);
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((value) => value === 0))
    return v4(g[6]!, g[7]!);
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!);
  return undefined;
}

export interface AddressRefusal {
  rule: AddressRule;
  message: string;
}

/**
 * Why `text` may not be an agent's address or a route's target under `policy`, or undefined when it may.
 * The message names the address, what it is and, where a setting could allow it, the setting.
 */
export function addressRefusal(text: string, policy: AddressPolicy): AddressRefusal | undefined {
  const parsed = parseAddress(text);
  if (!parsed) return { rule: 'reserved', message: `${text} is not an IP address` };
  const canonical = canonicalAddress(text)!;
  if (policy.front.has(canonical)) {
    return {
      rule: 'front',
      message: `${canonical} is one of the front server's own addresses (rule: front)`,
    };
  }
  // `::` and `::1` are IPv6's own unspecified and loopback addresses, judged below as such.
  const embedded = canonical === '::' || canonical === '::1' ? undefined : embeddedIpv4(parsed);
  if (embedded) {
    const inner = addressRefusal(embedded, policy);
    if (inner) return { rule: inner.rule, message: `${canonical} leads to ${inner.message}` };
  }
  for (const block of NEVER) {
    if (inRange(block.range, parsed)) {
      return { rule: block.rule, message: `${canonical} is ${block.what} (rule: ${block.rule})` };
    }
  }
  for (const block of UNLESS_ALLOWED) {
    if (!inRange(block.range, parsed)) continue;
    if (policy.allowed.some((range) => inRange(range, parsed))) return undefined;
    return {
      rule: block.rule,
      message:
        `${canonical} is ${block.what} (rule: ${block.rule}); ` +
        `an installation whose VPSs use such addresses allows them in ${ALLOWED_ADDRESSES_SETTING}`,
    };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Settings

const rangeList = z
  .string()
  .default('')
  .transform((value, context) => {
    const ranges: AddressRange[] = [];
    for (const item of value.split(',').map((part) => part.trim())) {
      if (item === '') continue;
      try {
        ranges.push(parseAddressRange(item));
      } catch (error) {
        context.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    }
    return ranges;
  });

const addressList = z
  .string()
  .default('')
  .transform((value) =>
    value
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean),
  )
  .pipe(
    z.array(z.string().refine((address) => canonicalAddress(address) !== undefined, 'must be IP addresses')),
  );

/** The settings of the address policy, shared by registration (enrollment) and routing (targets). */
export const addressPolicyConfigSchema = z.object({
  /**
   * Ranges of private, loopback, shared or documentation addresses that agents may have, comma-separated
   * CIDR blocks or `first-last` ranges (`10.0.0.0/8,127.0.0.2-127.0.0.254`). Empty: public addresses only.
   */
  [ALLOWED_ADDRESSES_SETTING]: rangeList,
  /** The front server's public addresses, when its interfaces do not show them (NAT, a floating IP). */
  CL_FRONT_ADDRESSES: addressList,
});
export type AddressPolicyConfig = z.output<typeof addressPolicyConfigSchema>;

/** The policy of this installation: its settings and every address of the front's own interfaces. */
export function addressPolicyOf(
  config: AddressPolicyConfig,
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): AddressPolicy {
  const own = Object.values(interfaces)
    .flatMap((list) => list ?? [])
    .map((entry) => entry.address.split('%')[0]!);
  return addressPolicy(config[ALLOWED_ADDRESSES_SETTING], [...own, ...config.CL_FRONT_ADDRESSES]);
}

/** Proxies whose X-Forwarded-For the API believes (a load balancer in front of it); none by default. */
export const trustedProxiesConfigSchema = z.object({ CL_TRUSTED_PROXIES: rangeList });

/**
 * The address a request came from: the peer of the connection, unless that peer is a trusted proxy —
 * then the nearest X-Forwarded-For entry that is not one (entries are appended left to right, so only
 * those a trusted proxy added can be believed). Undefined when it cannot be told.
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: readonly AddressRange[],
): string | undefined {
  const isTrusted = (address: string) => {
    const parsed = parseAddress(address);
    return parsed !== undefined && trusted.some((range) => inRange(range, parsed));
  };
  let current = peer === undefined ? undefined : canonicalAddress(peer);
  if (current === undefined) return undefined;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? ''))
    .split(',')
    .map((hop) => hop.trim())
    .filter(Boolean);
  while (isTrusted(current) && hops.length > 0) {
    const next = canonicalAddress(hops.pop()!);
    if (next === undefined) return undefined;
    current = next;
  }
  return current;
}
