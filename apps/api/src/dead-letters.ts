import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { DataSource } from 'typeorm';
import { commandSubject, DomainError, type Actor } from '#contracts';
import { deadLetterRetrySubject } from '#eventstore';
import { CommandBus } from '#messaging';
import type { RebuildStatus } from '#persistence';
import { LOGGER, type Logger } from '#platform';
import { API_NATS } from './event-log.js';

export const projectorCommands = {
  rebuild: commandSubject('projector', 'rebuild'),
  rebuildStatus: commandSubject('projector', 'rebuild-status'),
  rebuilds: commandSubject('projector', 'rebuilds'),
  schemas: commandSubject('projector', 'schemas'),
  dropSchema: commandSubject('projector', 'drop-schema'),
  status: commandSubject('projector', 'status'),
  quarantine: commandSubject('projector', 'quarantine'),
};

export interface DeadLetterView {
  id: string;
  consumer: string;
  stream: string;
  sequence: number;
  subject: string;
  eventType: string | null;
  eventId: string | null;
  deliveries: number;
  error: string;
  status: 'open' | 'retrying' | 'resolved';
  payload: string;
  createdAt: string;
  updatedAt: string;
}

interface DeadLetterRow {
  id: string;
  consumer: string;
  stream: string;
  sequence: string;
  subject: string;
  event_type: string | null;
  event_id: string | null;
  deliveries: number;
  error: string;
  status: DeadLetterView['status'];
  payload: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS =
  'id::text AS id, consumer, stream, sequence, subject, event_type, event_id, deliveries, error, status, payload, created_at, updated_at';

function viewOf(row: DeadLetterRow): DeadLetterView {
  return {
    id: row.id,
    consumer: row.consumer,
    stream: row.stream,
    sequence: Number(row.sequence),
    subject: row.subject,
    eventType: row.event_type,
    eventId: row.event_id,
    deliveries: row.deliveries,
    error: row.error,
    status: row.status,
    payload: row.payload,
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}

export interface RetryOutcome {
  /** `resolved`: the consumer handled it now; `failed`: it failed again; `rebuilding`: a projection is rebuilt. */
  outcome: 'resolved' | 'failed' | 'rebuilding';
  deadLetter: DeadLetterView;
  error?: string;
  rebuild?: RebuildStatus;
}

const PROJECTION_PREFIX = 'projection:';
const REBUILD_POLL_MS = 500;

/**
 * Dead letters: listed from the `dead_letters` table, retried after a fix. A consumer's dead letter is
 * retried by that consumer (`cmd.dead-letters.retry.<consumer>`, it marks it resolved itself). A
 * projection's dead letter is retried by rebuilding that projection with a swap: the rebuild applies the
 * event again, and records it as a dead letter again (status back to `open`) if it still fails; when the
 * rebuild is done and it did not, the dead letter is resolved.
 */
@Injectable()
export class DeadLetters implements OnApplicationShutdown {
  private readonly watches = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(API_NATS) private readonly nats: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async list(filters: {
    status?: string;
    consumer?: string;
    before?: number;
    limit: number;
  }): Promise<{ deadLetters: DeadLetterView[]; next: { before: string } | null }> {
    const rows: DeadLetterRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM dead_letters
        WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR consumer = $2)
          AND ($3::bigint IS NULL OR id < $3)
        ORDER BY dead_letters.id DESC LIMIT $4`,
      [filters.status ?? null, filters.consumer ?? null, filters.before ?? null, filters.limit + 1],
    );
    const page = rows.slice(0, filters.limit).map(viewOf);
    const last = page[page.length - 1];
    return { deadLetters: page, next: rows.length > filters.limit && last ? { before: last.id } : null };
  }

  async get(id: string): Promise<DeadLetterView> {
    const rows: DeadLetterRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM dead_letters WHERE id = $1`,
      [id],
    );
    if (!rows[0]) throw new DomainError('not_found', `no dead letter ${id}`);
    return viewOf(rows[0]);
  }

