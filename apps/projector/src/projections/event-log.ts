import type { StoredEvent } from '#contracts';
import type { Projection, ProjectionContext } from '#persistence';

const COLUMNS = [
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
] as const;

/** One row per event: the index the dashboard pages and filters (the event's data stays in the log). */
export const eventLogProjection: Projection = {
  name: 'event_log',
  tables: ['event_log'],
  readsData: false,
  async apply(events: readonly StoredEvent[], context: ProjectionContext): Promise<void> {
    // Append-only, so COPY: a replay of the whole log is mostly this table.
    await context.copyRows(
      'event_log',
      COLUMNS,
      events.map((event) => [
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
      ]),
    );
  },
};
