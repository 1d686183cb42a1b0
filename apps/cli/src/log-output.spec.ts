import { logLineText } from './log-output.js';

describe('logLineText', () => {
  const line = { seq: 4, t: '2026-12-07T12:00:00.000Z', s: 'err', x: 'bad\u001b[2J\tthing \u202eevil' };

  it('prints `<time> <stream> <text>` for people, without control characters', () => {
    expect(logLineText(line, false)).toBe('2026-12-07T12:00:00.000Z err   bad[2J thing evil');
    expect(logLineText({ ...line, s: 'build' }, false)).toMatch(/Z build bad/);
  });

  it('prints one JSON line for machines, the line as the API sent it', () => {
    const text = logLineText(line, true);
    expect(text).not.toContain('\n');
    expect(text).not.toContain('\u001b');
    expect(JSON.parse(text)).toEqual(line);
  });
});
