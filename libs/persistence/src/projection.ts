import type { StoredEvent } from '#contracts';

/** What a projection may do inside the runner's transaction: query tables of the target schema. */
export interface ProjectionContext {
  /** The schema being written: `public` for the live projections, another one while rebuilding. */
  readonly schema: string;
  /** The schema-qualified, quoted name of one of the projection's tables. */
  table(name: string): string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /**
   * Appends rows with COPY (about twice as fast as a multi-row INSERT for append-only tables).
   * Values: strings, numbers, booleans, null; objects are written as JSON (for jsonb columns).
   */
  copyRows(table: string, columns: readonly string[], rows: readonly (readonly unknown[])[]): Promise<void>;
}

/**
 * A read model folded from the log. `apply` receives events in log order, already filtered to
 * `eventTypes`, and must be deterministic: replaying the same events gives the same rows.
 */
export interface Projection {
  readonly name: string;
  /** Tables it owns, in creation order: rebuilds copy their definitions and compare their rows. */
  readonly tables: readonly string[];
  /** Event types it reads; all when omitted. */
  readonly eventTypes?: readonly string[];
  /** False when it never looks at `data` (only the envelope): the runner can skip validating it. */
  readonly readsData?: boolean;
  apply(events: readonly StoredEvent[], context: ProjectionContext): Promise<void>;
  /**
   * For loading a schema that nobody else writes (a rebuild): folds events in memory and writes the
   * resulting rows at flush points, so a row changed by many events is written once, not once per batch.
   */
  bulkLoader?(options: { tableEmpty: boolean }): BulkLoader;
}

/** An event a bulk loader could not fold; the runner dead-letters it at the next flush. */
export interface FoldFailure {
  event: StoredEvent;
  error: unknown;
}

/**
 * Holds a projection's changed rows in memory between flushes. The runner writes them, with the
 * projection's checkpoint, in one transaction, so a crash still leaves rows and checkpoint together.
 */
export interface BulkLoader {
  /** Rows held in memory: the runner flushes when the total passes its budget. */
  readonly rowsInMemory: number;
  /** Loads the rows these events touch that an earlier flush wrote and memory no longer holds. */
  prefetch(events: readonly StoredEvent[], context: ProjectionContext): Promise<void>;
  /** Folds events (after `prefetch`); an event that fails changes nothing and is returned. */
  fold(events: readonly StoredEvent[]): FoldFailure[];
  /** Writes every row changed since the last flush (inside the runner's transaction). */
  flush(context: ProjectionContext): Promise<void>;
  /** After the flush committed: the written rows are clean; `evict` drops them from memory. */
  flushed(options: { evict: boolean }): void;
}

export function quoteIdentifier(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`unsafe SQL identifier ${JSON.stringify(name)}`);
  return `"${name}"`;
}

export function qualifiedTable(schema: string, table: string): string {
  return `${quoteIdentifier(schema)}.${quoteIdentifier(table)}`;
}
