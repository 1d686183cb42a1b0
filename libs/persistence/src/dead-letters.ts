import type { DataSource, EntityManager } from 'typeorm';
import type { DeadLetterStatus } from '#contracts';
import type { DeadLetter, DeadLetterSink } from '#eventstore';
import { rowsOf, type Queryable } from './tables/columns.js';

const INSERT_DEAD_LETTER = `
  INSERT INTO dead_letters (consumer, stream, sequence, subject, event_type, event_id, deliveries, error, payload)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
  ON CONFLICT (consumer, sequence) DO UPDATE
    SET deliveries = EXCLUDED.deliveries, error = EXCLUDED.error, updated_at = now(),
        -- What an admin dismissed stays dismissed when it fails again (a rebuild applies it again).
        status = CASE WHEN dead_letters.status = 'dismissed' THEN 'dismissed' ELSE 'open' END`;

/** Writes a dead letter through any manager, so a projection can record one inside its own transaction. */
export async function insertDeadLetter(
  manager: Pick<EntityManager, 'query'>,
  letter: DeadLetter,
): Promise<void> {
  await manager.query(INSERT_DEAD_LETTER, [
    letter.consumer,
    letter.stream,
    letter.sequence,
    letter.subject,
    letter.eventType,
    letter.eventId,
    letter.deliveries,
    letter.error.slice(0, 4_000),
    letter.payload,
  ]);
}

export class PostgresDeadLetters implements DeadLetterSink {
  constructor(private readonly dataSource: DataSource) {}

  record(letter: DeadLetter): Promise<void> {
    return insertDeadLetter(this.dataSource.manager, letter);
  }

  async resolve(consumer: string, sequence: number): Promise<void> {
    await this.dataSource.query(
      `UPDATE dead_letters SET status = 'resolved', updated_at = now() WHERE consumer = $1 AND sequence = $2`,
      [consumer, sequence],
    );
  }
}

/** Dead letters by status (dismissed ones included). */
export function countDeadLettersByStatus(
  db: Queryable,
): Promise<{ status: DeadLetterStatus; count: number }[]> {
  return rowsOf(db, 'SELECT status, count(*)::int AS count FROM dead_letters GROUP BY status');
}
