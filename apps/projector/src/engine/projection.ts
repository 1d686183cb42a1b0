import type { StoredEvent } from '#contracts';

/** What a projection may do inside the runner's transaction: query tables of the target schema. */
export interface ProjectionContext {
  /** The schema being written: `public` for the live projections, another one while rebuilding. */
  readonly schema: string;
  /** The schema-qualified, quoted name of one of the projection's tables. */
  table(name: string): string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /**
   * Appends rows with COPY (about twice as fast as a multi-row INSERT for many rows; a few go in one INSERT).
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

/** Writes one set of changes taken from a bulk loader, inside the runner's transaction. */
export type BulkWrite = (context: ProjectionContext) => Promise<void>;

/**
 * Holds a projection's changed rows in memory between writes. The runner writes them, with the
 * projection's checkpoint, in one transaction, so a crash still leaves rows and checkpoint together.
 * A write runs while the runner folds the next events: writes commit one at a time and in order, and
 * when one cannot be written the runner throws the loader away and starts again from the checkpoints.
 */
export interface BulkLoader {
  /** Rows held in memory: the runner writes when the total passes its budget. */
  readonly rowsInMemory: number;
  /** Loads the rows these events touch that an earlier write stored and memory no longer holds. */
  prefetch(events: readonly StoredEvent[], context: ProjectionContext): Promise<void>;
  /** Folds events (after `prefetch`); an event that fails changes nothing and is returned. */
  fold(events: readonly StoredEvent[]): FoldFailure[];
  /**
   * Takes every row changed since the last call, as one write; from now on the loader counts them as
   * stored (no other write of this loader starts before this one commits).
   */
  takeChanges(): BulkWrite;
  /** After the last write committed: drops the rows not changed since, as `prefetch` can read them back. */
  evict(): void;
}

export function quoteIdentifier(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`unsafe SQL identifier ${JSON.stringify(name)}`);
  return `"${name}"`;
}

export function qualifiedTable(schema: string, table: string): string {
  return `${quoteIdentifier(schema)}.${quoteIdentifier(table)}`;
}
