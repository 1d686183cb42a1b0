/** Postgres column types a table module declares; the row projection round-trips them through JSON. */
export type ColumnType = 'text' | 'integer' | 'bigint' | 'boolean' | 'timestamptz' | 'jsonb' | 'text[]';

/** Every column of a row type `R` and its Postgres type. */
export type Columns<R> = { [K in keyof R & string]: ColumnType };

type StoredValue<V, T> = T extends 'timestamptz'
  ? V extends string
    ? Date | string
    : V
  : T extends 'bigint'
    ? V extends number
      ? string | number
      : V
    : V;

/**
 * A row as the pg driver returns it, where the row type `R` holds it as a projection writes it (JSON:
 * timestamps as ISO strings, bigints as numbers): timestamps come back as Date, bigints as strings.
 */
export type StoredRow<R, C extends Columns<R>> = { [K in keyof R & string]: StoredValue<R[K], C[K]> };

/** What a table module's queries need: a DataSource, an EntityManager or a query runner. */
export interface Queryable {
  query(sql: string, parameters?: unknown[]): Promise<unknown>;
}

/** Rows of a query, typed by the caller (the table module knows its columns). */
export async function rowsOf<T>(db: Queryable, sql: string, parameters?: unknown[]): Promise<T[]> {
  return (await db.query(sql, parameters)) as T[];
}

export const iso = (value: Date | string) => new Date(value).toISOString();
export const isoOrNull = (value: Date | string | null) => (value === null ? null : iso(value));

/** A schema name that goes into SQL text (time-travel views): checked, since values alone are parameters. */
export function checkedSchema(schema: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`unsafe schema name ${JSON.stringify(schema)}`);
  return schema;
}
