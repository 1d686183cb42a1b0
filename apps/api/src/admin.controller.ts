import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import {
  DEAD_LETTER_STATUSES,
  DomainError,
  isoTimestamp,
  label,
  listRoutesQuery,
  parseOrThrow,
  projectorCommands,
  type DismissOutcome,
  type DeadLetterView,
  type RebuildStatus,
  type RetryOutcome,
  type RouteListResult,
} from '#contracts';
import { CommandBus } from '#messaging';
import { queryAgents, queryHostnames, queryRoutes } from '#persistence';
import { actorOf, Auth, CurrentPrincipal, type Principal } from './auth.js';
import { DeadLetters } from './dead-letters.js';
import { schemaExists, viewTable } from './queries/time-travel.js';
import { commandIdOf } from './routes.controller.js';

const projectionName = z.string().regex(/^[a-z_]{1,63}$/, 'must be a projection name (a-z and _) or "all"');

const rebuildBody = z
  .strictObject({
    /** `swap` (default): rebuild from sequence 1 and swap in; `inspect`: keep it as a time-travel view. */
    mode: z.enum(['swap', 'inspect'], { error: 'must be swap or inspect' }).optional(),
    asOf: z
      .strictObject({
        sequence: z
          .number({ error: 'must be a number' })
          .int('must be an integer')
          .min(0, 'must be at least 0')
          .optional(),
        time: isoTimestamp.optional(),
      })
      .refine((value) => (value.sequence === undefined) !== (value.time === undefined), {
        message: 'give either sequence or time',
      })
      .optional(),
    label: z
      .string({ error: 'must be a string' })
      .regex(/^[a-z0-9_]{1,40}$/, 'must be 1-40 characters of a-z, 0-9 and _')
      .optional(),
  })
  .superRefine((value, context) => {
    if (value.mode === 'swap' && value.asOf !== undefined) {
      context.addIssue({
        code: 'custom',
        path: ['asOf'],
        message: 'a swap always rebuilds to the end of the log',
      });
    }
    if (value.mode === 'swap' && value.label !== undefined) {
      context.addIssue({
        code: 'custom',
        path: ['label'],
        message: 'a label names a time-travel view (mode inspect)',
      });
    }
  });

const rebuildId = z.string().regex(/^[0-9]{14}_[0-9a-f]{6}$/, 'must be a rebuild id');
const inspectionSchema = z.string().regex(/^asof_[a-z0-9_]{1,40}$/, 'must be a time-travel view (asof_…)');

const pageQuery = z.strictObject({
  limit: z.coerce.number({ error: 'must be a number' }).int('must be an integer').min(1).max(500).optional(),
  offset: z.coerce
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(0)
    .max(1_000_000)
    .optional(),
});

const deadLettersQuery = z.strictObject({
  status: z
    .enum(DEAD_LETTER_STATUSES, { error: `must be one of ${DEAD_LETTER_STATUSES.join(', ')}` })
    .optional(),
  consumer: z
    .string()
    .regex(/^[A-Za-z0-9_:-]{1,200}$/, 'must be a consumer name (letters, digits, _ : -)')
    .optional(),
  before: z.coerce.number({ error: 'must be a dead letter id' }).int('must be an integer').min(1).optional(),
  limit: z.coerce.number({ error: 'must be a number' }).int('must be an integer').min(1).max(500).optional(),
});

const deadLetterId = z.string().regex(/^[1-9][0-9]{0,17}$/, 'must be a dead letter id');
const dismissBody = z.strictObject({
  reason: label(200),
  /** `message`: every waiting dead letter of the same message (one per consumer), not only this one. */
  scope: z.enum(['letter', 'message'], { error: 'must be "letter" or "message"' }).optional(),
});

/**
 * Admin replay and repair: rebuild projections (swap, or time travel into a named view) through the
 * projector, read time-travel views, list and retry dead letters.
 */
