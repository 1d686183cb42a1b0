import { toErrorBody } from '#contracts';
import { assertNamesAllowed } from './csr.js';
import { NameNotAllowedError } from './errors.js';

const allowed = ['agent-1.mongodb.example.test', 'shop.apps.example.test'];

function offending(requested: string[], permitted: string[] = allowed): string | undefined {
  try {
    assertNamesAllowed(requested, permitted);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(NameNotAllowedError);
    return (error as NameNotAllowedError).offendingName;
  }
}

describe('assertNamesAllowed', () => {
  it('allows any subset of the owned names, case-insensitively', () => {
    expect(offending(['agent-1.mongodb.example.test'])).toBeUndefined();
    expect(offending(['SHOP.apps.example.test', 'agent-1.mongodb.example.test'])).toBeUndefined();
  });

  it('names the first name that is not owned', () => {
    expect(offending(['agent-1.mongodb.example.test', 'agent-2.mongodb.example.test', 'x.test'])).toBe(
      'agent-2.mongodb.example.test',
    );
    expect(offending(['mongodb.example.test'])).toBe('mongodb.example.test');
    expect(offending(['sub.shop.apps.example.test'])).toBe('sub.shop.apps.example.test');
  });

  it('matches wildcards only literally: owning *.apps does not grant a name under it, nor the reverse', () => {
    expect(offending(['*.apps.example.test'])).toBe('*.apps.example.test');
    expect(offending(['shop.apps.example.test'], ['*.apps.example.test'])).toBe('shop.apps.example.test');
    expect(offending(['*.apps.example.test'], ['*.apps.example.test'])).toBeUndefined();
  });

  it('is a 403 naming the field and the name', () => {
    let error: unknown;
    try {
      assertNamesAllowed(['evil.test'], allowed, 'data.csr');
    } catch (caught) {
      error = caught;
    }
    expect(toErrorBody(error)).toEqual({
      error: 'forbidden',
      message: 'the certificate request names "evil.test", which the requester does not own',
      field: 'data.csr',
    });
  });
});
