import type { StoredEvent } from '#contracts';
import { RowProjection } from './row-projection.js';
import { isTransientDatabaseError } from './transient.js';
import { copyText, insertValues } from './runner.js';

type Counter = { id: string; total: number };

const counters = new RowProjection<Counter>({
  name: 'counters',
  table: 'counters',
  key: 'id',
  columns: { id: 'text', total: 'integer' },
  eventTypes: ['Added', 'Removed'],
  keyOf: (event) => event.aggregate.id,
  evolve: (row, event) =>
    event.type === 'Removed'
      ? undefined
      : { id: event.aggregate.id, total: (row?.total ?? 0) + (event.data as { by: number }).by },
});

const event = (sequence: number, type: string, id: string, by = 0): StoredEvent => ({
  id: `e${sequence}`,
  type,
  schemaVersion: 1,
  aggregate: { type: 'agent', id },
  occurredAt: '2026-11-22T00:00:00.000Z',
  actor: { kind: 'system', id: 't' },
  correlationId: 'c',
  causationId: null,
  data: { by },
  sequence,
  subject: `events.agent.${id}`,
});

describe('RowProjection.fold', () => {
  it('folds events into rows and deletes rows that evolve to nothing', () => {
    const rows = counters.fold([
      event(1, 'Added', 'a', 2),
      event(2, 'Added', 'b', 1),
      event(3, 'Added', 'a', 3),
      event(4, 'Removed', 'b'),
    ]);
    expect([...rows.values()]).toEqual([{ id: 'a', total: 5 }]);
  });
});

describe('isTransientDatabaseError', () => {
  it.each([
    [{ code: '08006' }, true],
    [{ driverError: { code: '57P01' } }, true],
    [{ code: 'ECONNREFUSED' }, true],
    [new Error('Connection terminated unexpectedly'), true],
    [{ code: '23505' }, false],
    [new Error('cannot project this agent'), false],
  ])('%j → %s', (error, transient) => {
    expect(isTransientDatabaseError(error)).toBe(transient);
  });
});

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
