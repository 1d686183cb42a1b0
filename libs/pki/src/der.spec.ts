import forge from 'node-forge';
import {
  bigIntInteger,
  childrenOf,
  extension,
  oid,
  readTlv,
  serialInteger,
  timeValue,
  wholeSeconds,
} from './der.js';

const hex = (value: forge.asn1.Asn1) => forge.util.bytesToHex(forge.asn1.toDer(value).getBytes());

describe('readTlv', () => {
  it('reads short and long lengths and walks children', () => {
    const der = Buffer.from('3006020101020102', 'hex');
    const outer = readTlv(der);
    expect(outer).toEqual({ tag: 0x30, start: 0, contentStart: 2, end: 8 });
    expect(
      childrenOf(der, outer).map((child) => der.subarray(child.start, child.end).toString('hex')),
    ).toEqual(['020101', '020102']);
    const long = Buffer.concat([Buffer.from('048180', 'hex'), Buffer.alloc(128)]);
    expect(readTlv(long)).toEqual({ tag: 0x04, start: 0, contentStart: 3, end: 131 });
  });

  it.each([
    ['truncated header', '30'],
    ['truncated content', '300501'],
    ['indefinite length (BER)', '3080'],
    ['non-minimal long length', '30810100'],
    ['leading zero length octet', '3082000100'],
    ['multi-octet tag', '1f0100'],
  ])('refuses %s', (_what, bytes) => {
    expect(() => readTlv(Buffer.from(bytes, 'hex'))).toThrow();
  });
});

describe('INTEGER encoding', () => {
  it.each([
    [0n, '020100'],
    [127n, '02017f'],
    [128n, '02020080'],
    [256n, '02020100'],
    [2n ** 64n, '0209010000000000000000'],
  ])('%s', (value, expected) => {
    expect(hex(bigIntInteger(value))).toBe(expected);
  });
  it('refuses negatives', () => {
    expect(() => bigIntInteger(-1n)).toThrow();
  });
  it('encodes serials minimally and positive', () => {
    expect(hex(serialInteger('7f01'))).toBe('02027f01');
    expect(hex(serialInteger('ff01'))).toBe('020300ff01');
    expect(hex(serialInteger('0001'))).toBe('020101');
  });
});

describe('timeValue', () => {
  it('uses UTCTime from 1950 to 2049 and GeneralizedTime outside, in whole seconds with Z', () => {
    expect(hex(timeValue(new Date('2049-12-31T23:59:59Z')))).toBe(
      '170d' + Buffer.from('491231235959Z').toString('hex'),
    );
    expect(hex(timeValue(new Date('2050-01-01T00:00:00Z')))).toBe(
      '180f' + Buffer.from('20500101000000Z').toString('hex'),
    );
    expect(hex(timeValue(new Date('1949-06-01T00:00:00Z')))).toMatch(/^180f/);
    expect(wholeSeconds(new Date('2030-01-01T00:00:00.999Z')).toISOString()).toBe('2030-01-01T00:00:00.000Z');
  });
});

describe('extension', () => {
  it('omits critical when false (DER DEFAULT) and wraps the value in an OCTET STRING', () => {
    const value = forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.INTEGER, false, '\x05');
    expect(hex(extension('2.5.29.20', value))).toBe('300a' + hex(oid('2.5.29.20')) + '0403020105');
    expect(hex(extension('2.5.29.20', value, true))).toBe(
      '300d' + hex(oid('2.5.29.20')) + '0101ff' + '0403020105',
    );
  });
});
