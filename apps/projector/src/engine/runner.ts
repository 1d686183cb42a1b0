import type { DataSource, QueryRunner } from 'typeorm';
import type { StoredEvent } from '#contracts';
import type { EventStore, RawLogEntry } from '#eventstore';
import { insertDeadLetter } from '#persistence';
import type { Logger } from '#platform';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import {
  qualifiedTable,
  quoteIdentifier,
  type BulkLoader,
  type Projection,
  type ProjectionContext,
} from './projection.js';
import { isTransientDatabaseError } from './transient.js';

export interface ProjectionProgress {
  /** Last sequence applied by every projection of this runner. */
  sequence: number;
  /** Where this run stops (rebuilds), or the log's end when it started (live). */
  target: number;
  eventsApplied: number;
  eventsPerSecond: number;
}

export interface ProjectionRunnerOptions {
  dataSource: DataSource;
  store: EventStore;
  projections: readonly Projection[];
  logger: Logger;
  /** Schema the projections and their checkpoints are written to. */
  schema?: string;
  batchSize?: number;
  /** Attempts at one failing event before it becomes a dead letter. */
  maxAttempts?: number;
  /** Delays between attempts at a failing event, and between retries of a batch when the database is down. */
  backoffMs?: number[];
  /** Stop after this sequence (rebuild to a point); without it the runner follows the log until stopped. */
  untilSequence?: number;
  /**
   * Read only these subjects (e.g. `events.route.>`) when every projection of the runner reads one
   * aggregate type: the server skips the rest. Checkpoints still reach `untilSequence`.
   */
  filterSubject?: string;
  onProgress?: (progress: ProjectionProgress) => void;
  /**
   * Only this runner writes the schema (a rebuild): projections with a bulk loader fold in memory and
   * write their rows with their checkpoints when the rows held pass `bulkRowBudget`, and at the end.
   */
  bulk?: boolean;
  /** Rows held in memory across bulk loaders before they are written (bounds memory). */
  bulkRowBudget?: number;
}

/** A bulk flush that Postgres refused for a reason other than availability (e.g. a row breaks a CHECK). */
class BulkFlushRefused extends Error {
  constructor(readonly reason: unknown) {
    super(`bulk flush refused: ${(reason as Error)?.message ?? String(reason)}`);
  }
}

/** The bulk write in flight: rows and checkpoints that commit while the runner folds on. */
interface BulkWriteInFlight {
  projections: string[];
  sequences: number[];
  evict: boolean;
  done: Promise<void>;
  settled: boolean;
  error?: unknown;
}

interface PendingDeadLetter {
  projection: Projection;
  entry: RawLogEntry;
  event: StoredEvent | null;
  error: unknown;
}

/**
 * Reads the log from the lowest checkpoint and applies batches. Each batch runs in one database
 * transaction that also moves every projection's checkpoint, so a crash at any point leaves the
 * projections exactly at their checkpoints: nothing applied twice, nothing skipped.
 */
export class ProjectionRunner {
  private readonly schema: string;
  private readonly batchSize: number;
  private readonly maxAttempts: number;
  private readonly backoffMs: number[];
  private readonly checkpoints = new Map<string, number>();
  private readonly dataNeeded = new Map<string, boolean>();
  private readonly acceptedTypes = new Map<Projection, ReadonlySet<string>>();
  private readonly log: Logger;
  private readonly bulkRowBudget: number;
  /** Bulk loaders by projection name, and the sequence each has folded (ahead of its checkpoint). */
  private readonly loaders = new Map<string, BulkLoader>();
  private readonly folded = new Map<string, number>();
  private pendingDeadLetters: PendingDeadLetter[] = [];
  private bulkWrite: BulkWriteInFlight | undefined;
  /** The signal of the current `run`: background bulk writes stop retrying when it aborts. */
  private signal: AbortSignal | undefined;
  private eventsApplied = 0;
  private startedAt = 0;

