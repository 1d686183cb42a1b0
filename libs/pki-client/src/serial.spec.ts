import { canonicalSerial, generateSerial, serialToDerInteger } from './serial.js';

describe('serials', () => {
  it('are 32 hex digits, positive without padding, never shorter, and different each time', () => {
    const serials = Array.from({ length: 500 }, generateSerial);
    for (const serial of serials) {
      expect(serial).toMatch(/^[4-7][0-9a-f]{31}$/);
      const der = serialToDerInteger(serial);
      expect(der).toHaveLength(16);
      expect(der[0]! & 0x80).toBe(0);
    }
    expect(new Set(serials).size).toBe(serials.length);
  });

  it('have one canonical form: lower case, no colons, no leading zero octets', () => {
    expect(canonicalSerial('0A:1B:2C')).toBe('0a1b2c');
    expect(canonicalSerial('00000a1b2c')).toBe('0a1b2c');
    expect(canonicalSerial('ABC')).toBe('0abc');
    expect(() => canonicalSerial('00')).toThrow('positive');
    expect(() => canonicalSerial('xyz')).toThrow('not hex');
    expect(() => canonicalSerial('01'.repeat(21))).toThrow('20 octets');
  });

  it('encode as minimal positive DER INTEGER content', () => {
    expect(serialToDerInteger('7f').toString('hex')).toBe('7f');
    expect(serialToDerInteger('80').toString('hex')).toBe('0080');
    expect(serialToDerInteger('0001ff').toString('hex')).toBe('01ff');
  });
});
