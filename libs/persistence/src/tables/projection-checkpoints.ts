import { checkedSchema, iso, rowsOf, type Queryable } from './columns.js';

/**
 * `projection_checkpoints` (migrations/1764000000000-foundation.ts): the sequence each projection applied,
 * written by the projection runner in the same transaction as the rows. These are the reads of others.
 */
export interface Checkpoint {
  projection: string;
  lastSequence: number;
  updatedAt: string;
}

/** Every projection's checkpoint, by name. */
export async function queryCheckpoints(db: Queryable): Promise<Checkpoint[]> {
  const rows = await rowsOf<{ projection: string; last_sequence: string; updated_at: Date }>(
    db,
    'SELECT projection, last_sequence, updated_at FROM projection_checkpoints ORDER BY projection',
  );
  return rows.map((row) => ({
    projection: row.projection,
    lastSequence: Number(row.last_sequence),
    updatedAt: iso(row.updated_at),
  }));
}

/** The sequence one projection applied (0 before its first batch). */
export async function checkpointOf(db: Queryable, projection: string): Promise<number> {
  const rows = await rowsOf<{ last_sequence: string }>(
    db,
    'SELECT last_sequence FROM projection_checkpoints WHERE projection = $1',
    [projection],
  );
  return Number(rows[0]?.last_sequence ?? 0);
}

/** The lowest checkpoint of a schema's projections (a time-travel view's: the sequence it was built to). */
export async function lowestCheckpoint(db: Queryable, schema: string): Promise<number> {
  checkedSchema(schema);
  const [row] = await rowsOf<{ sequence: string | null }>(
    db,
    `SELECT min(last_sequence) AS sequence FROM "${schema}".projection_checkpoints`,
  );
  return Number(row?.sequence ?? 0);
}
