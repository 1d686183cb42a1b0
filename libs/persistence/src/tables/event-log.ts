import type { EventIndexEntry } from '#contracts';
import { iso, rowsOf, type Queryable } from './columns.js';

/**
 * Projection `event_log` (migrations/1764000000000-foundation.ts): one row per event, the index the
 * dashboard pages and filters; the event's data stays in the log. Append-only, written with COPY.
 */
export type EventLogRow = {
  sequence: number;
  event_id: string;
  type: string;
  aggregate_type: string;
  aggregate_id: string;
  actor_kind: string;
  actor_id: string;
  occurred_at: string;
  correlation_id: string;
  causation_id: string | null;
};

/** The columns in the order the projection writes them. */
export const eventLogTable = {
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
  ] as const satisfies readonly (keyof EventLogRow)[],
} as const;

const COLUMNS = eventLogTable.columns.join(', ');

type StoredEventLogRow = Omit<EventLogRow, 'sequence' | 'occurred_at'> & {
  sequence: string;
  occurred_at: Date;
};

function entryOf(row: StoredEventLogRow): EventIndexEntry {
  return {
    sequence: Number(row.sequence),
    eventId: row.event_id,
    type: row.type,
    aggregate: { type: row.aggregate_type, id: row.aggregate_id },
    actor: { kind: row.actor_kind, id: row.actor_id },
    occurredAt: iso(row.occurred_at),
    correlationId: row.correlation_id,
    causationId: row.causation_id,
  };
}

export interface EventLogFilters {
  type?: string;
  aggregateType?: string;
  aggregateId?: string;
  actorKind?: string;
  actorId?: string;
  correlationId?: string;
  causationId?: string;
  from?: string;
  to?: string;
  /** Newest first, older than this sequence (the default order). */
  before?: number;
  /** Oldest first, newer than this sequence (following the log). */
  after?: number;
}

/** One page of the index and where the next starts (null at the end). */
export async function queryEventLog(
  db: Queryable,
  filters: EventLogFilters,
  limit: number,
): Promise<{ events: EventIndexEntry[]; next: { before?: number; after?: number } | null }> {
  const forward = filters.after !== undefined;
  const conditions: string[] = [];
  const values: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    values.push(value);
    conditions.push(sql.replace('?', `$${values.length}`));
  };
  if (filters.type) add('type = ?', filters.type);
  if (filters.aggregateType) add('aggregate_type = ?', filters.aggregateType);
  if (filters.aggregateId) add('aggregate_id = ?', filters.aggregateId);
  if (filters.actorKind) add('actor_kind = ?', filters.actorKind);
  if (filters.actorId) add('actor_id = ?', filters.actorId);
  if (filters.correlationId) add('correlation_id = ?', filters.correlationId);
  if (filters.causationId) add('causation_id = ?', filters.causationId);
  if (filters.from) add('occurred_at >= ?', filters.from);
  if (filters.to) add('occurred_at <= ?', filters.to);
  if (filters.before !== undefined) add('sequence < ?', filters.before);
  if (filters.after !== undefined) add('sequence > ?', filters.after);
  values.push(limit + 1);
  const rows = await rowsOf<StoredEventLogRow>(
    db,
    `SELECT ${COLUMNS}
       FROM event_log ${conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''}
      ORDER BY sequence ${forward ? 'ASC' : 'DESC'} LIMIT $${values.length}`,
    values,
  );
  const page = rows.slice(0, limit).map(entryOf);
  const last = page[page.length - 1];
  const next =
    rows.length > limit && last ? (forward ? { after: last.sequence } : { before: last.sequence }) : null;
  return { events: page, next };
}

/**
 * An agent's own events, newest first: its agent aggregate, its certificates, and its routes and their
 * host names (present and past). Index-backed: each part is a lookup by aggregate.
 */
export async function queryAgentEvents(
  db: Queryable,
  agentId: string,
  page: { before?: number; limit: number },
): Promise<{ events: EventIndexEntry[]; next: { before: number } | null }> {
  const rows = await rowsOf<StoredEventLogRow>(
    db,
    `SELECT ${COLUMNS}
       FROM event_log
      WHERE ((aggregate_type = 'agent' AND aggregate_id = $1)
          OR (aggregate_type = 'certificate' AND aggregate_id = $1)
          OR (aggregate_type = 'route' AND aggregate_id IN (SELECT route_id FROM routes WHERE agent_id = $1))
          OR (aggregate_type = 'hostname'
              AND aggregate_id IN (SELECT hostname FROM routes WHERE agent_id = $1)))
        AND ($2::bigint IS NULL OR sequence < $2)
      ORDER BY sequence DESC LIMIT $3`,
    [agentId, page.before ?? null, page.limit + 1],
  );
  const events = rows.slice(0, page.limit).map(entryOf);
  const last = events[events.length - 1];
  return { events, next: rows.length > page.limit && last ? { before: last.sequence } : null };
}

/** Events per minute over the last `minutes` minutes, oldest first (minutes without events count 0). */
export async function eventsPerMinute(
  db: Queryable,
  minutes: number,
): Promise<{ minute: string; count: number }[]> {
  // Time grows with the sequence (BRIN index on occurred_at): this reads only the last minutes.
  const rows = await rowsOf<{ minute: Date; count: number }>(
    db,
    `SELECT minute, coalesce(counts.count, 0)::int AS count
       FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1),
                            date_trunc('minute', now()), interval '1 minute') AS minute
       LEFT JOIN (SELECT date_trunc('minute', occurred_at) AS at, count(*) AS count FROM event_log
                   WHERE occurred_at >= date_trunc('minute', now()) - make_interval(mins => $1 - 1)
                   GROUP BY 1) counts ON counts.at = minute
      ORDER BY minute`,
    [minutes],
  );
  return rows.map((row) => ({ minute: iso(row.minute), count: row.count }));
}
