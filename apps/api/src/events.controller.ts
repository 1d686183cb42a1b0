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
  type EventPage,
  type StoredEvent,
} from '#contracts';
import { EventStore, type QuarantineOutcome } from '#eventstore';
import { queryEventLog } from '#persistence';
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
  async list(@Query() raw: unknown): Promise<EventPage> {
    const query = parseOrThrow(eventsQuery, raw);
    const { limit, ...filters } = query;
    return queryEventLog(this.dataSource, filters, limit ?? 100);
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
