import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { DataSource, QueryRunner } from 'typeorm';
import type { StoredEvent } from '#contracts';
import type { RawLogEntry } from '#eventstore';
import { insertDeadLetter } from '#persistence';
import type { Logger } from '#platform';
import { entryOf, relevantEvents, type DecodedBatch } from './log-batches.js';
import { qualifiedTable, quoteIdentifier, type Projection, type ProjectionContext } from './projection.js';
import { isTransientDatabaseError } from './transient.js';

/** An event a projection could not apply (or the log could not decode: `event` null), to be dead-lettered. */
export interface FailedEvent {
  projection: Projection;
  entry: RawLogEntry;
  event: StoredEvent | null;
  error: unknown;
}

export interface PostgresWritesOptions {
  dataSource: DataSource;
  /** The log's stream, which dead letters name. */
  stream: string;
  /** Schema the projections and their checkpoints are written to. */
  schema: string;
  logger: Logger;
  /** Attempts at one failing event before it becomes a dead letter. */
  maxAttempts: number;
  /** Delays between attempts at a failing event. */
  backoffMs: number[];
}

/**
 * The runner's writes to Postgres: transactions in which rows, dead letters and checkpoints commit
 * together, the checkpoints themselves, and applying a batch with each event isolated when one fails.
 */
export class PostgresWrites {
  private readonly checkpointTable: string;

  constructor(private readonly options: PostgresWritesOptions) {
    this.checkpointTable = qualifiedTable(options.schema, 'projection_checkpoints');
  }

  /** The checkpoints recorded for these projections (those without one have applied nothing). */
  async loadCheckpoints(names: readonly string[]): Promise<Map<string, number>> {
    const rows: { projection: string; last_sequence: string }[] = await this.options.dataSource.query(
      `SELECT projection, last_sequence FROM ${this.checkpointTable} WHERE projection = ANY($1)`,
      [names],
    );
    return new Map(rows.map((row) => [row.projection, Number(row.last_sequence)]));
  }

  /** Moves checkpoints forward to `sequence` outside a batch (never back). */
  async advanceCheckpoints(names: readonly string[], sequence: number): Promise<void> {
    await this.options.dataSource.query(
      `INSERT INTO ${this.checkpointTable} (projection, last_sequence, updated_at)
       SELECT name, $2, now() FROM unnest($1::text[]) AS name
       ON CONFLICT (projection) DO UPDATE SET last_sequence = GREATEST(projection_checkpoints.last_sequence, EXCLUDED.last_sequence), updated_at = now()`,
      [names, sequence],
    );
  }

  async writeCheckpoints(
    runner: QueryRunner,
    names: readonly string[],
    sequences: readonly number[],
  ): Promise<void> {
    await runner.query(
      `INSERT INTO ${this.checkpointTable} (projection, last_sequence, updated_at)
       SELECT name, sequence, now() FROM unnest($1::text[], $2::bigint[]) AS c(name, sequence)
       ON CONFLICT (projection) DO UPDATE SET last_sequence = EXCLUDED.last_sequence, updated_at = now()`,
      [names, sequences],
    );
  }

  /** Runs `work` on one pooled connection. */
  async withContext<T>(work: (context: ProjectionContext, runner: QueryRunner) => Promise<T>): Promise<T> {
    const runner = this.options.dataSource.createQueryRunner();
    await runner.connect();
    try {
      return await work(this.contextFor(runner), runner);
    } finally {
      await runner.release();
    }
  }

