import { copyText, insertValues } from './postgres-writes.js';

describe('copyText', () => {
  it('escapes separators and backslashes, writes null as \\N and objects as JSON', () => {
    expect(copyText([[1, 'a\tb', null, 'line\nbreak', 'back\\slash', { k: 'v' }, true]])).toBe(
      '1\ta\\tb\t\\N\tline\\nbreak\tback\\\\slash\t{"k":"v"}\ttrue\n',
    );
  });
});

describe('insertValues', () => {
  it('numbers one parameter per value, row by row, with objects as JSON and undefined as null', () => {
    expect(
      insertValues('"s"."t" ("a", "b")', 2, [
        [1, { k: 'v' }],
        ['x', undefined],
      ]),
    ).toEqual({
      sql: 'INSERT INTO "s"."t" ("a", "b") VALUES ($1, $2), ($3, $4)',
      parameters: [1, '{"k":"v"}', 'x', null],
    });
  });

  it('refuses a row whose width does not match the columns', () => {
    expect(() => insertValues('"t" ("a", "b")', 2, [[1]])).toThrow('a row has 1 values for 2 columns');
  });
});
