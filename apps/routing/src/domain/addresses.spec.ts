import { canonicalAddress, parseAddress, unroutableReason } from './addresses.js';

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

test('the unspecified address, broadcast and multicast are not hosts', () => {
  expect(unroutableReason('0.0.0.0')).toMatch(/this network/);
  expect(unroutableReason('0.1.2.3')).toMatch(/this network/);
  expect(unroutableReason('255.255.255.255')).toMatch(/broadcast/);
  expect(unroutableReason('224.0.0.1')).toMatch(/multicast/);
  expect(unroutableReason('239.255.255.250')).toMatch(/multicast/);
  expect(unroutableReason('::')).toMatch(/unspecified/);
  expect(unroutableReason('ff02::1')).toMatch(/multicast/);
  for (const host of ['10.0.0.1', '127.0.0.1', '203.0.113.7', '::1', '2001:db8::7', '240.0.0.1']) {
    expect(unroutableReason(host)).toBeUndefined();
  }
});
