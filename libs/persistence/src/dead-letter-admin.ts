import type { NatsConnection } from '@nats-io/transport-node';
import type { DataSource } from 'typeorm';
import {
  DomainError,
  projectorCommands,
  type Actor,
  type DeadLetterMessage,
  type DeadLetterStatus,
  type DeadLetterView,
  type DismissOutcome,
  type RebuildStatus,
  type RetryOutcome,
} from '#contracts';
import { deadLetterRetrySubject } from '#eventstore';
import type { Logger } from '#platform';

/** What the admin side needs of a command bus (CommandBus has it). */
export interface CommandExecutor {
  execute<R>(subject: string, payload: unknown, meta: { actor: Actor; commandId?: string }): Promise<R>;
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
  status: DeadLetterStatus;
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

const PROJECTION_PREFIX = 'projection:';
const REBUILD_POLL_MS = 500;

export interface DeadLetterFilters {
  status?: DeadLetterStatus;
  consumer?: string;
  /** Only ids below this one (the next page). */
  before?: number;
  limit: number;
}

/**
 * Dead letters for admins (the API and the CLI): listed from `dead_letters`, one by one or grouped by
 * message; retried after a fix; dismissed (the projector records who and why).
 *
 * A consumer's dead letter is retried by that consumer (`cmd.dead-letters.retry.<consumer>`, it marks it
 * resolved itself). A projection's dead letter is retried by rebuilding that projection with a swap: the
 * rebuild applies the event again, and records it as a dead letter again (status back to `open`) if it
 * still fails; when the rebuild is done and it did not, the dead letter is resolved.
 */
export class DeadLetterAdmin {
  private readonly watches = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    protected readonly dataSource: DataSource,
    protected readonly commands: CommandExecutor,
    protected readonly nats: NatsConnection,
    protected readonly logger: Logger,
  ) {}

  async list(
    filters: DeadLetterFilters,
  ): Promise<{ deadLetters: DeadLetterView[]; next: { before: string } | null }> {
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

  /**
   * Dead letters grouped by the message they are about, newest message first. `status` keeps the messages
   * that have at least one letter with that status (all their letters are shown); paging is by sequence.
   */
  async messages(
    filters: Omit<DeadLetterFilters, 'before'> & { beforeSequence?: number },
  ): Promise<{ messages: DeadLetterMessage[]; next: { beforeSequence: number } | null }> {
    const keys: { stream: string; sequence: string }[] = await this.dataSource.query(
      `SELECT stream, sequence FROM dead_letters
        WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR consumer = $2)
          AND ($3::bigint IS NULL OR sequence < $3)
        GROUP BY stream, sequence ORDER BY sequence DESC, stream LIMIT $4`,
      [filters.status ?? null, filters.consumer ?? null, filters.beforeSequence ?? null, filters.limit + 1],
    );
    const page = keys.slice(0, filters.limit);
    if (page.length === 0) return { messages: [], next: null };
    const rows: DeadLetterRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM dead_letters
        WHERE (stream, sequence) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))
        ORDER BY sequence DESC, stream, consumer`,
      [page.map((key) => key.stream), page.map((key) => key.sequence)],
    );
    const groups = new Map<string, DeadLetterMessage>();
    for (const row of rows.map(viewOf)) {
      const key = `${row.stream}:${row.sequence}`;
      let group = groups.get(key);
      if (!group) {
        group = {
          stream: row.stream,
          sequence: row.sequence,
          subject: row.subject,
          eventType: row.eventType,
          eventId: row.eventId,
          firstAt: row.createdAt,
          lastAt: row.updatedAt,
          waiting: 0,
          letters: [],
        };
        groups.set(key, group);
      }
      if (row.createdAt < group.firstAt) group.firstAt = row.createdAt;
      if (row.updatedAt > group.lastAt) group.lastAt = row.updatedAt;
      if (row.status === 'open' || row.status === 'retrying') group.waiting++;
      group.eventType ??= row.eventType;
      group.eventId ??= row.eventId;
      group.letters.push({
        id: row.id,
        consumer: row.consumer,
        status: row.status,
        deliveries: row.deliveries,
        error: row.error,
        updatedAt: row.updatedAt,
      });
    }
    const last = page[page.length - 1]!;
    return {
      messages: [...groups.values()],
      next: keys.length > filters.limit ? { beforeSequence: Number(last.sequence) } : null,
    };
  }

  async get(id: string): Promise<DeadLetterView> {
    const rows: DeadLetterRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM dead_letters WHERE id = $1`,
      [id],
    );
    if (!rows[0]) throw new DomainError('not_found', `no dead letter ${id}`);
    return viewOf(rows[0]);
  }

  /** Dismisses the dead letter (or, `scope: 'message'`, every waiting one of its message): audited. */
  dismiss(
    id: string,
    request: { scope: 'letter' | 'message'; reason: string },
    actor: Actor,
    commandId?: string,
  ): Promise<DismissOutcome> {
    return this.commands.execute<DismissOutcome>(
      projectorCommands.dismissDeadLetters,
      { id, ...request },
      { actor, commandId },
    );
  }

  private async setStatus(id: string, status: DeadLetterStatus, from: DeadLetterStatus[], error?: string) {
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
    if (letter.status === 'dismissed')
      throw new DomainError('conflict', `dead letter ${id} was dismissed; nothing waits for it`);
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

  /** Waits for the rebuilds it watches; `waitForRebuilds` lets a CLI run see its retry to the end. */
  async stop(options: { waitForRebuilds?: boolean } = {}): Promise<void> {
    if (!options.waitForRebuilds) this.stopping = true;
    await Promise.allSettled([...this.watches]);
  }
}
