import type { DataSource } from 'typeorm';
import type { EventStore } from '#eventstore';
import type { Logger } from '#platform';
import { BulkFlushRefused, BulkWrites } from './bulk-writes.js';
import { dataNeededBy, decodedBatches, type DecodedBatch } from './log-batches.js';
import { PostgresWrites } from './postgres-writes.js';
import type { Projection } from './projection.js';
import { isTransientDatabaseError, retryWhileUnavailable } from './transient.js';

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

/**
 * Reads the log from the lowest checkpoint and applies batches. Each batch runs in one database
 * transaction that also moves every projection's checkpoint, so a crash at any point leaves the
 * projections exactly at their checkpoints: nothing applied twice, nothing skipped.
 *
 * This is the loop; reading and decoding the log is in log-batches.ts, the transactions with their
 * checkpoints and dead letters in postgres-writes.ts, and a rebuild's in-memory folds in bulk-writes.ts.
 */
export class ProjectionRunner {
  private readonly schema: string;
  private readonly batchSize: number;
  private readonly backoffMs: number[];
  private readonly checkpoints = new Map<string, number>();
  private readonly log: Logger;
  private readonly writes: PostgresWrites;
  private readonly bulk: BulkWrites;
  private readonly needsData: (type: string) => boolean;
  /** The signal of the current `run`: background bulk writes stop retrying when it aborts. */
  private signal: AbortSignal | undefined;
  private eventsApplied = 0;
  private startedAt = 0;

  constructor(private options: ProjectionRunnerOptions) {
    this.schema = options.schema ?? 'public';
    this.batchSize = options.batchSize ?? 1_000;
    this.backoffMs = options.backoffMs ?? [100, 500, 2_000, 5_000];
    this.log = options.logger.child({ schema: this.schema });
    this.writes = new PostgresWrites({
      dataSource: options.dataSource,
      stream: options.store.stream,
      schema: this.schema,
      logger: this.log,
      maxAttempts: options.maxAttempts ?? 5,
      backoffMs: this.backoffMs,
    });
    this.bulk = new BulkWrites({
      projections: options.projections,
      writes: this.writes,
      checkpoints: this.checkpoints,
      rowBudget: options.bulkRowBudget ?? 5_000,
      retryWhileUnavailable: (what, work) => this.retryWhileUnavailable(what, work, this.signal),
    });
    this.needsData = dataNeededBy(options.projections);
  }

  /** How far every projection has got, counting events folded in memory and not yet written. */
  private get reached(): number {
    return Math.min(
      ...this.options.projections.map((projection) =>
        Math.max(this.checkpoints.get(projection.name) ?? 0, this.bulk.foldedUpTo(projection.name)),
      ),
    );
  }

  /** The sequence every projection has reached. */
  get position(): number {
    return Math.min(
      ...this.options.projections.map((projection) => this.checkpoints.get(projection.name) ?? 0),
    );
  }

  private async loadCheckpoints(): Promise<void> {
    const loaded = await this.writes.loadCheckpoints(this.names());
    for (const [name, sequence] of loaded) this.checkpoints.set(name, sequence);
  }

  private names(): string[] {
    return this.options.projections.map((projection) => projection.name);
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
    this.bulk.start(this.options.bulk === true);
    const until = this.options.untilSequence;
    const target = until ?? (await this.options.store.lastSequence());
    this.startedAt = Date.now();
    this.eventsApplied = 0;
    if (until !== undefined && this.position >= until) return;
    this.log.info('projecting', {
      projections: this.names(),
      from: this.position + 1,
      until,
    });
    const batches = decodedBatches(
      this.options.store,
      this.options.store.readRaw({
        fromSequence: this.position + 1,
        untilSequence: until,
        follow: until === undefined,
        signal,
        // One batch read ahead while one is applied: several runners of a rebuild stay within memory.
        bufferSize: this.batchSize,
        filterSubject: this.options.filterSubject,
      }),
      { batchSize: this.batchSize, until, needsData: this.needsData },
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
      await this.bulk.flush();
    } finally {
      // A failure elsewhere must not leave a transaction running behind the caller's back.
      await this.bulk.settled();
    }
    // A filtered read ends at the last matching event; nothing else up to `until` concerns these projections.
    if (until !== undefined && !signal?.aborted && this.position < until) {
      await this.retryWhileUnavailable('finish checkpoints', () => this.advanceCheckpoints(until), signal);
      this.options.onProgress?.(this.progress(Math.max(target, this.position)));
    }
  }

  private async advanceCheckpoints(sequence: number): Promise<void> {
    const names = this.names();
    await this.writes.advanceCheckpoints(names, sequence);
    for (const name of names) this.checkpoints.set(name, Math.max(this.checkpoints.get(name) ?? 0, sequence));
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
  private async applyBatch(batch: DecodedBatch): Promise<void> {
    if (batch.size === 0) return;
    await this.bulk.finishIfSettled();
    const perBatch = this.options.projections.filter(
      (projection) =>
        !this.bulk.folds(projection.name) &&
        batch.lastSequence > (this.checkpoints.get(projection.name) ?? 0),
    );
    // The transaction's round trips and the in-memory fold overlap.
    await Promise.all([this.applyPerBatch(batch, perBatch), this.bulk.fold(batch)]);
    this.eventsApplied += batch.size;
    await this.bulk.writeIfOverBudget();
  }

  private async applyPerBatch(batch: DecodedBatch, projections: readonly Projection[]): Promise<void> {
    if (projections.length === 0) return;
    try {
      await this.writes.applyInTransaction(batch, projections, this.checkpoints, false);
    } catch (error) {
      if (isTransientDatabaseError(error)) throw error;
      await this.writes.applyInTransaction(batch, projections, this.checkpoints, true);
    }
    for (const projection of projections) {
      this.checkpoints.set(
        projection.name,
        Math.max(this.checkpoints.get(projection.name) ?? 0, batch.lastSequence),
      );
    }
  }

  private retryWhileUnavailable(
    what: string,
    work: () => Promise<void>,
    signal?: AbortSignal,
  ): Promise<void> {
    return retryWhileUnavailable(work, { what, backoffMs: this.backoffMs, logger: this.log, signal });
  }
}
