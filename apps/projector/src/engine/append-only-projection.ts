import type { StoredEvent } from '#contracts';
import type { BulkLoader, BulkWrite, FoldFailure, Projection, ProjectionContext } from './projection.js';

export interface AppendOnlyProjectionSpec {
  name: string;
  table: string;
  columns: readonly string[];
  /** Event types it reads; all when omitted. */
  eventTypes?: readonly string[];
  /** False when `rowOf` reads only the envelope, never `data`. */
  readsData?: boolean;
  /** The row one event appends, its values in the order of `columns`. */
  rowOf(event: StoredEvent): readonly unknown[];
}

/** A projection that appends one row per event and never changes a row: written with COPY. */
export class AppendOnlyProjection implements Projection {
  readonly name: string;
  readonly tables: readonly string[];
  readonly eventTypes?: readonly string[];
  readonly readsData: boolean;

  constructor(readonly spec: AppendOnlyProjectionSpec) {
    this.name = spec.name;
    this.tables = [spec.table];
    this.eventTypes = spec.eventTypes;
    this.readsData = spec.readsData ?? true;
  }

  async apply(events: readonly StoredEvent[], context: ProjectionContext): Promise<void> {
    await context.copyRows(this.spec.table, this.spec.columns, events.map(this.spec.rowOf));
  }

  bulkLoader(): BulkLoader {
    return new AppendOnlyBulkLoader(this.spec);
  }
}

/** Rows waiting for the next write: nothing to read back, nothing to evict. */
class AppendOnlyBulkLoader implements BulkLoader {
  private rows: (readonly unknown[])[] = [];

  constructor(private readonly spec: AppendOnlyProjectionSpec) {}

  get rowsInMemory(): number {
    return this.rows.length;
  }

  async prefetch(): Promise<void> {}

  fold(events: readonly StoredEvent[]): FoldFailure[] {
    const failures: FoldFailure[] = [];
    for (const event of events) {
      try {
        this.rows.push(this.spec.rowOf(event));
      } catch (error) {
        failures.push({ event, error });
      }
    }
    return failures;
  }

  takeChanges(): BulkWrite {
    const rows = this.rows;
    this.rows = [];
    return (context) => context.copyRows(this.spec.table, this.spec.columns, rows);
  }

  evict(): void {}
}
