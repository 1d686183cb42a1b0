import { Controller, Inject } from '@nestjs/common';
import { Ctx, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { z } from 'zod';
import {
  certificateCommands,
  issueCertificatePayload,
  revokeCertificatePayload,
  type DomainEvent,
  type StoredEvent,
} from '#contracts';
import { JetStreamEventContext, OnEvent } from '#eventstore';
import { handleCommand } from '#messaging';
import { LOGGER, type Logger } from '#platform';
import { Authority } from './authority.js';
import { CertificateCommands } from './certificates.commands.js';
import { CrlPublisher } from './crl.js';

const empty = z.strictObject({});

/** Commands from the API over NATS request/reply (`cmd.certificates.*`, queue group `certificates`). */
@Controller()
export class CertificatesController {
  constructor(
    @Inject(CertificateCommands) private readonly commands: CertificateCommands,
    @Inject(Authority) private readonly authority: Authority,
    @Inject(CrlPublisher) private readonly crl: CrlPublisher,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @MessagePattern(certificateCommands.issue, Transport.NATS)
  issue(@Payload() raw: unknown) {
    return handleCommand(issueCertificatePayload, raw, this.logger, (command) =>
      this.commands.issue(command),
    );
  }

  @MessagePattern(certificateCommands.revoke, Transport.NATS)
  revoke(@Payload() raw: unknown) {
    return handleCommand(revokeCertificatePayload, raw, this.logger, (command) =>
      this.commands.revoke(command),
    );
  }

  @MessagePattern(certificateCommands.ca, Transport.NATS)
  ca(@Payload() raw: unknown) {
    return handleCommand(empty, raw, this.logger, async () => this.authority.caResult());
  }

  @MessagePattern(certificateCommands.crl, Transport.NATS)
  crlPem(@Payload() raw: unknown) {
    return handleCommand(empty, raw, this.logger, () => this.crl.current());
  }
}

/** Events the service reacts to, from its durable consumer on `events.agent.*` (at least once: idempotent). */
@Controller()
export class CertificateEventHandlers {
  constructor(@Inject(CertificateCommands) private readonly commands: CertificateCommands) {}

  @OnEvent('AgentDeregistered')
  async agentDeregistered(@Payload() event: StoredEvent, @Ctx() context: unknown): Promise<void> {
    if (!(context instanceof JetStreamEventContext)) return;
    const { agentId } = (event as Extract<DomainEvent, { type: 'AgentDeregistered' }>).data;
    await this.commands.revokeAgent(agentId, event);
  }
}
