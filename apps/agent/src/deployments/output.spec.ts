import { LOG_LINE_MAX_CHARACTERS, logBatch, Redactor } from '#contracts';
import { batches, LineAssembler } from './output.js';

const SECRET = 'hunter2-correct-horse';
const bytes = (text: string) => new TextEncoder().encode(text);
const at = () => new Date('2030-01-01T00:00:00Z');

test('complete lines come out redacted; a partial one waits for its end', () => {
  const lines = new LineAssembler(new Redactor({ TOKEN: SECRET }), 'out', at);
  expect(lines.push(bytes(`one ${SECRET}\ntw`)).map((line) => line.x)).toEqual(['one [secret:TOKEN]']);
  expect(lines.push(bytes('o\r\nthree'))).toEqual([{ t: '2030-01-01T00:00:00.000Z', s: 'out', x: 'two' }]);
  expect(lines.end().map((line) => line.x)).toEqual(['three']);
  expect(lines.end()).toEqual([]);
});

test('a secret split across reads, or inside a very long line, is still removed', () => {
  const lines = new LineAssembler(new Redactor({ TOKEN: SECRET }), 'err', at);
  expect(lines.push(bytes(`x ${SECRET.slice(0, 5)}`))).toEqual([]);
  expect(lines.push(bytes(`${SECRET.slice(5)} y\n`)).map((line) => line.x)).toEqual(['x [secret:TOKEN] y']);
  const long = `${'a'.repeat(70 * 1024)}${SECRET}${'b'.repeat(10)}`;
  const out = [...lines.push(bytes(long)), ...lines.end()];
  expect(out.map((line) => line.x).join('')).not.toContain(SECRET);
  for (const line of out) expect(line.x.length).toBeLessThanOrEqual(LOG_LINE_MAX_CHARACTERS);
});

test('terminal escapes are stripped, and multi-byte characters split across reads survive', () => {
  const lines = new LineAssembler(new Redactor({}), 'out', at);
  const euro = bytes('€\n');
  expect(lines.push(euro.slice(0, 1))).toEqual([]);
  expect(lines.push(euro.slice(1)).map((line) => line.x)).toEqual(['€']);
  expect(lines.push(bytes('\u001b[2Jcleared\n')).map((line) => line.x)).toEqual(['[2Jcleared']);
});

test('batches respect the relay’s limits and each one is a valid batch', () => {
  const many = Array.from({ length: 600 }, (_, index) => ({
    t: at().toISOString(),
    s: 'out' as const,
    x: `line ${index}`,
  }));
  const grouped = batches(many);
  expect(grouped.map((batch) => batch.length)).toEqual([256, 256, 88]);
  for (const [seq, lines] of grouped.entries())
    expect(logBatch.safeParse({ boot: 'b', seq, lines }).success).toBe(true);
  const big = Array.from({ length: 40 }, () => ({
    t: at().toISOString(),
    s: 'out' as const,
    x: 'x'.repeat(4000),
  }));
  for (const batch of batches(big)) expect(JSON.stringify(batch).length).toBeLessThan(64 * 1024);
});