  constructor(private options: ProjectionRunnerOptions) {
    this.schema = options.schema ?? 'public';
    this.batchSize = options.batchSize ?? 1_000;
    this.maxAttempts = options.maxAttempts ?? 5;
    this.backoffMs = options.backoffMs ?? [100, 500, 2_000, 5_000];
    this.log = options.logger.child({ schema: this.schema });
    this.bulkRowBudget = options.bulkRowBudget ?? 5_000;
  }

  /** After loading the checkpoints: a projection at checkpoint 0 has written no rows yet. */
  private startBulkLoaders(): void {
    this.loaders.clear();
    this.folded.clear();
    this.pendingDeadLetters = [];
    this.bulkWrite = undefined;
    if (!this.options.bulk) return;
    for (const projection of this.options.projections) {
      const tableEmpty = (this.checkpoints.get(projection.name) ?? 0) === 0;
      const loader = projection.bulkLoader?.({ tableEmpty });
      if (loader) this.loaders.set(projection.name, loader);
    }
  }

  /** How far every projection has got, counting events folded in memory and not yet written. */
  private get reached(): number {
    return Math.min(
      ...this.options.projections.map((projection) =>
        Math.max(this.checkpoints.get(projection.name) ?? 0, this.folded.get(projection.name) ?? 0),
      ),
    );
  }

  /** The sequence every projection has reached. */
  get position(): number {
    return Math.min(
      ...this.options.projections.map((projection) => this.checkpoints.get(projection.name) ?? 0),
    );
  }

  async loadCheckpoints(): Promise<void> {
    const rows: { projection: string; last_sequence: string }[] = await this.options.dataSource.query(
      `SELECT projection, last_sequence FROM ${qualifiedTable(this.schema, 'projection_checkpoints')} WHERE projection = ANY($1)`,
      [this.options.projections.map((projection) => projection.name)],
    );
    for (const row of rows) this.checkpoints.set(row.projection, Number(row.last_sequence));
  }

  /** Runs until `signal` aborts, or until `untilSequence` has been applied. */
  async run(signal?: AbortSignal): Promise<void> {
    this.signal = signal;
    try {
      await this.runFromCheckpoints();
    } catch (error) {
      if (!(error instanceof BulkFlushRefused)) throw error;
      // Rows folded in memory cannot tell which event made them unwritable: replay from the checkpoints
      // batch by batch, where a failing event is isolated and dead-lettered.
      this.log.warn('bulk load refused by the database; replaying batch by batch from the checkpoints', {
        error: error.reason,
      });
      this.options = { ...this.options, bulk: false };
      await this.runFromCheckpoints();
    }
  }

  private async runFromCheckpoints(): Promise<void> {
    const signal = this.signal;
    await this.retryWhileUnavailable('load checkpoints', () => this.loadCheckpoints(), signal);
    this.startBulkLoaders();
    const until = this.options.untilSequence;
    const target = until ?? (await this.options.store.lastSequence());
    this.startedAt = Date.now();
    this.eventsApplied = 0;
    if (until !== undefined && this.position >= until) return;
    this.log.info('projecting', {
      projections: this.options.projections.map((projection) => projection.name),
      from: this.position + 1,
      until,
    });
    const batches = this.decodedBatches(
      this.options.store.readRaw({
        fromSequence: this.position + 1,
        untilSequence: until,
        follow: until === undefined,
        signal,
        // One batch read ahead while one is applied: several runners of a rebuild stay within memory.
        bufferSize: this.batchSize,
        filterSubject: this.options.filterSubject,
      }),
      until,
    );
    // Ask for the next batch before applying this one: reading and decoding proceed while Postgres works.
    let next = batches.next();
    try {
      for (;;) {
        const { value: batch, done } = await next;
        if (done) break;
        next = batches.next();
        await this.retryWhileUnavailable('apply batch', () => this.applyBatch(batch), signal);
        this.options.onProgress?.(this.progress(Math.max(target, this.reached)));
      }
      await this.finishBulkWrite();
      this.startBulkWrite(false);
      await this.finishBulkWrite();
    } finally {
      // A failure elsewhere must not leave a transaction running behind the caller's back.
      await this.bulkWrite?.done;
    }
    // A filtered read ends at the last matching event; nothing else up to `until` concerns these projections.
    if (until !== undefined && !signal?.aborted && this.position < until) {
      await this.retryWhileUnavailable('finish checkpoints', () => this.advanceCheckpoints(until), signal);
      this.options.onProgress?.(this.progress(Math.max(target, this.position)));
    }
  }

