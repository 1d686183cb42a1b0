import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  agentCredentialsPayload,
  deregisterPayload,
  enrollPayload,
  issueEnrollmentTokenPayload,
  registrationCommands,
} from '#contracts';
import { handleCommand } from '#messaging';
import { LOGGER, type Logger } from '#platform';
import { RegistrationCommands } from './registration.commands.js';

/** Commands from the API over NATS request/reply (`cmd.registration.*`, queue group `registration`). */
@Controller()
export class RegistrationController {
  constructor(
    @Inject(RegistrationCommands) private readonly commands: RegistrationCommands,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @MessagePattern(registrationCommands.issueEnrollmentToken)
  issueEnrollmentToken(@Payload() raw: unknown) {
    return handleCommand(issueEnrollmentTokenPayload, raw, this.logger, (command) =>
      this.commands.issueEnrollmentToken(command),
    );
  }

  @MessagePattern(registrationCommands.enroll)
  enroll(@Payload() raw: unknown) {
    return handleCommand(enrollPayload, raw, this.logger, (command) => this.commands.enroll(command));
  }

  @MessagePattern(registrationCommands.deregister)
  deregister(@Payload() raw: unknown) {
    return handleCommand(deregisterPayload, raw, this.logger, (command) => this.commands.deregister(command));
  }

  @MessagePattern(registrationCommands.agentCredentials)
  agentCredentials(@Payload() raw: unknown) {
    return handleCommand(agentCredentialsPayload, raw, this.logger, (command) =>
      this.commands.agentCredentials(command),
    );
  }
}
