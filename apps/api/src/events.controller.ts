import { Body, Controller, Get, Headers, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import {
  AGGREGATE_TYPES,
  DomainError,
  hasControlCharacter,
  isoTimestamp,
  label,
  parseOrThrow,
  projectorCommands,
  UndecodableEventError,
  type StoredEvent,
} from '#contracts';
import { EventStore, type QuarantineOutcome } from '#eventstore';
import { ACCEPTABLE_CORRELATION_ID } from '#platform';
import { CommandBus } from '#messaging';
import { commandIdOf } from './routes.controller.js';
import { actorOf, Auth, CurrentPrincipal, type Principal } from './auth.js';

const sequence = z.coerce
  .number({ error: 'must be a sequence number' })
  .int('must be an integer')
  .min(1, 'must be at least 1')
  .max(Number.MAX_SAFE_INTEGER, 'is too large');

const eventsQuery = z
  .strictObject({
    type: z
      .string()
      .regex(/^[A-Z][A-Za-z0-9]{1,63}$/, 'must be an event type name in PascalCase')
      .optional(),
    aggregateType: z
      .enum(AGGREGATE_TYPES, { error: `must be one of ${AGGREGATE_TYPES.join(', ')}` })
      .optional(),
    aggregateId: z
      .string()
      .min(1, 'must not be empty')
      .max(253, 'must be at most 253 characters')
      .refine((value) => !hasControlCharacter(value), { message: 'must not contain control characters' })
      .optional(),
    actorKind: z
      .enum(['admin', 'agent', 'service', 'system'], { error: 'must be admin, agent, service or system' })
      .optional(),
    actorId: label(128).optional(),
    /** Everything one request caused (its X-Correlation-Id), or one chain of events. */
    correlationId: z
      .string()
      .regex(ACCEPTABLE_CORRELATION_ID, 'must be 1-128 characters of letters, digits and . _ : -')
      .optional(),
    /** An event id, or a command id (an Idempotency-Key): what directly caused the events. */
    causationId: z
      .string()
      .min(1, 'must not be empty')
      .max(128, 'must be at most 128 characters')
      .refine((value) => !hasControlCharacter(value), { message: 'must not contain control characters' })
      .optional(),
    from: isoTimestamp.optional(),
    to: isoTimestamp.optional(),
    /** Newest first, older than this sequence (the default order). */
    before: sequence.optional(),
    /** Oldest first, newer than this sequence (following the log). */
    after: z.coerce
      .number({ error: 'must be a sequence number' })
      .int('must be an integer')
      .min(0)
      .optional(),
    limit: z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(1, 'must be between 1 and 500')
      .max(500, 'must be between 1 and 500')
      .optional(),
  })
  .refine((value) => value.before === undefined || value.after === undefined, {
    message: 'give before or after, not both',
    path: ['after'],
  });

interface EventLogRow {
  sequence: string;
  event_id: string;
  type: string;
  aggregate_type: string;
  aggregate_id: string;
  actor_kind: string;
  actor_id: string;
  occurred_at: Date;
  correlation_id: string;
  causation_id: string | null;
}

export interface EventIndexEntry {
  sequence: number;
  eventId: string;
  type: string;
  aggregate: { type: string; id: string };
  actor: { kind: string; id: string };
  occurredAt: string;
  correlationId: string;
  causationId: string | null;
}

/** The event log for the dashboard: the `event_log` index to page through, each event read from the log. */
@Controller('events')
export class EventsController {
  constructor(
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(EventStore) private readonly store: EventStore,
    @Inject(CommandBus) private readonly commands: CommandBus,
  ) {}

  @Get()
  @Auth('admin')
  async list(
    @Query() raw: unknown,
  ): Promise<{ events: EventIndexEntry[]; next: { before?: number; after?: number } | null }> {
    const query = parseOrThrow(eventsQuery, raw);
    const limit = query.limit ?? 100;
    const forward = query.after !== undefined;
    const conditions: string[] = [];
    const values: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      values.push(value);
      conditions.push(sql.replace('?', `$${values.length}`));
    };
    if (query.type) add('type = ?', query.type);
    if (query.aggregateType) add('aggregate_type = ?', query.aggregateType);
    if (query.aggregateId) add('aggregate_id = ?', query.aggregateId);
    if (query.actorKind) add('actor_kind = ?', query.actorKind);
    if (query.actorId) add('actor_id = ?', query.actorId);
    if (query.correlationId) add('correlation_id = ?', query.correlationId);
    if (query.causationId) add('causation_id = ?', query.causationId);
    if (query.from) add('occurred_at >= ?', query.from);
    if (query.to) add('occurred_at <= ?', query.to);
    if (query.before !== undefined) add('sequence < ?', query.before);
    if (query.after !== undefined) add('sequence > ?', query.after);
    values.push(limit + 1);
    const rows: EventLogRow[] = await this.dataSource.query(
      `SELECT sequence, event_id, type, aggregate_type, aggregate_id, actor_kind, actor_id, occurred_at,
              correlation_id, causation_id
         FROM event_log ${conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''}
        ORDER BY sequence ${forward ? 'ASC' : 'DESC'} LIMIT $${values.length}`,
      values,
    );
    const page = rows.slice(0, limit).map((row): EventIndexEntry => ({
      sequence: Number(row.sequence),
      eventId: row.event_id,
      type: row.type,
      aggregate: { type: row.aggregate_type, id: row.aggregate_id },
      actor: { kind: row.actor_kind, id: row.actor_id },
      occurredAt: new Date(row.occurred_at).toISOString(),
      correlationId: row.correlation_id,
      causationId: row.causation_id,
    }));
    const last = page[page.length - 1];
    const next =
      rows.length > limit && last ? (forward ? { after: last.sequence } : { before: last.sequence }) : null;
    return { events: page, next };
  }

  /** One event as stored in the log (validated and upcast), by its sequence. */
  @Get(':sequence')
  @Auth('admin')
  async get(
    @Param('sequence') raw: string,
  ): Promise<StoredEvent | { sequence: number; undecodable: string; quarantined: boolean }> {
    const { sequence: seq } = parseOrThrow(z.object({ sequence }), { sequence: raw });
    if (seq > (await this.store.lastSequence()))
      throw new DomainError('not_found', `no event at sequence ${seq}`);
    try {
      return await this.store.getBySequence(seq);
    } catch (error) {
      if (error instanceof UndecodableEventError) {
        return {
          sequence: seq,
          undecodable: error.message,
          quarantined: await this.store.isQuarantined(seq),
        };
      }
      if (/no message found|not found/i.test((error as Error).message)) {
        throw new DomainError('not_found', `no event at sequence ${seq}`);
      }
      throw error;
    }
  }

  /**
   * Sets an undecodable message aside so that the record it sits on works again (the projector appends
   * EventQuarantined, naming the admin, and settles its dead letters). A message that decodes is refused.
   */
  @Post(':sequence/quarantine')
  @HttpCode(200)
  @Auth('admin')
  async quarantine(
    @Param('sequence') raw: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<QuarantineOutcome & { deadLettersResolved: number }> {
    const { sequence: seq } = parseOrThrow(z.object({ sequence }), { sequence: raw });
    const { reason } = parseOrThrow(z.strictObject({ reason: label(200) }), body ?? {});
    return this.commands.execute(
      projectorCommands.quarantine,
      { sequence: seq, reason },
      { actor: actorOf(principal), commandId: commandIdOf(key) },
    );
  }
}
