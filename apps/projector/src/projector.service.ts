import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import {
  DomainError,
  type DismissDeadLettersRequest,
  type DismissOutcome,
  type EventContext,
  type ProjectorStatus,
  type QuarantineRequest,
  type RebuildRequest,
  type RebuildStatus,
} from '#contracts';
import { EventStore, type QuarantineOutcome } from '#eventstore';
import { LOGGER, type Logger } from '#platform';
import type { ProjectorConfig } from './config.js';
import { dropSchema, listProjectionSchemas, ownedTables } from './engine/rebuild.js';
import { RebuildJob } from './engine/rebuild-job.js';
import { ProjectionRunner } from './engine/runner.js';
import { projections } from './projections/index.js';

export const PROJECTOR_CONFIG = Symbol('PROJECTOR_CONFIG');

/** Keeps the live projections in `public` up to date with the log, and runs rebuilds beside them. */
@Injectable()
export class ProjectorService implements OnApplicationBootstrap, OnApplicationShutdown {
  private live?: { abort: AbortController; runner: ProjectionRunner; running: Promise<void> };
  private failed?: (error: unknown) => void;
  private shuttingDown = false;
  private readonly rebuilds = new Map<string, RebuildStatus>();
  private swapInProgress = false;
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

  /**
   * Sets an undecodable message of the log aside (see EventStore.quarantine) and settles every dead
   * letter any consumer recorded for it: they were waiting for exactly this.
   */
  async quarantine(
    command: QuarantineRequest,
    context: EventContext,
  ): Promise<QuarantineOutcome & { deadLettersResolved: number }> {
    const outcome = await this.store.quarantine(command, context);
    const [, resolved] = (await this.dataSource.query(
      `UPDATE dead_letters SET status = 'resolved', updated_at = now()
        WHERE stream = $1 AND sequence = $2 AND status <> 'resolved'`,
      [this.store.stream, command.sequence],
    )) as [unknown, number];
    this.logger.warn('event quarantined', {
      sequence: command.sequence,
      subject: outcome.subject,
      changed: outcome.changed,
      actor: context.actor,
      deadLettersResolved: resolved,
    });
    return { ...outcome, deadLettersResolved: resolved };
  }

  /**
   * Dismisses dead letters: the one named, or every one of its message (`scope: 'message'`), that is
   * still waiting. One DeadLettersDismissed records who and why (on the message's `dead-letter` record);
   * the rows change in the same transaction, so a failed append changes nothing.
   */
  async dismissDeadLetters(
    command: DismissDeadLettersRequest,
    context: EventContext,
    commandId?: string,
  ): Promise<DismissOutcome> {
    return this.dataSource.transaction(async (manager) => {
      const [letter]: { stream: string; sequence: string; status: string }[] = await manager.query(
        'SELECT stream, sequence, status FROM dead_letters WHERE id = $1',
        [command.id],
      );
      if (!letter) throw new DomainError('not_found', `no dead letter ${command.id}`, 'id');
      const sequence = Number(letter.sequence);
      const waiting: { id: string; consumer: string }[] = await manager.query(
        `SELECT id::text AS id, consumer FROM dead_letters
          WHERE stream = $1 AND sequence = $2 AND status IN ('open', 'retrying')
            AND ($3::bigint IS NULL OR id = $3)
          ORDER BY id FOR UPDATE`,
        [letter.stream, sequence, command.scope === 'letter' ? command.id : null],
      );
      if (waiting.length === 0) return { sequence, changed: false, dismissed: [] };
      const consumers = waiting.map((row) => row.consumer);
      await this.store.append(
        { type: 'dead-letter', id: String(sequence) },
        [
          {
            type: 'DeadLettersDismissed',
            data: { stream: letter.stream, sequence, consumers, reason: command.reason },
          },
        ],
        { context, commandId },
      );
      await manager.query(
        `UPDATE dead_letters SET status = 'dismissed', updated_at = now() WHERE id = ANY($1::bigint[])`,
        [waiting.map((row) => row.id)],
      );
      this.logger.warn('dead letters dismissed', { sequence, consumers, actor: context.actor });
      return { sequence, changed: true, dismissed: waiting };
    });
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

  async startRebuild(request: RebuildRequest): Promise<RebuildStatus> {
    const selected = request.projections.includes('all')
      ? [...projections]
      : request.projections.map((name) => {
          const projection = projections.find((candidate) => candidate.name === name);
          if (!projection) {
            throw new DomainError(
              'not_found',
              `no projection named ${name}; known: ${projections.map((p) => p.name).join(', ')}`,
              'projections',
            );
          }
          return projection;
        });
    if (request.mode === 'swap' && this.swapInProgress) {
      throw new DomainError('conflict', 'another rebuild is being swapped in; wait for it to finish');
    }
    const asOfSequence =
      request.mode !== 'inspect'
        ? undefined
        : request.asOf?.time
          ? await this.store.sequenceAt(new Date(request.asOf.time))
          : request.asOf?.sequence;
    const job = new RebuildJob({
      dataSource: this.dataSource,
      store: this.store,
      projections: selected,
      logger: this.logger,
      mode: request.mode,
      batchSize: this.config.CL_PROJECTOR_BATCH_SIZE,
      bulkRowBudget: this.config.CL_PROJECTOR_REBUILD_ROW_BUDGET,
      asOfSequence,
      label: request.label,
      live:
        request.mode === 'swap'
          ? { position: () => this.position(), pause: () => this.pause(), resume: () => this.resume() }
          : undefined,
      onChange: (status) => this.rebuilds.set(status.id, status),
    });
    this.rebuilds.set(job.status.id, { ...job.status });
    if (request.mode === 'swap') this.swapInProgress = true;
    void job.run().finally(() => {
      if (request.mode === 'swap') this.swapInProgress = false;
    });
    return { ...job.status };
  }

  rebuild(id: string): RebuildStatus {
    const status = this.rebuilds.get(id);
    if (!status) throw new DomainError('not_found', `no rebuild ${id}`, 'id');
    return status;
  }

  listRebuilds(): RebuildStatus[] {
    return [...this.rebuilds.values()].sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  }

  async schemas() {
    return listProjectionSchemas(this.dataSource);
  }

  async dropInspection(schema: string): Promise<void> {
    if (!schema.startsWith('asof_'))
      throw new DomainError('invalid', 'only time-travel schemas (asof_…) can be dropped', 'schema');
    await dropSchema(this.dataSource, schema);
  }

  async state(): Promise<ProjectorStatus> {
    const logEnd = await this.store.lastSequence();
    const position = this.position();
    return {
      position,
      logEnd,
      lag: Math.max(logEnd - position, 0),
      projections: projections.map((projection) => projection.name),
    };
  }
}