@Controller('admin')
export class AdminController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(DeadLetters) private readonly deadLetters: DeadLetters,
  ) {}

  /** Starts a rebuild of one projection (or `all`); poll `GET admin/projections/rebuilds/{id}` for progress. */
  @Post('projections/:name/rebuild')
  @HttpCode(202)
  @Auth('admin')
  async rebuild(
    @Param('name') name: string,
    @Body() raw: unknown,
    @CurrentPrincipal() principal: Principal,
  ): Promise<RebuildStatus> {
    const projection = parseOrThrow(z.object({ name: projectionName }), { name }).name;
    const body = parseOrThrow(rebuildBody, raw ?? {});
    const mode = body.mode ?? (body.asOf !== undefined || body.label !== undefined ? 'inspect' : 'swap');
    if (body.label !== undefined) {
      if (await schemaExists(this.dataSource, `asof_${body.label}`)) {
        throw new DomainError(
          'conflict',
          `a time-travel view asof_${body.label} exists; drop it or pick another label`,
          'label',
        );
      }
    }
    return this.commands.execute<RebuildStatus>(
      projectorCommands.rebuild,
      {
        projections: [projection],
        mode,
        ...(body.asOf ? { asOf: body.asOf } : {}),
        ...(body.label ? { label: body.label } : {}),
      },
      { actor: actorOf(principal) },
    );
  }

  @Get('projections/rebuilds')
  @Auth('admin')
  async rebuilds(@CurrentPrincipal() principal: Principal): Promise<{ rebuilds: RebuildStatus[] }> {
    const rebuilds = await this.commands.execute<RebuildStatus[]>(
      projectorCommands.rebuilds,
      {},
      {
        actor: actorOf(principal),
      },
    );
    return { rebuilds };
  }

  /** A rebuild's progress: phase, sequence of target, events/s, ETA, and the verification's differences. */
  @Get('projections/rebuilds/:id')
  @Auth('admin')
  async rebuildStatus(
    @Param('id') id: string,
    @CurrentPrincipal() principal: Principal,
  ): Promise<RebuildStatus> {
    const checked = parseOrThrow(z.object({ id: rebuildId }), { id }).id;
    return this.commands.execute<RebuildStatus>(
      projectorCommands.rebuildStatus,
      { id: checked },
      {
        actor: actorOf(principal),
      },
    );
  }

  @Get('projections/status')
  @Auth('admin')
  status(@CurrentPrincipal() principal: Principal): Promise<unknown> {
    return this.commands.execute(projectorCommands.status, {}, { actor: actorOf(principal) });
  }

  /** Time-travel views and rebuilds in progress, with the sequence each projection in them reached. */
  @Get('projections/schemas')
  @Auth('admin')
  async schemas(@CurrentPrincipal() principal: Principal): Promise<{ schemas: unknown[] }> {
    const schemas = await this.commands.execute<unknown[]>(
      projectorCommands.schemas,
      {},
      {
        actor: actorOf(principal),
      },
    );
    return { schemas };
  }

  @Delete('projections/schemas/:schema')
  @Auth('admin')
  async dropSchema(
    @Param('schema') schema: string,
    @CurrentPrincipal() principal: Principal,
  ): Promise<unknown> {
    const checked = parseOrThrow(z.object({ schema: inspectionSchema }), { schema }).schema;
    await viewTable(this.dataSource, checked, 'projection_checkpoints');
    return this.commands.execute(
      projectorCommands.dropSchema,
      { schema: checked },
      { actor: actorOf(principal) },
    );
  }

  /** The routes of a time-travel view, with the same filters as `GET /routes`. */
  @Get('projections/schemas/:schema/routes')
  @Auth('admin')
  async viewRoutes(
    @Param('schema') schema: string,
    @Query() query: unknown,
  ): Promise<RouteListResult & { schema: string; asOfSequence: number }> {
    const checked = parseOrThrow(z.object({ schema: inspectionSchema }), { schema }).schema;
    const filters = parseOrThrow(listRoutesQuery, query);
    const asOfSequence = await viewTable(this.dataSource, checked, 'routes');
    return { schema: checked, asOfSequence, ...(await queryRoutes(this.dataSource, filters, checked)) };
  }

  @Get('projections/schemas/:schema/agents')
  @Auth('admin')
  async viewAgents(@Param('schema') schema: string, @Query() query: unknown) {
    const checked = parseOrThrow(z.object({ schema: inspectionSchema }), { schema }).schema;
    const page = parseOrThrow(pageQuery, query);
    const asOfSequence = await viewTable(this.dataSource, checked, 'agents');
    const agents = await queryAgents(
      this.dataSource,
      { limit: page.limit ?? 100, offset: page.offset ?? 0 },
      checked,
    );
    return { schema: checked, asOfSequence, agents };
  }

  @Get('projections/schemas/:schema/hostnames')
  @Auth('admin')
  async viewHostnames(@Param('schema') schema: string, @Query() query: unknown) {
    const checked = parseOrThrow(z.object({ schema: inspectionSchema }), { schema }).schema;
    const page = parseOrThrow(pageQuery, query);
    const asOfSequence = await viewTable(this.dataSource, checked, 'hostnames');
    const hostnames = await queryHostnames(
      this.dataSource,
      { limit: page.limit ?? 100, offset: page.offset ?? 0 },
      checked,
    );
    return { schema: checked, asOfSequence, hostnames };
  }

  @Get('dead-letters')
  @Auth('admin')
  listDeadLetters(@Query() query: unknown) {
    const filters = parseOrThrow(deadLettersQuery, query);
    return this.deadLetters.list({ ...filters, limit: filters.limit ?? 100 });
  }

  /** Dead letters grouped by message: one bad message is a letter per consumer that met it. */
  @Get('dead-letters/messages')
  @Auth('admin')
  listDeadLetterMessages(@Query() query: unknown) {
    const { before, ...filters } = parseOrThrow(deadLettersQuery, query);
    return this.deadLetters.messages({ ...filters, beforeSequence: before, limit: filters.limit ?? 50 });
  }

  /** Dismisses a dead letter (or all of its message's, `scope: "message"`): audited, with a reason. */
  @Post('dead-letters/:id/dismiss')
  @HttpCode(200)
  @Auth('admin')
  dismissDeadLetter(
    @Param('id') id: string,
    @Body() raw: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<DismissOutcome> {
    const checked = parseOrThrow(z.object({ id: deadLetterId }), { id }).id;
    const body = parseOrThrow(dismissBody, raw ?? {});
    return this.deadLetters.dismiss(
      checked,
      { scope: body.scope ?? 'letter', reason: body.reason },
      actorOf(principal),
      commandIdOf(key),
    );
  }

  @Get('dead-letters/:id')
  @Auth('admin')
  getDeadLetter(@Param('id') id: string): Promise<DeadLetterView> {
    return this.deadLetters.get(parseOrThrow(z.object({ id: deadLetterId }), { id }).id);
  }

  /** Retries a dead letter after a fix (see DeadLetters.retry): 200 when settled, 202 while a rebuild runs. */
  @Post('dead-letters/:id/retry')
  @Auth('admin')
  async retryDeadLetter(
    @Param('id') id: string,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<RetryOutcome> {
    const checked = parseOrThrow(z.object({ id: deadLetterId }), { id }).id;
    const outcome = await this.deadLetters.retry(checked, actorOf(principal));
    response.status(outcome.outcome === 'rebuilding' ? 202 : 200);
    return outcome;
  }
}
