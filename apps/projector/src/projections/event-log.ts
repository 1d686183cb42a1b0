import { AppendOnlyProjection } from '#persistence';

/** One row per event: the index the dashboard pages and filters (the event's data stays in the log). */
export const eventLogProjection = new AppendOnlyProjection({
  name: 'event_log',
  table: 'event_log',
  columns: [
    'sequence',
    'event_id',
    'type',
    'aggregate_type',
    'aggregate_id',
    'actor_kind',
    'actor_id',
    'occurred_at',
    'correlation_id',
    'causation_id',
  ],
  readsData: false,
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