  /**
   * Runs `work` in one transaction, where rows and checkpoints commit together. So losing the last
   * commits in a database crash only makes the projector re-apply those batches: durability of each
   * commit is not needed for exactly-once effect.
   */
  inTransaction(work: (context: ProjectionContext, runner: QueryRunner) => Promise<void>): Promise<void> {
    return this.withContext(async (context, runner) => {
      // One round trip for both statements: a live batch is often one event, and every message to the
      // server costs the projector more CPU than the rows do.
      await runner.query('BEGIN; SET LOCAL synchronous_commit = off');
      try {
        await work(context, runner);
        await runner.query('COMMIT');
      } catch (error) {
        await runner.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
  }

  /**
   * Applies a batch to the projections past `checkpoints` and moves their checkpoints, in one
   * transaction. `isolateEvents`: each event in a savepoint, so a failing one is retried and then
   * dead-lettered while the others still apply.
   */
  async applyInTransaction(
    batch: DecodedBatch,
    projections: readonly Projection[],
    checkpoints: ReadonlyMap<string, number>,
    isolateEvents: boolean,
  ): Promise<void> {
    const { lastSequence, events, undecodable } = batch;
    await this.inTransaction(async (context, runner) => {
      const advanced: string[] = [];
      for (const projection of projections) {
        const from = checkpoints.get(projection.name) ?? 0;
        if (lastSequence <= from) continue;
        const relevant = relevantEvents(projection, events, from);
        if (relevant.length > 0) {
          if (isolateEvents) await this.applyEachEvent(runner, projection, relevant, context);
          else await projection.apply(relevant, context);
        }
        for (const { entry, error } of undecodable) {
          if (entry.sequence > from)
            await this.recordDeadLetter(runner, { projection, entry, event: null, error }, 1);
        }
        advanced.push(projection.name);
      }
      if (advanced.length > 0) {
        await this.writeCheckpoints(
          runner,
          advanced,
          advanced.map(() => lastSequence),
        );
      }
    });
  }

  /**
   * Applies a projection's events one at a time, each in a savepoint: a failing one is retried with a
   * backoff and then dead-lettered in this transaction, and the others still apply.
   */
  private async applyEachEvent(
    runner: QueryRunner,
    projection: Projection,
    events: readonly StoredEvent[],
    context: ProjectionContext,
  ): Promise<void> {
    const { maxAttempts, backoffMs } = this.options;
    for (const event of events) {
      for (let attempt = 1; ; attempt++) {
        await runner.query('SAVEPOINT projection_event');
        try {
          await projection.apply([event], context);
          await runner.query('RELEASE SAVEPOINT projection_event');
          break;
        } catch (error) {
          await runner.query('ROLLBACK TO SAVEPOINT projection_event');
          if (isTransientDatabaseError(error)) throw error;
          if (attempt >= maxAttempts) {
            await this.recordDeadLetter(runner, { projection, entry: entryOf(event), event, error }, attempt);
            break;
          }
          this.options.logger.warn('projection failed on an event; retrying', {
            projection: projection.name,
            sequence: event.sequence,
            eventType: event.type,
            attempt,
            error,
          });
          await sleep(backoffMs[Math.min(attempt - 1, backoffMs.length - 1)] ?? 100);
        }
      }
    }
  }

  async recordDeadLetter(runner: QueryRunner, failed: FailedEvent, deliveries: number): Promise<void> {
    const { projection, entry, event, error } = failed;
    const reason = error instanceof Error ? error.message : String(error);
    this.options.logger.error('event dead-lettered by projection', {
      projection: projection.name,
      sequence: entry.sequence,
      eventType: event?.type,
      error: reason,
    });
    const payload = event
      ? JSON.stringify({ ...event, sequence: undefined, subject: undefined })
      : new TextDecoder().decode(entry.data);
    await insertDeadLetter(runner, {
      consumer: `projection:${projection.name}`,
      stream: this.options.stream,
      sequence: entry.sequence,
      subject: entry.subject,
      eventType: event?.type ?? null,
      eventId: event?.id ?? null,
      deliveries,
      error: reason,
      payload,
    });
  }

  private contextFor(runner: QueryRunner): ProjectionContext {
    const { schema } = this.options;
    return {
      schema,
      table: (name) => qualifiedTable(schema, name),
      query: (sql, params) => runner.query(sql, params),
      copyRows: async (table, columns, rows) => {
        if (rows.length === 0) return;
        const target = `${qualifiedTable(schema, table)} (${columns.map(quoteIdentifier).join(', ')})`;
        if (rows.length < COPY_MIN_ROWS) {
          const { sql, parameters } = insertValues(target, columns.length, rows);
          await runner.query(sql, parameters);
          return;
        }
        const client = (await runner.connect()) as pg.PoolClient;
        await pipeline(Readable.from([copyText(rows)]), client.query(copyFrom(`COPY ${target} FROM STDIN`)));
      },
    };
  }
}

/**
 * Below this many rows an INSERT is cheaper than COPY: COPY takes three messages to the server (the
 * statement, the data, its end), which for the live projector's one-event batches cost more than the rows.
 */
const COPY_MIN_ROWS = 32;

/** One multi-row INSERT with a parameter per value, typed by the target columns; values as for COPY. */
export function insertValues(
  target: string,
  width: number,
  rows: readonly (readonly unknown[])[],
): { sql: string; parameters: unknown[] } {
  const parameters: unknown[] = [];
  const tuples = rows.map((row) => {
    if (row.length !== width) throw new Error(`a row has ${row.length} values for ${width} columns`);
    const placeholders = row.map((value) => {
      parameters.push(value !== null && typeof value === 'object' ? JSON.stringify(value) : (value ?? null));
      return `$${parameters.length}`;
    });
    return `(${placeholders.join(', ')})`;
  });
  return { sql: `INSERT INTO ${target} VALUES ${tuples.join(', ')}`, parameters };
}

const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** Rows in COPY's text format: tab-separated, `\N` for null, backslash escapes for the separators. */
export function copyText(rows: readonly (readonly unknown[])[]): string {
  let text = '';
  for (const row of rows) {
    text +=
      row
        .map((value) => {
          if (value === null || value === undefined) return '\\N';
          const raw = typeof value === 'object' ? JSON.stringify(value) : String(value);
          return raw.replace(/[\\\t\n\r]/g, (character) => COPY_ESCAPES[character]!);
        })
        .join('\t') + '\n';
  }
  return text;
}
