import { DomainError } from '#contracts';
import { lowestCheckpoint, rowsOf, type Queryable } from '#persistence';

/** Whether a schema of this name exists (a time-travel view's label is taken). */
export async function schemaExists(db: Queryable, schema: string): Promise<boolean> {
  const rows = await rowsOf<unknown>(db, 'SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  return rows.length > 0;
}

/** A time-travel view's table must exist; returns the sequence the view was built to. */
export async function viewTable(db: Queryable, schema: string, table: string): Promise<number> {
  const tables = await rowsOf<{ table_name: string }>(
    db,
    `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name = ANY($2::text[])`,
    [schema, [table, 'projection_checkpoints']],
  );
  if (!tables.some((row) => row.table_name === table)) {
    throw new DomainError(
      'not_found',
      `no time-travel view ${schema}${table === 'projection_checkpoints' ? '' : ` with ${table}`}`,
    );
  }
  if (!tables.some((row) => row.table_name === 'projection_checkpoints')) return 0;
  return lowestCheckpoint(db, schema);
}
