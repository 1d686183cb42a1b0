/**
 * IP literals as the routing domain compares and stores them. Inputs were already checked to be IPv4 or
 * IPv6 literals (#contracts `ipAddress`); these functions give one spelling per address, so an agent
 * enrolled as `2001:db8::7` cannot be told apart from `2001:DB8:0::7`, and `::ffff:203.0.113.7` is the
 * IPv4 address it embeds.
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

/**
 * Why traffic can never be sent to this address, or undefined when it can: the unspecified address
 * (0.0.0.0/8, ::), broadcast and multicast are not hosts.
 */
export function unroutableReason(text: string): string | undefined {
  const parsed = parseAddress(text);
  if (!parsed) return 'is not an IP address';
  if (parsed.family === 4) {
    const [first] = parsed.bytes;
    if (first === 0) return 'is in 0.0.0.0/8 ("this network"), not a host';
    if (first! >= 224 && first! <= 239) return 'is a multicast address, not a host';
    if (parsed.bytes.every((byte) => byte === 255)) return 'is the broadcast address, not a host';
    return undefined;
  }
  if (parsed.groups.every((value) => value === 0)) return 'is the unspecified address, not a host';
  if (parsed.groups[0]! >> 8 === 0xff) return 'is a multicast address, not a host';
  return undefined;
}
