import { z } from 'zod';
import type { INestMicroservice, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineEvent, EventRegistry, type EventContext } from '#contracts';
import {
  EventStore,
  JetStreamEventsServer,
  provisionAppendOnlyStream,
  type JetStreamTransportOptions,
} from '#eventstore';
import { PostgresDeadLetters } from '#persistence';
import { createLogger } from '#platform';
import type { TestDatabase } from '../harness/postgres.js';

/** Test-only event types on the `agent` aggregate, so the store's rules are exercised without a domain. */
export const CounterIncremented = defineEvent({
  type: 'CounterIncremented',
  aggregate: 'agent',
  version: 1,
  schema: z.strictObject({ by: z.number().int().positive(), note: z.string().max(20).optional() }),
});

export const testContext: EventContext = {
  actor: { kind: 'system', id: 'test' },
  correlationId: 'test-correlation',
};

export async function openTestStore(nc: NatsConnection, registry = new EventRegistry([CounterIncremented])) {
  const jsm = await jetstreamManager(nc);
  await provisionAppendOnlyStream(jsm, {
    name: 'EVENTS',
    subjects: ['events.>'],
    replicas: 1,
    duplicateWindowMs: 60_000,
  });
  return { store: new EventStore(nc, jsm, { registry }), jsm };
}

/** A Nest app whose @OnEvent handlers are fed by the JetStream transport, dead letters in `db`; listening. */
export async function startEventHandlers(
  module: Type<unknown>,
  base: { connection: NatsConnection; store: EventStore; db: TestDatabase },
  options: Omit<JetStreamTransportOptions, 'connection' | 'store' | 'deadLetters' | 'logger'> &
    Partial<Pick<JetStreamTransportOptions, 'logger'>>,
): Promise<INestMicroservice> {
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(module, {
    logger: false,
    strategy: new JetStreamEventsServer({
      connection: base.connection,
      store: base.store,
      deadLetters: new PostgresDeadLetters(base.db.dataSource),
      logger: createLogger('test', { level: 'error' }),
      ...options,
    }),
  });
  await app.listen();
  return app;
}
