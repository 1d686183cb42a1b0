import { Controller, Module } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import type { INestMicroservice } from '@nestjs/common';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { StoredEvent } from '#contracts';
import { OnEvent, type EventStore } from '#eventstore';
import { createLogger } from '#platform';
import { startNats, type TestNats } from '../harness/nats.js';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js';
import { sleep, waitFor } from '../harness/processes.js';
import { openTestStore, startEventHandlers, testContext } from './fixtures.js';

/**
 * Issue 14: on the nats-server this project runs (2.9.10), a dead-lettered message must stay dead. A
 * `+TERM` with a reason is not understood there and counts as no answer, so the message came back every
 * ack wait. Held here over several ack-wait periods: a poison event reaches the handler exactly
 * max_deliver times, an undecodable one never, each is recorded once, and poison filling
 * max_ack_pending does not stop the events behind it.
 */
const ACK_WAIT_MS = 1_000;
const MAX_DELIVER = 2;
const handled: { note: string; delivery: number }[] = [];

@Controller()
class PoisonHandlers {
  @OnEvent('CounterIncremented')
  async onIncrement(@Payload() event: StoredEvent): Promise<void> {
    const note = (event.data as { note?: string }).note ?? '';
    handled.push({ note, delivery: handled.filter((entry) => entry.note === note).length + 1 });
    if (note.startsWith('poison')) throw new Error('this event always fails');
  }
}

@Module({ controllers: [PoisonHandlers] })
class PoisonModule {}

let nats: TestNats;
let nc: NatsConnection;
let store: EventStore;
let db: TestDatabase;
let app: INestMicroservice;

beforeAll(async () => {
  nats = await startNats();
  nc = await nats.connect();
  ({ store } = await openTestStore(nc));
  db = await createTestDatabase('poison');
  app = await startEventHandlers(
    PoisonModule,
    { connection: nc, store, db },
    {
      durable: 'poison-service',
      logger: createLogger('test', { level: 'error', write: () => undefined }),
      maxDeliver: MAX_DELIVER,
      backoffMs: [50],
      ackWaitMs: ACK_WAIT_MS,
      // Smaller than the number of poison events below.
      maxAckPending: 2,
    },
  );
});
afterAll(async () => {
  await app?.close();
  await nc?.close();
  await nats?.destroy();
  await db?.drop();
});

const append = (note: string) =>
  store.append(
    { type: 'agent', id: `poison-${note}` },
    [{ type: 'CounterIncremented', data: { by: 1, note } }],
    {
      context: testContext,
    },
  );

test('poison stays dead over many ack waits, and never stalls the consumer', async () => {
  const poisons = [];
  for (let index = 0; index < 4; index++) poisons.push(await append(`poison-${index}`));
  const garbage = await jetstream(nc).publish('events.agent.garbage', new TextEncoder().encode('{"no":1}'));
  const after = await append('after');

  await waitFor(
    'the event behind the poison',
    () => handled.some((entry) => entry.note === 'after') || undefined,
    {
      timeoutMs: 20_000,
    },
  );
  // Five ack-wait periods: anything not really terminated would come back in them.
  await sleep(5 * ACK_WAIT_MS + 500);

  for (let index = 0; index < 4; index++) {
    expect(handled.filter((entry) => entry.note === `poison-${index}`)).toHaveLength(MAX_DELIVER);
  }
  expect(handled.filter((entry) => entry.note === 'after')).toHaveLength(1);
  const letters: { sequence: number; deliveries: number }[] = await db.dataSource.query(
    'SELECT sequence::int AS sequence, deliveries FROM dead_letters ORDER BY sequence',
  );
  expect(letters).toEqual([
    ...poisons.map((poison) => ({ sequence: poison.lastSequence, deliveries: MAX_DELIVER })),
    { sequence: garbage.seq, deliveries: 1 },
  ]);
  const info = await (await jetstreamManager(nc)).consumers.info(store.stream, 'poison-service');
  expect({
    ackPending: info.num_ack_pending,
    pending: info.num_pending,
    delivered: info.delivered.stream_seq,
  }).toEqual({ ackPending: 0, pending: 0, delivered: after.lastSequence });
});
