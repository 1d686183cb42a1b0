import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { DataSource } from 'typeorm';
import { CommandBus } from '#messaging';
import { DeadLetterAdmin } from '#persistence';
import { LOGGER, type Logger } from '#platform';
import { API_NATS } from './event-log.js';

/** The API's dead letters (DeadLetterAdmin, shared with the CLI), with Nest's wiring. */
@Injectable()
export class DeadLetters extends DeadLetterAdmin implements OnApplicationShutdown {
  constructor(
    @Inject(DataSource) dataSource: DataSource,
    @Inject(CommandBus) commands: CommandBus,
    @Inject(API_NATS) nats: NatsConnection,
    @Inject(LOGGER) logger: Logger,
  ) {
    super(dataSource, commands, nats, logger);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop();
  }
}