  private async advanceCheckpoints(sequence: number): Promise<void> {
    const names = this.options.projections.map((projection) => projection.name);
    await this.options.dataSource.query(
      `INSERT INTO ${qualifiedTable(this.schema, 'projection_checkpoints')} (projection, last_sequence, updated_at)
       SELECT name, $2, now() FROM unnest($1::text[]) AS name
       ON CONFLICT (projection) DO UPDATE SET last_sequence = GREATEST(projection_checkpoints.last_sequence, EXCLUDED.last_sequence), updated_at = now()`,
      [names, sequence],
    );
    for (const name of names) this.checkpoints.set(name, Math.max(this.checkpoints.get(name) ?? 0, sequence));
  }

  private readonly needsDataOf = (type: string) => this.needsData(type);

  /** Whether some projection of this runner reads the data of events of this type (memoised). */
  private needsData(type: string): boolean {
    let needed = this.dataNeeded.get(type);
    if (needed === undefined) {
      needed = this.options.projections.some(
        (projection) =>
          projection.readsData !== false && (!projection.eventTypes || projection.eventTypes.includes(type)),
      );
      this.dataNeeded.set(type, needed);
    }
    return needed;
  }

  /** Groups the log into batches: full ones while catching up, single events once live. */
  private async *decodedBatches(
    entries: AsyncIterable<RawLogEntry>,
    until: number | undefined,
  ): AsyncGenerator<DecodedBatch> {
    let batch = emptyBatch();
    for await (const entry of entries) {
      try {
        batch.events.push(this.options.store.decode(entry, { data: this.needsDataOf }));
      } catch (error) {
        // Decoded synchronously on the hot path; only a failure asks whether an admin set it aside.
        if (!(await this.options.store.isQuarantined(entry.sequence)))
          batch.undecodable.push({ entry, error });
      }
      batch.lastSequence = entry.sequence;
      batch.size++;
      if (batch.size >= this.batchSize || entry.pending === 0 || entry.sequence === until) {
        yield batch;
        batch = emptyBatch();
      }
    }
    if (batch.size > 0) yield batch;
  }

  private progress(target: number): ProjectionProgress {
    const seconds = Math.max((Date.now() - this.startedAt) / 1000, 0.001);
    return {
      sequence: this.reached,
      target,
      eventsApplied: this.eventsApplied,
      eventsPerSecond: Math.round(this.eventsApplied / seconds),
    };
  }

  /**
   * Applies one batch: projections without a bulk loader in one transaction with their checkpoints (the
   * fast path has no savepoints; if a projection throws, the batch is applied again with each event
   * isolated, so the poison one can be retried and dead-lettered without losing the others), while the
   * bulk loaders fold it in memory. Safe to retry: each projection skips what it already has.
   */
  async applyBatch(batch: DecodedBatch): Promise<void> {
    if (batch.size === 0) return;
    // Between batches, never between a prefetch and its fold: eviction must not drop a row just read.
    if (this.bulkWrite?.settled) await this.finishBulkWrite();
    const perBatch = this.options.projections.filter(
      (projection) =>
        !this.loaders.has(projection.name) &&
        batch.lastSequence > (this.checkpoints.get(projection.name) ?? 0),
    );
    // The transaction's round trips and the in-memory fold overlap.
    await Promise.all([this.applyPerBatch(batch, perBatch), this.foldInMemory(batch)]);
    this.eventsApplied += batch.size;
    const rows = this.rowsInMemory();
    if (rows <= this.bulkRowBudget) return;
    // One write at a time; memory may hold a second budget's worth while it runs, then folding waits.
    if (this.bulkWrite && rows > 2 * this.bulkRowBudget) await this.finishBulkWrite();
    if (!this.bulkWrite) this.startBulkWrite(true);
  }

