import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { z } from 'zod';
import { isoTimestamp, label, projectorCommands } from '#contracts';
import { handleCommand } from '#messaging';
import { LOGGER, type Logger } from '#platform';
import { ProjectorService } from './projector.service.js';

const projectionName = z.string().regex(/^[a-z_]{1,63}$/, 'must be a projection name or "all"');

export const rebuildRequestSchema = z
  .strictObject({
    projections: z.array(projectionName).min(1).max(32),
    mode: z.enum(['swap', 'inspect']),
    asOf: z
      .strictObject({ sequence: z.number().int().min(0).optional(), time: isoTimestamp.optional() })
      .refine((value) => (value.sequence === undefined) !== (value.time === undefined), {
        message: 'give either sequence or time',
      })
      .optional(),
    label: z
      .string()
      .regex(/^[a-z0-9_]{1,40}$/, 'must be 1-40 characters of a-z, 0-9 and _')
      .optional(),
  })
  .refine((value) => value.mode === 'inspect' || (value.asOf === undefined && value.label === undefined), {
    message: 'asOf and label apply to inspect rebuilds only; a swap always rebuilds to the end of the log',
    path: ['asOf'],
  });

export const quarantineRequestSchema = z.strictObject({
  sequence: z.number({ error: 'must be a number' }).int('must be an integer').min(1, 'must be at least 1'),
  reason: label(200),
});

export const dismissDeadLettersSchema = z.strictObject({
  id: z.string().regex(/^[1-9][0-9]{0,17}$/, 'must be a dead letter id'),
  scope: z.enum(['letter', 'message'], { error: 'must be "letter" or "message"' }),
  reason: label(200),
});

/** Admin commands of the projector: rebuilds, time travel, status. */
@Controller()
export class ProjectorCommands {
  constructor(
    private readonly projector: ProjectorService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @MessagePattern(projectorCommands.rebuild)
  rebuild(@Payload() raw: unknown) {
    return handleCommand(rebuildRequestSchema, raw, this.logger, (command) =>
      this.projector.startRebuild(command.payload),
    );
  }

  @MessagePattern(projectorCommands.rebuildStatus)
  rebuildStatus(@Payload() raw: unknown) {
    return handleCommand(
      z.strictObject({ id: z.string().min(1).max(64) }),
      raw,
      this.logger,
      async (command) => this.projector.rebuild(command.payload.id),
    );
  }

  @MessagePattern(projectorCommands.rebuilds)
  rebuilds(@Payload() raw: unknown) {
    return handleCommand(z.strictObject({}), raw, this.logger, async () => this.projector.listRebuilds());
  }

  @MessagePattern(projectorCommands.schemas)
  schemas(@Payload() raw: unknown) {
    return handleCommand(z.strictObject({}), raw, this.logger, () => this.projector.schemas());
  }

  @MessagePattern(projectorCommands.dropSchema)
  dropSchema(@Payload() raw: unknown) {
    return handleCommand(
      z.strictObject({
        schema: z.string().regex(/^asof_[a-z0-9_]+$/, 'must be a time-travel schema (asof_…)'),
      }),
      raw,
      this.logger,
      async (command) => {
        await this.projector.dropInspection(command.payload.schema);
        return { dropped: command.payload.schema };
      },
    );
  }

  @MessagePattern(projectorCommands.quarantine)
  quarantine(@Payload() raw: unknown) {
    return handleCommand(quarantineRequestSchema, raw, this.logger, (command) =>
      this.projector.quarantine(command.payload, {
        actor: command.actor,
        correlationId: command.correlationId,
        causationId: command.commandId,
      }),
    );
  }

  @MessagePattern(projectorCommands.dismissDeadLetters)
  dismissDeadLetters(@Payload() raw: unknown) {
    return handleCommand(dismissDeadLettersSchema, raw, this.logger, (command) =>
      this.projector.dismissDeadLetters(
        command.payload,
        { actor: command.actor, correlationId: command.correlationId, causationId: command.commandId },
        command.commandId,
      ),
    );
  }

  @MessagePattern(projectorCommands.status)
  status(@Payload() raw: unknown) {
    return handleCommand(z.strictObject({}), raw, this.logger, () => this.projector.state());
  }
}