  private async setStatus(id: string, status: DeadLetterView['status'], from: string[], error?: string) {
    await this.dataSource.query(
      `UPDATE dead_letters SET status = $2, error = COALESCE($4, error), updated_at = now()
        WHERE id = $1 AND status = ANY($3::text[])`,
      [id, status, from, error?.slice(0, 4_000) ?? null],
    );
  }

  async retry(id: string, actor: Actor): Promise<RetryOutcome> {
    const letter = await this.get(id);
    if (letter.status === 'resolved')
      throw new DomainError('conflict', `dead letter ${id} is resolved already`);
    if (letter.consumer.startsWith(PROJECTION_PREFIX)) return this.retryByRebuild(letter, actor);
    if (!/^[A-Za-z0-9_-]{1,200}$/.test(letter.consumer)) {
      throw new DomainError('invalid', `consumer ${letter.consumer} cannot be asked to retry`, 'consumer');
    }
    await this.setStatus(id, 'retrying', ['open', 'retrying']);
    let reply: { ok: boolean; error?: string };
    try {
      const message = await this.nats.request(
        deadLetterRetrySubject(letter.consumer),
        JSON.stringify({ sequence: letter.sequence }),
        { timeout: 30_000 },
      );
      reply = message.json<{ ok: boolean; error?: string }>();
    } catch (error) {
      await this.setStatus(id, 'open', ['retrying']);
      const message = (error as Error).message ?? String(error);
      if (/no responders|503/i.test(message) || (error as { code?: string }).code === '503') {
        throw new DomainError(
          'unavailable',
          `consumer ${letter.consumer} is not running; start it and retry`,
        );
      }
      throw new DomainError('timeout', `consumer ${letter.consumer} did not answer in time`);
    }
    if (!reply.ok) {
      await this.setStatus(id, 'open', ['retrying'], reply.error ?? 'the retry failed');
      return { outcome: 'failed', deadLetter: await this.get(id), error: reply.error };
    }
    return { outcome: 'resolved', deadLetter: await this.get(id) };
  }

  private async retryByRebuild(letter: DeadLetterView, actor: Actor): Promise<RetryOutcome> {
    const projection = letter.consumer.slice(PROJECTION_PREFIX.length);
    await this.setStatus(letter.id, 'retrying', ['open', 'retrying']);
    let rebuild: RebuildStatus;
    try {
      rebuild = await this.commands.execute<RebuildStatus>(
        projectorCommands.rebuild,
        { projections: [projection], mode: 'swap' },
        { actor },
      );
    } catch (error) {
      await this.setStatus(letter.id, 'open', ['retrying']);
      throw error;
    }
    const watch = this.watchRebuild(letter.id, rebuild.id, actor).finally(() => this.watches.delete(watch));
    this.watches.add(watch);
    return { outcome: 'rebuilding', deadLetter: await this.get(letter.id), rebuild };
  }

  /** Resolves the dead letter when the rebuild is done and did not dead-letter the event again. */
  private async watchRebuild(id: string, rebuildId: string, actor: Actor): Promise<void> {
    try {
      for (;;) {
        if (this.stopping) return;
        await new Promise((resolve) => setTimeout(resolve, REBUILD_POLL_MS));
        const status = await this.commands.execute<RebuildStatus>(
          projectorCommands.rebuildStatus,
          { id: rebuildId },
          { actor },
        );
        if (status.phase === 'done') {
          // A rebuild that failed on the event again recorded it again, which set its status back to open.
          await this.setStatus(id, 'resolved', ['retrying']);
          return;
        }
        if (status.phase === 'failed') {
          await this.setStatus(id, 'open', ['retrying'], `rebuild ${rebuildId} failed: ${status.error}`);
          return;
        }
      }
    } catch (error) {
      this.logger.warn('lost track of a rebuild retrying a dead letter; it stays "retrying"', {
        deadLetter: id,
        rebuild: rebuildId,
        error,
      });
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.watches]);
  }
}
