import { dnsLabel, hostname, hostOrAddress, ipAddress, label, port } from './fields.js';
import { parseOrThrow, ValidationError } from './validation.js';

const accepts = (schema: { safeParse(value: unknown): { success: boolean } }, value: unknown) =>
  schema.safeParse(value).success;

describe('hostname', () => {
  it.each(['a', 'app.apps.example.com', 'x-1.y', '0.example', 'a'.repeat(63) + '.com'])(
    'accepts %s',
    (value) => {
      expect(accepts(hostname, value)).toBe(true);
    },
  );
  it.each([
    ['', 'empty'],
    ['App.example.com', 'upper case'],
    ['a..b', 'empty label'],
    ['-a.b', 'leading hyphen'],
    ['a-.b', 'trailing hyphen'],
    ['a.b.', 'trailing dot'],
    ['*.example.com', 'wildcard'],
    ['a b.com', 'space'],
    ['a.com\nbind :80', 'newline'],
    ['a_b.com', 'underscore'],
    ['a'.repeat(64) + '.com', 'label over 63'],
    [Array(128).fill('ab').join('.'), 'over 253'],
    ['exämple.com', 'unicode'],
  ])('rejects %j (%s)', (value) => {
    expect(accepts(hostname, value)).toBe(false);
  });
});

describe('dnsLabel', () => {
  it('accepts lower-case labels and rejects dots, upper case and overlong ones', () => {
    expect(accepts(dnsLabel, 'agent-1')).toBe(true);
    expect(accepts(dnsLabel, 'agent.1')).toBe(false);
    expect(accepts(dnsLabel, 'Agent')).toBe(false);
    expect(accepts(dnsLabel, 'a'.repeat(64))).toBe(false);
  });
});

describe('port', () => {
  it.each([1, 80, 65535])('accepts %d', (value) => expect(accepts(port, value)).toBe(true));
  it.each([0, 65536, -1, 8.5, '80', null])('rejects %j', (value) => expect(accepts(port, value)).toBe(false));
});

describe('addresses', () => {
  it('accepts IPv4 and IPv6 literals only', () => {
    expect(accepts(ipAddress, '127.0.0.2')).toBe(true);
    expect(accepts(ipAddress, '::1')).toBe(true);
    expect(accepts(ipAddress, '256.0.0.1')).toBe(false);
    expect(accepts(ipAddress, 'localhost')).toBe(false);
    expect(accepts(hostOrAddress, 'db.internal')).toBe(true);
    expect(accepts(hostOrAddress, '10.0.0.1')).toBe(true);
    expect(accepts(hostOrAddress, '10.0.0.1:80')).toBe(false);
  });
});

describe('label', () => {
  it('refuses control characters and overlong text', () => {
    expect(accepts(label(10), 'ok name')).toBe(true);
    expect(accepts(label(10), 'bad\u0000')).toBe(false);
    expect(accepts(label(10), 'tab\there')).toBe(false);
    expect(accepts(label(10), 'x'.repeat(11))).toBe(false);
  });
});

describe('parseOrThrow', () => {
  it('names the nested field, with a prefix', () => {
    const error = (() => {
      try {
        parseOrThrow(hostname, 'BAD', 'target.host');
      } catch (caught) {
        return caught as ValidationError;
      }
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect(error!.field).toBe('target.host');
  });
});
