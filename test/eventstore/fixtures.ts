import { z } from 'zod';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineEvent, EventRegistry, type EventContext } from '#contracts';
import { EventStore, provisionAppendOnlyStream } from '#eventstore';

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
