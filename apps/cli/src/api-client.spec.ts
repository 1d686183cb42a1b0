import { ApiError, clean, safeJson, withHint } from './api-client.js';

describe('clean', () => {
  it('removes C0 and C1 controls, DEL, newlines and bidirectional overrides; tabs become spaces', () => {
    expect(clean('\u001b]0;owned\u0007red\u001b[0m\tx\ny\r\u007f\u009b2J\u202eevil\u2066é')).toBe(
      ']0;ownedred[0m xy2Jevilé',
    );
  });

  it('leaves plain text as it is, and prints nothing for null', () => {
    expect(clean('web.apps.deploy.test ünïcode 🔑')).toBe('web.apps.deploy.test ünïcode 🔑');
    expect(clean(null)).toBe('');
  });
});

describe('safeJson', () => {
  it('escapes every control character, losslessly', () => {
    const value = { line: '\u001b[31m\u009bx\u007f' };
    const text = safeJson(value);
    for (const raw of ['\u001b', '\u007f', '\u009b']) expect(text).not.toContain(raw);
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('ApiError', () => {
  it('says the message, the field and the option that sets it', () => {
    const error = withHint(new ApiError(400, 'invalid', 'must be https', 'source.url'), (field) =>
      field === 'source.url' ? '--git' : undefined,
    );
    expect((error as Error).message).toBe('must be https (field source.url, --git) [400 invalid]');
  });
});
