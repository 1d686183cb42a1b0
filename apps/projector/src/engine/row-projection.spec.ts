import type { StoredEvent } from '#contracts';
import { RowProjection } from './row-projection.js';

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
