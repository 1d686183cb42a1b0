import { eventDefinitions, type StoredEvent } from '#contracts';
import { RowProjection } from '#persistence';

export interface EventStatsRow extends Record<string, string | number> {
  type: string;
  count: number;
  last_sequence: number;
  last_occurred_at: string;
}

/** Events per type: the dashboard's event counts and rates. */
export function evolveEventStats(row: EventStatsRow | undefined, event: StoredEvent): EventStatsRow {
  return {
    type: event.type,
    count: (row?.count ?? 0) + 1,
    last_sequence: event.sequence,
    last_occurred_at: event.occurredAt,
  };
}

export const eventStatsProjection = new RowProjection<EventStatsRow>({
  name: 'event_stats',
  table: 'event_stats',
  key: 'type',
  columns: { type: 'text', count: 'bigint', last_sequence: 'bigint', last_occurred_at: 'timestamptz' },
  eventTypes: eventDefinitions.map((definition) => definition.type),
  readsData: false,
  keyOf: (event) => event.type,
  evolve: evolveEventStats,
});
