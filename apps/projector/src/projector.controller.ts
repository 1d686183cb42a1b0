import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  dismissDeadLettersPayload,
  dropSchemaPayload,
  noPayload,
  projectorCommands,
  quarantinePayload,
  rebuildPayload,
  rebuildStatusPayload,
} from '#contracts';
import { handleCommand } from '#messaging';
import { LOGGER, type Logger } from '#platform';
import { ProjectorCommands } from './projector.commands.js';

/** The projector's admin commands over NATS request/reply (`cmd.projector.*`, queue group `projector`). */
@Controller()
export class ProjectorController {
  constructor(
    @Inject(ProjectorCommands) private readonly commands: ProjectorCommands,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @MessagePattern(projectorCommands.rebuild)
  rebuild(@Payload() raw: unknown) {
    return handleCommand(rebuildPayload, raw, this.logger, (command) =>
      this.commands.startRebuild(command.payload),
    );
  }

  @MessagePattern(projectorCommands.rebuildStatus)
  rebuildStatus(@Payload() raw: unknown) {
    return handleCommand(rebuildStatusPayload, raw, this.logger, async (command) =>
      this.commands.rebuild(command.payload.id),
    );
  }

  @MessagePattern(projectorCommands.rebuilds)
  rebuilds(@Payload() raw: unknown) {
    return handleCommand(noPayload, raw, this.logger, async () => this.commands.listRebuilds());
  }

  @MessagePattern(projectorCommands.schemas)
  schemas(@Payload() raw: unknown) {
    return handleCommand(noPayload, raw, this.logger, () => this.commands.schemas());
  }

  @MessagePattern(projectorCommands.dropSchema)
  dropSchema(@Payload() raw: unknown) {
    return handleCommand(dropSchemaPayload, raw, this.logger, async (command) => {
      await this.commands.dropInspection(command.payload.schema);
      return { dropped: command.payload.schema };
    });
  }

  @MessagePattern(projectorCommands.quarantine)
  quarantine(@Payload() raw: unknown) {
    return handleCommand(quarantinePayload, raw, this.logger, (command) =>
      this.commands.quarantine(command.payload, {
        actor: command.actor,
        correlationId: command.correlationId,
        causationId: command.commandId,
      }),
    );
  }

  @MessagePattern(projectorCommands.dismissDeadLetters)
  dismissDeadLetters(@Payload() raw: unknown) {
    return handleCommand(dismissDeadLettersPayload, raw, this.logger, (command) =>
      this.commands.dismissDeadLetters(
        command.payload,
        { actor: command.actor, correlationId: command.correlationId, causationId: command.commandId },
        command.commandId,
      ),
    );
  }

  @MessagePattern(projectorCommands.status)
  status(@Payload() raw: unknown) {
    return handleCommand(noPayload, raw, this.logger, () => this.commands.state());
  }
}
