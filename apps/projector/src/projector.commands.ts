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
import { ProjectorService } from './projector.service.js';

/** Admin commands of the projector: rebuilds, time travel, status. */
@Controller()
export class ProjectorCommands {
  constructor(
    private readonly projector: ProjectorService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @MessagePattern(projectorCommands.rebuild)
  rebuild(@Payload() raw: unknown) {
    return handleCommand(rebuildPayload, raw, this.logger, (command) =>
      this.projector.startRebuild(command.payload),
    );
  }

  @MessagePattern(projectorCommands.rebuildStatus)
  rebuildStatus(@Payload() raw: unknown) {
    return handleCommand(rebuildStatusPayload, raw, this.logger, async (command) =>
      this.projector.rebuild(command.payload.id),
    );
  }

  @MessagePattern(projectorCommands.rebuilds)
  rebuilds(@Payload() raw: unknown) {
    return handleCommand(noPayload, raw, this.logger, async () => this.projector.listRebuilds());
  }

  @MessagePattern(projectorCommands.schemas)
  schemas(@Payload() raw: unknown) {
    return handleCommand(noPayload, raw, this.logger, () => this.projector.schemas());
  }

  @MessagePattern(projectorCommands.dropSchema)
  dropSchema(@Payload() raw: unknown) {
    return handleCommand(dropSchemaPayload, raw, this.logger, async (command) => {
      await this.projector.dropInspection(command.payload.schema);
      return { dropped: command.payload.schema };
    });
  }

  @MessagePattern(projectorCommands.quarantine)
  quarantine(@Payload() raw: unknown) {
    return handleCommand(quarantinePayload, raw, this.logger, (command) =>
      this.projector.quarantine(command.payload, {
        actor: command.actor,
        correlationId: command.correlationId,
        causationId: command.commandId,
      }),
    );
  }

  @MessagePattern(projectorCommands.dismissDeadLetters)
  dismissDeadLetters(@Payload() raw: unknown) {
    return handleCommand(dismissDeadLettersPayload, raw, this.logger, (command) =>
      this.projector.dismissDeadLetters(
        command.payload,
        { actor: command.actor, correlationId: command.correlationId, causationId: command.commandId },
        command.commandId,
      ),
    );
  }

  @MessagePattern(projectorCommands.status)
  status(@Payload() raw: unknown) {
    return handleCommand(noPayload, raw, this.logger, () => this.projector.state());
  }
}
