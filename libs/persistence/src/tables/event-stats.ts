import type { EventTypeStatsView } from '#contracts';
import { iso, rowsOf, type Columns, type Queryable, type StoredRow } from './columns.js';

/** Projection `event_stats` (migrations/1764000000000-foundation.ts): events per type. */
export type EventStatsRow = {
  type: string;
  count: number;
  last_sequence: number;
  last_occurred_at: string;
};

const eventStatsColumns = {
  type: 'text',
  count: 'bigint',
  last_sequence: 'bigint',
  last_occurred_at: 'timestamptz',
} as const satisfies Columns<EventStatsRow>;

export const eventStatsTable = { table: 'event_stats', key: 'type', columns: eventStatsColumns } as const;

/** Every type's count, most frequent first. */
export async function queryEventStats(db: Queryable): Promise<EventTypeStatsView[]> {
  const rows = await rowsOf<StoredRow<EventStatsRow, typeof eventStatsColumns>>(
    db,
    'SELECT type, count, last_sequence, last_occurred_at FROM event_stats ORDER BY count DESC, type',
  );
  return rows.map((row) => ({
    type: row.type,
    count: Number(row.count),
    lastSequence: Number(row.last_sequence),
    lastOccurredAt: iso(row.last_occurred_at),
  }));
}

/** All events counted, the last one's sequence and time (null before the first event). */
export async function eventTotals(
  db: Queryable,
): Promise<{ total: number; lastSequence: number; lastOccurredAt: string | null }> {
  const [row] = await rowsOf<{ total: string; last_sequence: string; last_occurred_at: Date | null }>(
    db,
    `SELECT coalesce(sum(count), 0)::bigint AS total, coalesce(max(last_sequence), 0) AS last_sequence,
            max(last_occurred_at) AS last_occurred_at FROM event_stats`,
  );
  return {
    total: Number(row?.total ?? 0),
    lastSequence: Number(row?.last_sequence ?? 0),
    lastOccurredAt: row?.last_occurred_at ? iso(row.last_occurred_at) : null,
  };
}
