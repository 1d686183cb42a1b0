import { eventLogTable } from '#persistence';
import { AppendOnlyProjection } from '../engine/append-only-projection.js';

/** One row per event: the index the dashboard pages and filters (the event's data stays in the log). */
export const eventLogProjection = new AppendOnlyProjection({
  name: 'event_log',
  ...eventLogTable,
  readsData: false,
  // In the order of eventLogTable.columns.
  rowOf: (event) => [
    event.sequence,
    event.id,
    event.type,
    event.aggregate.type,
    event.aggregate.id,
    event.actor.kind,
    event.actor.id,
    event.occurredAt,
    event.correlationId,
    event.causationId,
  ],
});
