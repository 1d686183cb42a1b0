import { Controller, Inject } from '@nestjs/common';
import { Ctx, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import {
  getRoutePayload,
  removeRoutePayload,
  requestRoutePayload,
  routingCommands,
  updateRoutePayload,
  type StoredEvent,
} from '#contracts';
import { JetStreamEventContext, OnEvent } from '#eventstore';
import { handleCommand } from '#messaging';
import { LOGGER, type Logger } from '#platform';
import { RoutingCommands } from './routing.commands.js';

/** Commands from the API over NATS request/reply (`cmd.routing.*`, queue group `routing`). */
@Controller()
export class RoutingController {
  constructor(
    @Inject(RoutingCommands) private readonly commands: RoutingCommands,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @MessagePattern(routingCommands.request, Transport.NATS)
  request(@Payload() raw: unknown) {
    return handleCommand(requestRoutePayload, raw, this.logger, (command) => this.commands.request(command));
  }

  @MessagePattern(routingCommands.update, Transport.NATS)
  update(@Payload() raw: unknown) {
    return handleCommand(updateRoutePayload, raw, this.logger, (command) => this.commands.update(command));
  }

  @MessagePattern(routingCommands.remove, Transport.NATS)
  remove(@Payload() raw: unknown) {
    return handleCommand(removeRoutePayload, raw, this.logger, (command) => this.commands.remove(command));
  }

  @MessagePattern(routingCommands.get, Transport.NATS)
  get(@Payload() raw: unknown) {
    return handleCommand(getRoutePayload, raw, this.logger, (command) =>
      this.commands.get(command.actor, command.payload.routeId),
    );
  }
}

/**
 * Events routing reacts to, from its durable consumer on `events.agent.*` (at least once: idempotent).
 * `@OnEvent` binds them to the JetStream event transport only: Nest's NATS command server skips handlers
 * of another transport, so no plain NATS message can pose as an event.
 */
@Controller()
export class RoutingEventHandlers {
  constructor(@Inject(RoutingCommands) private readonly commands: RoutingCommands) {}

  @OnEvent('AgentDeregistered')
  async agentDeregistered(@Payload() event: StoredEvent, @Ctx() context: unknown): Promise<void> {
    if (!(context instanceof JetStreamEventContext)) return;
    await this.commands.removeRoutesOfAgent(event);
  }
}
