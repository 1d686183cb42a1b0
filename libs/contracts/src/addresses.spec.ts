import {
  addressPolicy,
  addressRefusal,
  canonicalAddress,
  parseAddress,
  parseAddressRange,
} from './addresses.js';

test('one spelling per address: IPv6 per RFC 5952, IPv4-mapped IPv6 as IPv4', () => {
  expect(canonicalAddress('203.0.113.7')).toBe('203.0.113.7');
  expect(canonicalAddress('2001:DB8:0:0:0:0:0:7')).toBe('2001:db8::7');
  expect(canonicalAddress('2001:0db8::0007')).toBe('2001:db8::7');
  expect(canonicalAddress('0:0:0:0:0:0:0:1')).toBe('::1');
  expect(canonicalAddress('1::')).toBe('1::');
  expect(canonicalAddress('2001:db8:0:1:0:0:0:1')).toBe('2001:db8:0:1::1');
  // The first of two equally long runs is compressed; a single zero group is not.
  expect(canonicalAddress('2001:0:0:1:0:0:1:1')).toBe('2001::1:0:0:1:1');
  expect(canonicalAddress('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
  expect(canonicalAddress('::ffff:203.0.113.7')).toBe('203.0.113.7');
  expect(canonicalAddress('::FFFF:CB00:7107')).toBe('203.0.113.7');
  expect(canonicalAddress('64:ff9b::192.0.2.33')).toBe('64:ff9b::c000:221');
});

test('anything that is not an IP literal has no canonical form', () => {
  for (const text of [
    '',
    'localhost',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    'g::1',
    '::12345',
  ]) {
    expect(canonicalAddress(text)).toBeUndefined();
  }
  expect(parseAddress('1.2.3.4')).toEqual({ family: 4, bytes: [1, 2, 3, 4] });
});

const strict = addressPolicy([], ['198.51.100.9', '2001:db8::f']);
const ruleOf = (address: string, policy = strict) => addressRefusal(address, policy)?.rule;

test.each([
  ['127.0.0.1', 'front'],
  ['::1', 'front'],
  ['::ffff:127.0.0.1', 'front'],
  ['127.0.0.2', 'loopback'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['::', 'unspecified'],
  ['169.254.169.254', 'link-local'],
  ['fe80::1', 'link-local'],
  ['::ffff:169.254.169.254', 'link-local'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['ff02::1', 'multicast'],
  ['255.255.255.255', 'broadcast'],
  ['240.0.0.1', 'reserved'],
  ['10.0.0.1', 'private'],
  ['172.16.5.4', 'private'],
  ['192.168.1.1', 'private'],
  ['fd00::1', 'private'],
  ['100.64.0.1', 'shared'],
  ['192.0.2.44', 'documentation'],
  ['2001:db8::7', 'documentation'],
  // Other IPv6 spellings of IPv4 addresses are judged as the address they lead to.
  ['::7f00:2', 'loopback'],
  ['::10.0.0.1', 'private'],
  ['64:ff9b::a9fe:a9fe', 'link-local'],
  ['64:ff9b::127.0.0.2', 'loopback'],
  ['2002:7f00:1::', 'front'],
  ['2002:a00:1::', 'private'],
  ['::5', 'unspecified'],
  // The front's own public addresses, in any spelling.
  ['198.51.100.9', 'front'],
  ['::ffff:c633:6409', 'front'],
  ['2001:DB8:0::F', 'front'],
  ['not-an-address', 'reserved'],
])('%s is refused by the rule %s', (address, rule) => {
  expect(ruleOf(address)).toBe(rule);
});

test('public addresses are accepted, in any spelling', () => {
  for (const address of ['93.184.216.34', '::ffff:93.184.216.34', '2606:4700::1111', '64:ff9b::5db8:d822']) {
    expect(addressRefusal(address, strict)).toBeUndefined();
  }
});

test('a setting opens private, loopback and documentation ranges, never the front or what is no host', () => {
  const local = addressPolicy(
    [parseAddressRange('127.0.0.2-127.0.0.254'), parseAddressRange('10.0.0.0/8')],
    [],
  );
  expect(ruleOf('127.0.0.2', local)).toBeUndefined();
  expect(ruleOf('127.0.0.254', local)).toBeUndefined();
  expect(ruleOf('127.0.0.255', local)).toBe('loopback');
  expect(ruleOf('10.9.8.7', local)).toBeUndefined();
  expect(ruleOf('::ffff:10.9.8.7', local)).toBeUndefined();
  expect(ruleOf('192.168.0.1', local)).toBe('private');
  expect(ruleOf('127.0.0.1', local)).toBe('front');
  const everything = addressPolicy([parseAddressRange('0.0.0.0/0'), parseAddressRange('::/0')], []);
  for (const address of [
    '0.0.0.0',
    '169.254.169.254',
    '224.0.0.1',
    '255.255.255.255',
    'fe80::1',
    '127.0.0.1',
  ]) {
    expect(ruleOf(address, everything)).toBeDefined();
  }
});

test('a refusal names the address, the rule and, where it can be allowed, the setting', () => {
  expect(addressRefusal('10.0.0.1', strict)?.message).toBe(
    '10.0.0.1 is a private address (rule: private); an installation whose VPSs use such addresses allows them in CL_ALLOWED_PRIVATE_ADDRESSES',
  );
  expect(addressRefusal('::ffff:169.254.169.254', strict)?.message).toMatch(
    /^169\.254\.169\.254 is link-local .*\(rule: link-local\)$/,
  );
});

test('ranges are CIDR blocks, two addresses joined by "-", or one address', () => {
  expect(parseAddressRange('10.0.0.0/8')).toMatchObject({ family: 4, first: 0x0a000000n, last: 0x0affffffn });
  expect(parseAddressRange('10.1.2.3/8')).toMatchObject({ first: 0x0a000000n });
  expect(parseAddressRange('127.0.0.2-127.0.0.254')).toMatchObject({ first: 0x7f000002n, last: 0x7f0000fen });
  expect(parseAddressRange('fd00::/8')).toMatchObject({ family: 6 });
  expect(parseAddressRange(' 192.0.2.1 ')).toMatchObject({ first: 0xc0000201n, last: 0xc0000201n });
  for (const bad of [
    '10.0.0.0/33',
    '10.0.0.0/x',
    'fd00::/129',
    '10.0.0.9-10.0.0.1',
    '10.0.0.1-::1',
    'nope',
    '1-2-3',
  ]) {
    expect(() => parseAddressRange(bad)).toThrow();
  }
});
