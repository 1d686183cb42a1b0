import { MAX_REDACTED_SECRETS, Redactor, redactWindows, stripControlCharacters } from './redact.js';

const base64 = (value: string) => Buffer.from(value, 'utf8').toString('base64');
const base64url = (value: string) => base64(value).replace(/\+/g, '-').replace(/\//g, '_');

describe('Redactor', () => {
  it('replaces the raw value, wherever and however often it occurs', () => {
    const redactor = new Redactor({ DB_PASSWORD: 'hunter2-hunter2' });
    expect(redactor.redact('connecting with hunter2-hunter2 to db')).toBe(
      'connecting with [secret:DB_PASSWORD] to db',
    );
    expect(redactor.redact('hunter2-hunter2,hunter2-hunter2 and hunter2-hunter2')).toBe(
      '[secret:DB_PASSWORD],[secret:DB_PASSWORD] and [secret:DB_PASSWORD]',
    );
    expect(redactor.redact('nothing to see')).toBe('nothing to see');
  });

  // Bytes chosen so that the standard alphabet has both + and /, and the encoding ends in one '='.
  const binaryish = 'ab>>>??~~~~x1z';
  it('has a value whose base64 uses + / and padding (precondition)', () => {
    expect(base64(binaryish)).toMatch(/\+/);
    expect(base64(binaryish)).toMatch(/\//);
    expect(base64(binaryish)).toMatch(/[^=]=$/);
  });

  it.each([
    ['standard base64, padded', base64(binaryish)],
    ['standard base64, unpadded', base64(binaryish).replace(/=+$/, '')],
    ['URL-safe base64, padded', base64url(binaryish)],
    ['URL-safe base64, unpadded', base64url(binaryish).replace(/=+$/, '')],
  ])('replaces %s', (_form, encoded) => {
    const redactor = new Redactor({ TOKEN: binaryish });
    expect(redactor.redact(`Authorization: Basic ${encoded};`)).toBe('Authorization: Basic [secret:TOKEN];');
  });

  it('encodes non-ASCII values as UTF-8 before base64', () => {
    const value = 'pässwörd-日本語-🔑';
    const redactor = new Redactor({ K: value });
    for (const encoded of [base64(value), base64url(value), base64(value).replace(/=+$/, '')])
      expect(redactor.redact(`x ${encoded} y`)).toBe('x [secret:K] y');
    expect(redactor.redact(`raw ${value}`)).toBe('raw [secret:K]');
    expect(redactor.redact(`url ${encodeURIComponent(value)}`)).toBe('url [secret:K]');
  });

  it('replaces the URL-encoded value', () => {
    const value = 'p@ss word&x=1/2';
    const redactor = new Redactor({ API_KEY: value });
    expect(encodeURIComponent(value)).not.toBe(value);
    expect(redactor.redact(`GET /hook?key=${encodeURIComponent(value)}&a=1`)).toBe(
      'GET /hook?key=[secret:API_KEY]&a=1',
    );
  });

  it('replaces the JSON-escaped value (quotes and backslashes)', () => {
    const value = 'pa"ss\\word\tend';
    const redactor = new Redactor({ PW: value });
    const line = JSON.stringify({ config: { password: value } });
    expect(line).not.toContain(value);
    expect(redactor.redact(line)).toBe('{"config":{"password":"[secret:PW]"}}');
  });

  it('replaces each line of a multi-line value that is long enough on its own', () => {
    const value = '-----BEGIN KEY-----\nMIIBVQIBADANBgkq\nshort\r\nhkiG9w0BAQEFAASC\n-----END KEY-----';
    const redactor = new Redactor({ KEY: value });
    expect(redactor.redact('  MIIBVQIBADANBgkq')).toBe('  [secret:KEY]');
    expect(redactor.redact('hkiG9w0BAQEFAASC')).toBe('[secret:KEY]');
    expect(redactor.redact('short')).toBe('short');
    expect(redactor.redact(`whole: ${value}`)).toBe('whole: [secret:KEY]');
  });

  it('lets the longer of two values that contain each other win', () => {
    const redactor = new Redactor({ INNER: 'abcdefgh12', OUTER: 'xx-abcdefgh12-yy' });
    expect(redactor.redact('a xx-abcdefgh12-yy b')).toBe('a [secret:OUTER] b');
    expect(redactor.redact('a abcdefgh12 b')).toBe('a [secret:INNER] b');
  });

  it('leaves no fragment of values that partly overlap', () => {
    const redactor = new Redactor({ X: 'aaaabbbbcccc', Y: 'ccccddddeeee' });
    expect(redactor.redact('>aaaabbbbccccddddeeee<')).toBe('>[secret:X][secret:Y]<');
  });

  it('covers a value repeated back to back, overlapping itself, as one marker', () => {
    const redactor = new Redactor({ R: 'abababab' });
    expect(redactor.redact('xabababababababy')).toBe('x[secret:R]y');
  });

  it('ignores values and patterns shorter than 8 characters', () => {
    const redactor = new Redactor({ PIN: '1234567', LONG: 'exactly8' });
    expect(redactor.redact('pin 1234567')).toBe('pin 1234567');
    expect(redactor.redact('v exactly8')).toBe('v [secret:LONG]');
    expect(redactor.maxPatternLength).toBe(base64('exactly8').length);
    expect(new Redactor({ PIN: '1234' }).maxPatternLength).toBe(0);
  });

  it('names a value shared by two secrets after the first name, always', () => {
    expect(new Redactor({ B: 'same-value', A: 'same-value' }).redact('same-value')).toBe('[secret:A]');
  });

  it('reports its longest pattern and refuses more than the API allows', () => {
    expect(new Redactor({ A: 'a'.repeat(30) }).maxPatternLength).toBe(base64('a'.repeat(30)).length);
    const many = Object.fromEntries(
      Array.from({ length: MAX_REDACTED_SECRETS + 1 }, (_, i) => [`S${i}`, `value-${i}-xxxx`]),
    );
    expect(() => new Redactor(many)).toThrow(/at most 100 secrets/);
    delete many.S0;
    expect(new Redactor(many).redact('value-7-xxxx')).toBe('[secret:S7]');
  });
});

describe('redactWindows', () => {
  const value = 'straddling-secret-value';
  const redactor = new Redactor({ S: value });
  const windowSize = 100;

  it('redacts a value that straddles the cut between two windows', () => {
    const before = 'x'.repeat(windowSize - 10);
    const text = `${before}${value}${'y'.repeat(300)}`;
    // What cutting first and redacting each piece would leak.
    const naive = redactor.redact(text.slice(0, windowSize)) + redactor.redact(text.slice(windowSize));
    expect(naive).toContain(value.slice(0, 10));
    const redacted = redactWindows(text, redactor, windowSize);
    expect(redacted).toBe(`${before}[secret:S]${'y'.repeat(300)}`);
    expect(redacted).toBe(redactor.redact(text));
  });

  it('finds values at every offset, including the end', () => {
    for (let offset = 0; offset < 2 * windowSize; offset += 7) {
      const text = `${'-'.repeat(offset)}${value}${'-'.repeat(offset % 13)}`;
      expect(redactWindows(text, redactor, windowSize)).toBe(redactor.redact(text));
      expect(redactWindows(text, redactor, windowSize)).not.toContain('straddling');
    }
  });

  it('refuses windows too short to overlap, and passes text through when nothing is secret', () => {
    expect(() => redactWindows('abc', redactor, redactor.maxPatternLength - 1)).toThrow(RangeError);
    expect(redactWindows('abc', new Redactor({}), 1)).toBe('abc');
  });
});

describe('stripControlCharacters', () => {
  it('removes C0 controls but tab, DEL and C1 controls', () => {
    expect(stripControlCharacters('\u001b[31mred\u001b[0m\tend\r\u0000\u007f\u0085\u009bx\u00a0é')).toBe(
      '[31mred[0m\tendx\u00a0é',
    );
  });

  it('returns a clean line as it is', () => {
    const line = 'plain text\twith tab, ünïcode and 🔑';
    expect(stripControlCharacters(line)).toBe(line);
  });
});
