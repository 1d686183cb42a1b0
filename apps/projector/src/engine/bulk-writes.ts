import { entryOf, relevantEvents, type DecodedBatch } from './log-batches.js';
import type { PostgresWrites, FailedEvent } from './postgres-writes.js';
import type { BulkLoader, Projection } from './projection.js';
import { isTransientDatabaseError } from './transient.js';

/** A bulk flush that Postgres refused for a reason other than availability (e.g. a row breaks a CHECK). */
export class BulkFlushRefused extends Error {
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

export interface BulkWritesOptions {
  projections: readonly Projection[];
  writes: PostgresWrites;
  /** The runner's checkpoints: read to know what is written, moved when a bulk write commits. */
  checkpoints: Map<string, number>;
  /** Rows held in memory across bulk loaders before they are written (bounds memory). */
  rowBudget: number;
  /** Retries a write while the database is unreachable (the runner's policy and abort signal). */
  retryWhileUnavailable: (what: string, work: () => Promise<void>) => Promise<void>;
}

/**
 * The rebuild's fast path: projections with a bulk loader fold batches in memory, and what they folded
 * is written with their dead letters and checkpoints in one transaction when the rows held pass the
 * budget, and at the end. One write runs at a time, in the background, while folding goes on.
 */
export class BulkWrites {
  /** Bulk loaders by projection name, and the sequence each has folded (ahead of its checkpoint). */
  private readonly loaders = new Map<string, BulkLoader>();
  private readonly folded = new Map<string, number>();
  private failedEvents: FailedEvent[] = [];
  private inFlight: BulkWriteInFlight | undefined;

  constructor(private readonly options: BulkWritesOptions) {}

  /** After loading the checkpoints: a projection at checkpoint 0 has written no rows yet. */
  start(enabled: boolean): void {
    this.loaders.clear();
    this.folded.clear();
    this.failedEvents = [];
    this.inFlight = undefined;
    if (!enabled) return;
    for (const projection of this.options.projections) {
      const tableEmpty = (this.options.checkpoints.get(projection.name) ?? 0) === 0;
      const loader = projection.bulkLoader?.({ tableEmpty });
      if (loader) this.loaders.set(projection.name, loader);
    }
  }

  /** Whether this projection folds in memory (else the runner applies its batches in transactions). */
  folds(name: string): boolean {
    return this.loaders.has(name);
  }

  /** The sequence a projection has folded in memory, written or not (0 when it folds nothing). */
  foldedUpTo(name: string): number {
    return this.folded.get(name) ?? 0;
  }

  /** Between batches, never between a prefetch and its fold: eviction must not drop a row just read. */
  async finishIfSettled(): Promise<void> {
    if (this.inFlight?.settled) await this.finish();
  }

  /**
   * Folds the batch into each bulk loader. A pure fold that throws would throw again, so the event is
   * dead-lettered (at the next flush) without retries.
   */
  async fold(batch: DecodedBatch): Promise<void> {
    const { checkpoints, writes } = this.options;
    for (const projection of this.options.projections) {
      const loader = this.loaders.get(projection.name);
      if (!loader) continue;
      const after = Math.max(checkpoints.get(projection.name) ?? 0, this.folded.get(projection.name) ?? 0);
      if (batch.lastSequence <= after) continue;
      const relevant = relevantEvents(projection, batch.events, after);
      if (relevant.length > 0) {
        await writes.withContext((context) => loader.prefetch(relevant, context));
        for (const { event, error } of loader.fold(relevant)) {
          this.failedEvents.push({ projection, entry: entryOf(event), event, error });
        }
      }
      for (const { entry, error } of batch.undecodable) {
        if (entry.sequence > after) this.failedEvents.push({ projection, entry, event: null, error });
      }
      this.folded.set(projection.name, batch.lastSequence);
    }
  }

  /** After a batch: starts a write once the rows held pass the budget, and waits when twice past it. */
  async writeIfOverBudget(): Promise<void> {
    const rows = this.rowsInMemory();
    if (rows <= this.options.rowBudget) return;
    // One write at a time; memory may hold a second budget's worth while it runs, then folding waits.
    if (this.inFlight && rows > 2 * this.options.rowBudget) await this.finish();
    if (!this.inFlight) this.startWrite(true);
  }

  /** At the end of a run: writes everything still folded in memory. */
  async flush(): Promise<void> {
    await this.finish();
    this.startWrite(false);
    await this.finish();
  }

  /** Waits for the write in flight to commit or fail, without taking its result. */
  async settled(): Promise<void> {
    await this.inFlight?.done;
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
  private startWrite(evict: boolean): void {
    const { checkpoints, writes: postgres } = this.options;
    const projections = [...this.loaders.keys()].filter(
      (name) => (this.folded.get(name) ?? 0) > (checkpoints.get(name) ?? 0),
    );
    if (projections.length === 0) return;
    const writes = projections.map((name) => this.loaders.get(name)!.takeChanges());
    const sequences = projections.map((name) => this.folded.get(name)!);
    const deadLetters = this.failedEvents;
    this.failedEvents = [];
    const write = () =>
      postgres.inTransaction(async (context, runner) => {
        try {
          for (const bulkWrite of writes) await bulkWrite(context);
        } catch (error) {
          throw isTransientDatabaseError(error) ? error : new BulkFlushRefused(error);
        }
        for (const letter of deadLetters) await postgres.recordDeadLetter(runner, letter, 1);
        await postgres.writeCheckpoints(runner, projections, sequences);
      });
    const inFlight: BulkWriteInFlight = {
      projections,
      sequences,
      evict,
      settled: false,
      done: Promise.resolve(),
    };
    inFlight.done = this.options.retryWhileUnavailable('write folded rows', write).then(
      () => void (inFlight.settled = true),
      (error: unknown) => {
        inFlight.settled = true;
        inFlight.error = error;
      },
    );
    this.inFlight = inFlight;
  }

  /** Waits for the write in flight; once committed, moves its checkpoints and lets loaders evict. */
  private async finish(): Promise<void> {
    const inFlight = this.inFlight;
    if (!inFlight) return;
    await inFlight.done;
    this.inFlight = undefined;
    if (inFlight.error !== undefined) throw inFlight.error;
    inFlight.projections.forEach((name, index) => {
      this.options.checkpoints.set(name, inFlight.sequences[index]!);
      if (inFlight.evict) this.loaders.get(name)!.evict();
    });
  }
}
