import { randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { RebuildMode, RebuildStatus } from '#contracts';
import type { EventStore } from '#eventstore';
import type { Logger } from '#platform';
import type { Projection } from './projection.js';
import {
  compareTables,
  createShadowTables,
  dropSchema,
  finishShadowTables,
  ownedTables,
  swapIntoLive,
} from './rebuild.js';
import { ProjectionRunner } from './runner.js';

/** What a rebuild needs from the live projector to swap without racing it. */
export interface LiveProjector {
  position(): number;
  pause(): Promise<void>;
  resume(): void;
}

export interface RebuildJobOptions {
  dataSource: DataSource;
  store: EventStore;
  projections: readonly Projection[];
  logger: Logger;
  mode: RebuildMode;
  /** Inspect mode: rebuild as of this sequence (default: the end of the log). */
  asOfSequence?: number;
  /** Inspect mode: name of the schema to keep (`asof_<label>`). */
  label?: string;
  /** Swap mode: the live projector to catch up with, pause and resume. */
  live?: LiveProjector;
  /** Events per transaction (the runner's default when absent); larger batches cost memory, not speed. */
  batchSize?: number;
  /** Rows a rebuild holds in memory before writing them (the runner's default when absent). */
  bulkRowBudget?: number;
  onChange?: (status: RebuildStatus) => void;
}

const CATCH_UP_ROUNDS = 5;

export interface ProjectionGroup {
  /** `events.<aggregate>.>` when every projection of the group reads one aggregate type. */
  filterSubject?: string;
  projections: Projection[];
}

/**
 * Groups projections by the one aggregate type they read, so each group reads only its subjects from the
 * server. Projections reading several aggregate types (or all events) need the whole log: then every
 * projection shares that one read, since decoding the log is the rebuild's main cost and a second,
 * filtered read would decode those events twice.
 */
export function groupBySubject(projections: readonly Projection[], store: EventStore): ProjectionGroup[] {
  const groups = new Map<string, Projection[]>();
  for (const projection of projections) {
    const aggregates = new Set(
      projection.eventTypes?.map((type) => store.registry.aggregateOf(type) ?? '?') ?? ['?'],
    );
    const [only] = aggregates;
    const key = aggregates.size === 1 && only !== '?' ? `${store.subjectPrefix}.${only}.>` : '';
    groups.set(key, [...(groups.get(key) ?? []), projection]);
  }
  if (groups.has('')) return [{ projections: [...projections] }];
  return [...groups.entries()].map(([key, members]) => ({
    filterSubject: key,
    projections: members,
  }));
}

/**
 * Rebuilds projections from sequence 1 into their own schema while the live tables keep serving.
 * `swap`: catch up with the live projector, pause it, verify, swap the tables in one transaction, resume.
 * `inspect`: stop at a sequence (time travel) and keep the schema for reading.
 */
export class RebuildJob {
  readonly status: RebuildStatus;
  private readonly tables: string[];
  private readonly groups: ProjectionGroup[];
  private readonly log: Logger;
  private replayStartedAt = 0;
  private replayedFrom = 0;

  constructor(private readonly options: RebuildJobOptions) {
    this.tables = ownedTables(options.projections);
    this.groups = groupBySubject(options.projections, options.store);
    const id = `${new Date()
      .toISOString()
      .replace(/[-:TZ.]/g, '')
      .slice(0, 14)}_${randomBytes(3).toString('hex')}`;
    if (options.mode === 'swap' && !options.live) throw new Error('a swap rebuild needs the live projector');
    const schema = options.mode === 'swap' ? `rebuild_${id}` : `asof_${options.label ?? id}`;
    this.status = {
      id,
      projections: options.projections.map((projection) => projection.name),
      mode: options.mode,
      schema,
      phase: 'preparing',
      sequence: 0,
      target: 0,
      eventsPerSecond: 0,
      etaSeconds: null,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      error: null,
      differences: null,
    };
    this.log = options.logger.child({ rebuild: id, schema });
  }

  async run(): Promise<RebuildStatus> {
    const { dataSource, live } = this.options;
    let paused = false;
    try {
      this.update({ phase: 'preparing' });
      await createShadowTables(dataSource, this.status.schema, this.tables);
      const firstTarget =
        this.options.mode === 'swap'
          ? live!.position()
          : (this.options.asOfSequence ?? (await this.options.store.lastSequence()));
      this.update({ phase: 'replaying', target: firstTarget });
      this.replayStartedAt = Date.now();
      await this.replayUntil(firstTarget);

      if (this.options.mode === 'swap') {
        // The live projector keeps moving: follow it until the remaining distance is one short replay.
        this.update({ phase: 'catching-up' });
        for (let round = 0; round < CATCH_UP_ROUNDS && live!.position() > this.status.sequence; round++) {
          await this.replayUntil(live!.position());
        }
      }
      this.update({ phase: 'indexing' });
      await finishShadowTables(dataSource, this.status.schema, this.tables);

      if (this.options.mode === 'swap') {
        await live!.pause();
        paused = true;
        await this.replayUntil(live!.position());
        this.update({ phase: 'verifying' });
        const differences = await compareTables(dataSource, this.status.schema, this.tables);
        this.update({ differences });
        for (const difference of differences) {
          if (difference.onlyLive + difference.onlyRebuilt > 0)
            this.log.warn('rebuilt rows differ from the live rows', { ...difference });
        }
        this.update({ phase: 'swapping' });
        await swapIntoLive(dataSource, this.status.schema, this.options.projections);
      }
      this.update({ phase: 'done', finishedAt: new Date().toISOString(), etaSeconds: 0 });
      this.log.info('rebuild finished', {
        sequence: this.status.sequence,
        eventsPerSecond: this.status.eventsPerSecond,
      });
    } catch (error) {
      this.update({ phase: 'failed', finishedAt: new Date().toISOString(), error: (error as Error).message });
      this.log.error('rebuild failed', { error });
      if (this.options.mode === 'swap')
        await dropSchema(dataSource, this.status.schema).catch(() => undefined);
    } finally {
      if (paused) live!.resume();
    }
    return this.status;
  }

  private async replayUntil(target: number): Promise<void> {
    if (target <= this.status.sequence) return;
    this.update({ target });
    const positions = new Map<number, number>();
    const runners = this.groups.map(
      (group, index) =>
        new ProjectionRunner({
          dataSource: this.options.dataSource,
          store: this.options.store,
          projections: group.projections,
          filterSubject: group.filterSubject,
          logger: this.log,
          schema: this.status.schema,
          batchSize: this.options.batchSize,
          untilSequence: target,
          // The rebuild's schema is its own: rows fold in memory and are written once per flush.
          bulk: true,
          bulkRowBudget: this.options.bulkRowBudget,
          onProgress: (progress) => {
            positions.set(index, progress.sequence);
            const sequence = Math.min(
              ...this.groups.map((_group, other) => positions.get(other) ?? this.status.sequence),
            );
            const seconds = Math.max((Date.now() - this.replayStartedAt) / 1000, 0.001);
            const eventsPerSecond = Math.round((sequence - this.replayedFrom) / seconds);
            const remaining = Math.max(this.status.target - sequence, 0);
            this.update({
              sequence,
              eventsPerSecond,
              etaSeconds: eventsPerSecond > 0 ? Math.ceil(remaining / eventsPerSecond) : null,
            });
          },
        }),
    );
    // Groups read different subjects and write different tables: Postgres works on them in parallel.
    await Promise.all(runners.map((runner) => runner.run()));
    this.update({
      sequence: Math.max(this.status.sequence, Math.min(...runners.map((runner) => runner.position))),
    });
  }

  private update(change: Partial<RebuildStatus>): void {
    Object.assign(this.status, change);
    this.options.onChange?.({ ...this.status });
  }
}
