import { ApiError, clean, safeJson, safeJsonLine, ServerEventParser, withHint } from './api-client.js';

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

describe('safeJsonLine', () => {
  it('is one line, with the C1 controls escaped, losslessly', () => {
    const value = { x: 'a\nb\u009b\u202e' };
    const text = safeJsonLine(value);
    expect(text).not.toMatch(/[\n\u009b]/);
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('ServerEventParser', () => {
  it('reads events split anywhere across chunks, skipping comments, keeping the last id', () => {
    const parser = new ServerEventParser();
    const stream =
      'retry: 2000\n\nid: 7\nevent: lines\ndata: {"lines":[]}\n\n: heartbeat\n\nevent: end\r\ndata: {}\r\n\r\n';
    const events = [];
    for (let at = 0; at < stream.length; at += 3) events.push(...parser.push(stream.slice(at, at + 3)));
    expect(events).toEqual([
      { event: 'lines', data: '{"lines":[]}', id: '7' },
      { event: 'end', data: '{}', id: '7' },
    ]);
  });

  it('joins data lines, and an event without a name is a message', () => {
    const parser = new ServerEventParser();
    expect(parser.push('data: a\ndata:b\n\n')).toEqual([{ event: 'message', data: 'a\nb', id: undefined }]);
  });
});
