import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { EventStore } from '#eventstore';
import { LOGGER, type Logger } from '#platform';
import { PROJECTOR_CONFIG, type ProjectorConfig } from './config.js';
import { ownedTables } from './engine/rebuild.js';
import type { LiveProjector } from './engine/rebuild-job.js';
import { ProjectionRunner } from './engine/runner.js';
import { projections } from './projections/index.js';

/**
 * Keeps the live projections in `public` up to date with the log, from the application's start to its
 * shutdown; a swap rebuild pauses and resumes it.
 */
@Injectable()
export class LiveProjection implements LiveProjector, OnApplicationBootstrap, OnApplicationShutdown {
  private live?: { abort: AbortController; runner: ProjectionRunner; running: Promise<void> };
  private failed?: (error: unknown) => void;
  private shuttingDown = false;
  /** Rejects when the live runner failed and the process should exit. */
  readonly failure = new Promise<never>((_resolve, reject) => (this.failed = reject));

  constructor(
    private readonly dataSource: DataSource,
    private readonly store: EventStore,
    @Inject(PROJECTOR_CONFIG) private readonly config: ProjectorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.failure.catch(() => undefined);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.checkLogIdentity();
    this.startLive();
  }

  /**
   * Projections are derived from one log. When the log is another one than they were built from (the
   * broker's data was lost and it started empty, or it was pointed elsewhere), they describe nothing
   * real: they are emptied, with the dead letters of the old log, and built again from its first event.
   */
  async checkLogIdentity(): Promise<void> {
    const identity = await this.store.identity();
    await this.dataSource.transaction(async (manager) => {
      const [recorded]: { created: string }[] = await manager.query(
        'SELECT created FROM event_log_identity WHERE stream = $1 FOR UPDATE',
        [identity.stream],
      );
      if (recorded?.created === identity.created) return;
      if (recorded) {
        this.logger.warn('the projections were built from another event log; building them again', {
          stream: identity.stream,
          builtFrom: recorded.created,
          now: identity.created,
        });
        const tables = ownedTables(projections).map((table) => `"${table}"`);
        await manager.query(`TRUNCATE ${[...tables, 'projection_checkpoints', 'dead_letters'].join(', ')}`);
      }
      await manager.query(
        `INSERT INTO event_log_identity (stream, created) VALUES ($1, $2)
           ON CONFLICT (stream) DO UPDATE SET created = EXCLUDED.created, recorded_at = now()`,
        [identity.stream, identity.created],
      );
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.shuttingDown = true;
    await this.pause();
  }

  /** The sequence every live projection has reached. */
  position(): number {
    return this.live?.runner.position ?? this.lastPosition;
  }
  private lastPosition = 0;

  startLive(): void {
    if (this.live || this.shuttingDown) return;
    let lastReport = 0;
    const abort = new AbortController();
    const runner = new ProjectionRunner({
      dataSource: this.dataSource,
      store: this.store,
      projections,
      logger: this.logger,
      batchSize: this.config.CL_PROJECTOR_BATCH_SIZE,
      maxAttempts: this.config.CL_PROJECTOR_MAX_ATTEMPTS,
      onProgress: (progress) => {
        // Catching up on a long log reports every few seconds; steady state stays quiet.
        if (Date.now() - lastReport < 5_000 || progress.sequence >= progress.target) return;
        lastReport = Date.now();
        this.logger.info('catching up', { ...progress });
      },
    });
    const running = runner.run(abort.signal).catch((error: unknown) => {
      if (abort.signal.aborted) return;
      this.logger.error('projector stopped on an error', { error });
      this.failed?.(error);
    });
    this.live = { abort, runner, running };
  }

  /** Stops the live runner at a batch boundary (a batch in flight commits or rolls back first). */
  async pause(): Promise<void> {
    const live = this.live;
    if (!live) return;
    live.abort.abort();
    await live.running;
    this.lastPosition = live.runner.position;
    this.live = undefined;
  }

  resume(): void {
    this.startLive();
  }
}
