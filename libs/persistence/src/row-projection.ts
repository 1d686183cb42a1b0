import type { StoredEvent } from '#contracts';
import { quoteIdentifier, type Projection, type ProjectionContext } from './projection.js';

/** Postgres column types the row projection can round-trip through JSON. */
export type ColumnType = 'text' | 'integer' | 'bigint' | 'boolean' | 'timestamptz' | 'jsonb' | 'text[]';

type RowValue =
  string | number | boolean | null | readonly string[] | Record<string, unknown> | readonly unknown[];
export type Row = Record<string, RowValue>;

export interface RowProjectionSpec<R extends Row> {
  name: string;
  table: string;
  /** Primary-key column (text). */
  key: keyof R & string;
  /** Every column of the table and its type; timestamps are ISO strings in rows. */
  columns: { [K in keyof R & string]: ColumnType };
  eventTypes: readonly string[];
  /** False when keyOf and evolve use only the envelope (type, sequence, time), never `data`. */
  readsData?: boolean;
  /** The key of the row an event changes, or undefined when it changes none. */
  keyOf(event: StoredEvent): string | undefined;
  /** Pure: the row after the event; undefined deletes it. */
  evolve(row: R | undefined, event: StoredEvent): R | undefined;
}

/**
 * A projection where each event changes at most one row through a pure `evolve`. A batch loads the rows
 * it touches in one query, folds the events in memory, then writes all changes with one upsert and one
 * delete, so thousands of events cost a handful of round trips.
 */
export class RowProjection<R extends Row> implements Projection {
  readonly name: string;
  readonly tables: readonly string[];
  readonly eventTypes: readonly string[];
  readonly readsData: boolean;
  private readonly columnNames: string[];
  private readonly recordsetColumns: string;

  constructor(readonly spec: RowProjectionSpec<R>) {
    this.name = spec.name;
    this.tables = [spec.table];
    this.eventTypes = spec.eventTypes;
    this.readsData = spec.readsData ?? true;
    this.columnNames = Object.keys(spec.columns);
    this.recordsetColumns = this.columnNames
      .map((column) => `${quoteIdentifier(column)} ${spec.columns[column as keyof R & string]}`)
      .join(', ');
  }

  /** Folds events over rows in memory: the same code the database path uses, for tests and time travel. */
  fold(events: readonly StoredEvent[], rows = new Map<string, R>()): Map<string, R> {
    for (const event of events) {
      const key = this.spec.keyOf(event);
      if (key === undefined) continue;
      const next = this.spec.evolve(rows.get(key), event);
      if (next === undefined) rows.delete(key);
      else rows.set(key, next);
    }
    return rows;
  }

  async apply(events: readonly StoredEvent[], context: ProjectionContext): Promise<void> {
    const keys = new Set<string>();
    for (const event of events) {
      const key = this.spec.keyOf(event);
      if (key !== undefined) keys.add(key);
    }
    if (keys.size === 0) return;
    const table = context.table(this.spec.table);
    const keyColumn = quoteIdentifier(this.spec.key);
    const loaded = await context.query<{ row: Record<string, unknown> }>(
      `SELECT to_jsonb(t) AS row FROM ${table} t WHERE ${keyColumn} = ANY($1::text[])`,
      [[...keys]],
    );
    const rows = new Map<string, R>();
    for (const { row } of loaded) rows.set(String(row[this.spec.key]), this.normalise(row));
    const existed = new Set(rows.keys());
    this.fold(events, rows);

    const upserts = [...rows.values()];
    const deletes = [...existed].filter((key) => !rows.has(key));
    if (upserts.length > 0) {
      const columns = this.columnNames.map(quoteIdentifier).join(', ');
      const updates = this.columnNames
        .filter((column) => column !== this.spec.key)
        .map((column) => `${quoteIdentifier(column)} = EXCLUDED.${quoteIdentifier(column)}`)
        .join(', ');
      await context.query(
        `INSERT INTO ${table} (${columns})
         SELECT ${columns} FROM jsonb_to_recordset($1::jsonb) AS x(${this.recordsetColumns})
         ON CONFLICT (${keyColumn}) DO ${updates ? `UPDATE SET ${updates}` : 'NOTHING'}`,
        [JSON.stringify(upserts)],
      );
    }
    if (deletes.length > 0) {
      await context.query(`DELETE FROM ${table} WHERE ${keyColumn} = ANY($1::text[])`, [deletes]);
    }
  }

  /** Rows read back through to_jsonb carry Postgres timestamp text; rows from evolve carry toISOString. */
  private normalise(row: Record<string, unknown>): R {
    const result: Record<string, unknown> = {};
    for (const column of this.columnNames) {
      const value = row[column];
      const type = this.spec.columns[column as keyof R & string];
      result[column] =
        type === 'timestamptz' && typeof value === 'string' ? new Date(value).toISOString() : (value ?? null);
    }
    return result as R;
  }
}
