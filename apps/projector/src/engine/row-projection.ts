import type { StoredEvent } from '#contracts';
import { StringBloomFilter } from './bloom-filter.js';
import {
  quoteIdentifier,
  type BulkLoader,
  type BulkWrite,
  type FoldFailure,
  type Projection,
  type ProjectionContext,
} from './projection.js';
import type { Columns } from '#persistence';

type RowValue =
  string | number | boolean | null | readonly string[] | Record<string, unknown> | readonly unknown[];
export type Row = Record<string, RowValue>;

export interface RowProjectionSpec<R extends Row> {
  name: string;
  table: string;
  /** Primary-key column (text). */
  key: keyof R & string;
  /** Every column of the table and its type; timestamps are ISO strings in rows. */
  columns: Columns<R>;
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
 * it touches in one query, folds the events in memory, then writes all changes with one COPY of new
 * rows, one upsert and one delete, so thousands of events cost a handful of round trips.
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
    const rows = await this.loadRows(keys, context);
    const existed = new Set(rows.keys());
    this.fold(events, rows);
    // Keys the table did not hold are appended (COPY, or one INSERT for a few), the rest upserted. Should
    // another writer insert one of those keys meanwhile, the append fails on the key and the runner applies
    // the events one by one.
    const inserts: R[] = [];
    const updates: R[] = [];
    for (const [key, row] of rows) (existed.has(key) ? updates : inserts).push(row);
    await this.insertNew(inserts, context);
    await this.upsert(updates, context);
    await this.delete(
      [...existed].filter((key) => !rows.has(key)),
      context,
    );
  }

  bulkLoader(options: { tableEmpty: boolean }): BulkLoader {
    return new RowBulkLoader(this, options.tableEmpty);
  }

  /** The stored rows with these keys. */
  async loadRows(keys: Iterable<string>, context: ProjectionContext): Promise<Map<string, R>> {
    const loaded = await context.query<{ row: Record<string, unknown> }>(
      `SELECT to_jsonb(t) AS row FROM ${context.table(this.spec.table)} t WHERE ${quoteIdentifier(this.spec.key)} = ANY($1::text[])`,
      [[...keys]],
    );
    const rows = new Map<string, R>();
    for (const { row } of loaded) rows.set(String(row[this.spec.key]), this.normalise(row));
    return rows;
  }

  /** Inserts or replaces rows in one statement. */
  async upsert(rows: readonly R[], context: ProjectionContext): Promise<void> {
    if (rows.length === 0) return;
    const columns = this.columnNames.map(quoteIdentifier).join(', ');
    const updates = this.columnNames
      .filter((column) => column !== this.spec.key)
      .map((column) => `${quoteIdentifier(column)} = EXCLUDED.${quoteIdentifier(column)}`)
      .join(', ');
    // json, not jsonb: Postgres only checks the text instead of building a binary document first.
    await context.query(
      `INSERT INTO ${context.table(this.spec.table)} (${columns})
       SELECT ${columns} FROM json_to_recordset($1::json) AS x(${this.recordsetColumns})
       ON CONFLICT (${quoteIdentifier(this.spec.key)}) DO ${updates ? `UPDATE SET ${updates}` : 'NOTHING'}`,
      [JSON.stringify(rows)],
    );
  }

  /** Appends rows whose keys the table does not hold yet, with COPY. */
  async insertNew(rows: readonly R[], context: ProjectionContext): Promise<void> {
    await context.copyRows(
      this.spec.table,
      this.columnNames,
      rows.map((row) =>
        this.columnNames.map((column) =>
          this.spec.columns[column as keyof R & string] === 'text[]'
            ? textArrayLiteral(row[column] as readonly string[] | null)
            : row[column],
        ),
      ),
    );
  }

  async delete(keys: readonly string[], context: ProjectionContext): Promise<void> {
    if (keys.length === 0) return;
    await context.query(
      `DELETE FROM ${context.table(this.spec.table)} WHERE ${quoteIdentifier(this.spec.key)} = ANY($1::text[])`,
      [keys],
    );
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

/** A Postgres array literal (`{"a","b"}`) for a text[] value. */
export function textArrayLiteral(values: readonly string[] | null): string | null {
  if (values === null) return null;
  return `{${values.map((value) => `"${value.replace(/[\\"]/g, (character) => `\\${character}`)}"`).join(',')}}`;
}

/**
 * The rows of one RowProjection while a private schema loads. `rows` holds what memory knows about a key:
 * its current row, or undefined for none. `inTable` says which of those keys the table holds, and
 * `written` remembers, in fixed memory, every key a write stored. A key memory does not know is read
 * back only if `written` says it may be in the table (or the table was not empty at the start), so a
 * fresh load hardly reads at all, and memory is bounded by what is held between writes. `inTable` and
 * `written` already count the changes of a write in flight: it commits before the next one starts.
 */
class RowBulkLoader<R extends Row> implements BulkLoader {
  private readonly rows = new Map<string, R | undefined>();
  private readonly inTable = new Set<string>();
  private readonly changed = new Set<string>();
  private readonly written = new StringBloomFilter();

  constructor(
    private readonly projection: RowProjection<R>,
    private readonly tableEmpty: boolean,
  ) {}

  get rowsInMemory(): number {
    return this.rows.size;
  }

  async prefetch(events: readonly StoredEvent[], context: ProjectionContext): Promise<void> {
    const unknown = new Set<string>();
    for (const event of events) {
      const key = this.projection.spec.keyOf(event);
      if (key !== undefined && !this.rows.has(key) && (!this.tableEmpty || this.written.mayContain(key)))
        unknown.add(key);
    }
    if (unknown.size === 0) return;
    const found = await this.projection.loadRows(unknown, context);
    for (const key of unknown) {
      const row = found.get(key);
      this.rows.set(key, row);
      if (row) this.inTable.add(key);
    }
  }

  fold(events: readonly StoredEvent[]): FoldFailure[] {
    const failures: FoldFailure[] = [];
    const { spec } = this.projection;
    for (const event of events) {
      try {
        const key = spec.keyOf(event);
        if (key === undefined) continue;
        const row = this.rows.get(key);
        const next = spec.evolve(row, event);
        if (next === row) continue;
        this.rows.set(key, next);
        this.changed.add(key);
      } catch (error) {
        failures.push({ event, error });
      }
    }
    return failures;
  }

  takeChanges(): BulkWrite {
    const inserts: R[] = [];
    const updates: R[] = [];
    const deletes: string[] = [];
    for (const key of this.changed) {
      const row = this.rows.get(key);
      if (row === undefined) {
        if (this.inTable.has(key)) deletes.push(key);
        this.inTable.delete(key);
      } else {
        if (this.inTable.has(key)) updates.push(row);
        else inserts.push(row);
        this.inTable.add(key);
        this.written.add(key);
      }
    }
    this.changed.clear();
    // Rows are immutable (evolve returns new ones), so later folds cannot change what this write holds.
    return async (context) => {
      await this.projection.insertNew(inserts, context);
      await this.projection.upsert(updates, context);
      await this.projection.delete(deletes, context);
    };
  }

  evict(): void {
    for (const key of this.rows.keys()) {
      if (this.changed.has(key)) continue;
      this.rows.delete(key);
      this.inTable.delete(key);
    }
  }
}
