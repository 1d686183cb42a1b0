import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import {
  DomainError,
  type DismissDeadLettersRequest,
  type DismissOutcome,
  type EventContext,
  type ProjectionSchema,
  type ProjectorStatus,
  type QuarantineRequest,
  type RebuildRequest,
  type RebuildStatus,
} from '#contracts';
import { EventStore, type QuarantineOutcome } from '#eventstore';
import { LOGGER, type Logger } from '#platform';
import { PROJECTOR_CONFIG, type ProjectorConfig } from './config.js';
import { dropSchema, listProjectionSchemas } from './engine/rebuild.js';
import { RebuildJob } from './engine/rebuild-job.js';
import { LiveProjection } from './live-projection.js';
import { projections } from './projections/index.js';

/** The projector's admin commands: rebuilds beside the live projections, time travel, status, repairs. */
@Injectable()
export class ProjectorCommands {
  private readonly rebuilds = new Map<string, RebuildStatus>();
  private swapInProgress = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly store: EventStore,
    private readonly live: LiveProjection,
    @Inject(PROJECTOR_CONFIG) private readonly config: ProjectorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

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
      live: request.mode === 'swap' ? this.live : undefined,
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

  async schemas(): Promise<ProjectionSchema[]> {
    return listProjectionSchemas(this.dataSource);
  }

  async dropInspection(schema: string): Promise<void> {
    if (!schema.startsWith('asof_'))
      throw new DomainError('invalid', 'only time-travel schemas (asof_…) can be dropped', 'schema');
    await dropSchema(this.dataSource, schema);
  }

  async state(): Promise<ProjectorStatus> {
    const logEnd = await this.store.lastSequence();
    const position = this.live.position();
    return {
      position,
      logEnd,
      lag: Math.max(logEnd - position, 0),
      projections: projections.map((projection) => projection.name),
    };
  }
}
