import { eventDefinitions, type StoredEvent } from '#contracts';
import { eventStatsTable, type EventStatsRow } from '#persistence';
import { RowProjection } from '../engine/row-projection.js';

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
  ...eventStatsTable,
  eventTypes: eventDefinitions.map((definition) => definition.type),
  readsData: false,
  keyOf: (event) => event.type,
  evolve: evolveEventStats,
});