  private async applyPerBatch(batch: DecodedBatch, projections: readonly Projection[]): Promise<void> {
    if (projections.length === 0) return;
    try {
      await this.applyInTransaction(batch, projections, false);
    } catch (error) {
      if (isTransientDatabaseError(error)) throw error;
      await this.applyInTransaction(batch, projections, true);
    }
    for (const projection of projections) {
      this.checkpoints.set(
        projection.name,
        Math.max(this.checkpoints.get(projection.name) ?? 0, batch.lastSequence),
      );
    }
  }

  private relevantEvents(
    projection: Projection,
    events: readonly StoredEvent[],
    after: number,
  ): StoredEvent[] {
    let accepts = this.acceptedTypes.get(projection);
    if (accepts === undefined && projection.eventTypes) {
      accepts = new Set(projection.eventTypes);
      this.acceptedTypes.set(projection, accepts);
    }
    return events.filter((event) => event.sequence > after && (!accepts || accepts.has(event.type)));
  }

  /**
   * Folds the batch into each bulk loader. A pure fold that throws would throw again, so the event is
   * dead-lettered (at the next flush) without retries.
   */
  private async foldInMemory(batch: DecodedBatch): Promise<void> {
    for (const projection of this.options.projections) {
      const loader = this.loaders.get(projection.name);
      if (!loader) continue;
      const after = Math.max(
        this.checkpoints.get(projection.name) ?? 0,
        this.folded.get(projection.name) ?? 0,
      );
      if (batch.lastSequence <= after) continue;
      const relevant = this.relevantEvents(projection, batch.events, after);
      if (relevant.length > 0) {
        await this.withContext((context) => loader.prefetch(relevant, context));
        for (const { event, error } of loader.fold(relevant)) {
          this.pendingDeadLetters.push({ projection, entry: entryOf(event), event, error });
        }
      }
      for (const { entry, error } of batch.undecodable) {
        if (entry.sequence > after) this.pendingDeadLetters.push({ projection, entry, event: null, error });
      }
      this.folded.set(projection.name, batch.lastSequence);
    }
  }

  private rowsInMemory(): number {
    let rows = 0;
    for (const loader of this.loaders.values()) rows += loader.rowsInMemory;
    return rows;
  }

  /**
   * Starts writing what the bulk loaders folded, their dead letters and their checkpoints in one
   * transaction, and returns at once: the caller folds on while Postgres works.
   */
  private startBulkWrite(evict: boolean): void {
    const projections = [...this.loaders.keys()].filter(
      (name) => (this.folded.get(name) ?? 0) > (this.checkpoints.get(name) ?? 0),
    );
    if (projections.length === 0) return;
    const writes = projections.map((name) => this.loaders.get(name)!.takeChanges());
    const sequences = projections.map((name) => this.folded.get(name)!);
    const deadLetters = this.pendingDeadLetters;
    this.pendingDeadLetters = [];
    const write = () =>
      this.inTransaction(async (context, runner) => {
        try {
          for (const bulkWrite of writes) await bulkWrite(context);
        } catch (error) {
          throw isTransientDatabaseError(error) ? error : new BulkFlushRefused(error);
        }
        for (const letter of deadLetters) {
          await this.recordDeadLetter(runner, letter.projection, letter.entry, letter.event, letter.error, 1);
        }
        await this.writeCheckpoints(runner, projections, sequences);
      });
    const inFlight: BulkWriteInFlight = {
      projections,
      sequences,
      evict,
      settled: false,
      done: Promise.resolve(),
    };
    inFlight.done = this.retryWhileUnavailable('write folded rows', write, this.signal).then(
      () => void (inFlight.settled = true),
      (error: unknown) => {
        inFlight.settled = true;
        inFlight.error = error;
      },
    );
    this.bulkWrite = inFlight;
  }

  /** Waits for the write in flight; once committed, moves its checkpoints and lets loaders evict. */
  private async finishBulkWrite(): Promise<void> {
    const inFlight = this.bulkWrite;
    if (!inFlight) return;
    await inFlight.done;
    this.bulkWrite = undefined;
    if (inFlight.error !== undefined) throw inFlight.error;
    inFlight.projections.forEach((name, index) => {
      this.checkpoints.set(name, inFlight.sequences[index]!);
      if (inFlight.evict) this.loaders.get(name)!.evict();
    });
  }

  private async writeCheckpoints(
    runner: QueryRunner,
    names: readonly string[],
    sequences: readonly number[],
  ) {
    await runner.query(
      `INSERT INTO ${qualifiedTable(this.schema, 'projection_checkpoints')} (projection, last_sequence, updated_at)
       SELECT name, sequence, now() FROM unnest($1::text[], $2::bigint[]) AS c(name, sequence)
       ON CONFLICT (projection) DO UPDATE SET last_sequence = EXCLUDED.last_sequence, updated_at = now()`,
      [names, sequences],
    );
  }

  /** Runs `work` on one pooled connection. */
  private async withContext<T>(
    work: (context: ProjectionContext, runner: QueryRunner) => Promise<T>,
  ): Promise<T> {
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
  private inTransaction(work: (context: ProjectionContext, runner: QueryRunner) => Promise<void>) {
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

  private async applyInTransaction(
    batch: DecodedBatch,
    projections: readonly Projection[],
    isolateEvents: boolean,
  ): Promise<void> {
    const { lastSequence, events, undecodable } = batch;
    await this.inTransaction(async (context, runner) => {
      const advanced: string[] = [];
      for (const projection of projections) {
        const from = this.checkpoints.get(projection.name) ?? 0;
        if (lastSequence <= from) continue;
        const relevant = this.relevantEvents(projection, events, from);
        if (relevant.length > 0) {
          if (isolateEvents) await this.applyEachEvent(runner, projection, relevant, context);
          else await projection.apply(relevant, context);
        }
        for (const { entry, error } of undecodable) {
          if (entry.sequence > from) await this.recordDeadLetter(runner, projection, entry, null, error, 1);
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
          if (attempt >= this.maxAttempts) {
            await this.recordDeadLetter(runner, projection, entryOf(event), event, error, attempt);
            break;
          }
          this.log.warn('projection failed on an event; retrying', {
            projection: projection.name,
            sequence: event.sequence,
            eventType: event.type,
            attempt,
            error,
          });
          await sleep(this.backoffMs[Math.min(attempt - 1, this.backoffMs.length - 1)] ?? 100);
        }
      }
    }
  }

  private async recordDeadLetter(
    runner: QueryRunner,
    projection: Projection,
    entry: RawLogEntry,
    event: StoredEvent | null,
    error: unknown,
    deliveries: number,
  ): Promise<void> {
    const reason = error instanceof Error ? error.message : String(error);
    this.log.error('event dead-lettered by projection', {
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
      stream: this.options.store.stream,
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
    return {
      schema: this.schema,
      table: (name) => qualifiedTable(this.schema, name),
      query: (sql, params) => runner.query(sql, params),
      copyRows: async (table, columns, rows) => {
        if (rows.length === 0) return;
        const target = `${qualifiedTable(this.schema, table)} (${columns.map(quoteIdentifier).join(', ')})`;
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

  /** Retries `work` while the database is unreachable; other errors propagate. */
  private async retryWhileUnavailable(
    what: string,
    work: () => Promise<void>,
    signal?: AbortSignal,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await work();
        return;
      } catch (error) {
        if (!isTransientDatabaseError(error) || signal?.aborted) throw error;
        const delay = this.backoffMs[Math.min(attempt - 1, this.backoffMs.length - 1)] ?? 1_000;
        this.log.warn('database unavailable; retrying', { what, attempt, retryInMs: delay, error });
        await sleep(delay);
      }
    }
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

/** A slice of the log, decoded; events that cannot be decoded are kept apart to be dead-lettered. */
export interface DecodedBatch {
  lastSequence: number;
  size: number;
  events: StoredEvent[];
  undecodable: { entry: RawLogEntry; error: unknown }[];
}

function emptyBatch(): DecodedBatch {
  return { lastSequence: 0, size: 0, events: [], undecodable: [] };
}

/** The log entry of a decoded event, for a dead letter (its payload is re-encoded from the event). */
function entryOf(event: StoredEvent): RawLogEntry {
  return { sequence: event.sequence, subject: event.subject, data: new Uint8Array(), pending: 0 };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
