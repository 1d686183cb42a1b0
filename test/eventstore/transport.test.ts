import { Controller, Module } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { INestMicroservice } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { StoredEvent } from '#contracts';
import { deadLetterRetrySubject, JetStreamEventContext, OnEvent, type EventStore } from '#eventstore';
import { startNats, type TestNats } from '../harness/nats.js';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js';
import { sleep, waitFor } from '../harness/processes.js';
import { openTestStore, startEventHandlers, testContext } from './fixtures.js';

/** What the handlers saw, by event note: deliveries per note, in order of completion. */
const seen: { note: string; delivery: number }[] = [];
const failuresLeft = new Map<string, number>();
let poisonFixed = false;

@Controller()
class CounterHandlers {
  @OnEvent('CounterIncremented')
  async onIncrement(@Payload() event: StoredEvent, @Ctx() context: JetStreamEventContext): Promise<void> {
    const note = (event.data as { note?: string }).note ?? '';
    seen.push({ note, delivery: context.deliveryCount });
    if (note === 'poison' && !poisonFixed) throw new Error('this event always fails');
    const left = failuresLeft.get(note) ?? 0;
    if (left > 0) {
      failuresLeft.set(note, left - 1);
      throw new Error('transient failure');
    }
  }
}

@Module({ controllers: [CounterHandlers] })
class HandlersModule {}

let nats: TestNats;
let nc: NatsConnection;
let store: EventStore;
let db: TestDatabase;
let app: INestMicroservice;

beforeAll(async () => {
  nats = await startNats();
  nc = await nats.connect();
  ({ store } = await openTestStore(nc));
  db = await createTestDatabase('transport');
  app = await startEventHandlers(
    HandlersModule,
    { connection: nc, store, db },
    {
      durable: 'counter-service',
      maxDeliver: 3,
      backoffMs: [50, 100],
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
    { type: 'agent', id: `transport-${note}` },
    [{ type: 'CounterIncremented', data: { by: 1, note } }],
    {
      context: testContext,
    },
  );

test('a handler that throws is redelivered after a backoff and acked once it succeeds', async () => {
  failuresLeft.set('flaky', 2);
  await append('flaky');
  await waitFor(
    'three deliveries',
    () => seen.filter((entry) => entry.note === 'flaky').length === 3 || undefined,
  );
  expect(seen.filter((entry) => entry.note === 'flaky').map((entry) => entry.delivery)).toEqual([1, 2, 3]);
  // Acked: no fourth delivery comes.
  await sleep(400);
  expect(seen.filter((entry) => entry.note === 'flaky')).toHaveLength(3);
  expect(await db.dataSource.query('SELECT count(*)::int AS n FROM dead_letters')).toEqual([{ n: 0 }]);
});

test('one that always throws is dead-lettered after max_deliver, and later events are still handled', async () => {
  const poison = await append('poison');
  const later = await append('later');
  await waitFor('the later event', () => seen.some((entry) => entry.note === 'later') || undefined);
  const letters = await waitFor('a dead letter', async () => {
    const rows = await db.dataSource.query(
      'SELECT consumer, sequence::int AS sequence, deliveries, event_type, error, payload FROM dead_letters',
    );
    return rows.length > 0 ? rows : undefined;
  });
  expect(letters).toEqual([
    expect.objectContaining({
      consumer: 'counter-service',
      sequence: poison.lastSequence,
      deliveries: 3,
      event_type: 'CounterIncremented',
      error: 'this event always fails',
    }),
  ]);
  expect(JSON.parse(letters[0].payload).data).toEqual({ by: 1, note: 'poison' });
  expect(seen.filter((entry) => entry.note === 'poison').map((entry) => entry.delivery)).toEqual([1, 2, 3]);
  expect(later.lastSequence).toBeGreaterThan(poison.lastSequence);
});

test('a dead letter is retried on request after a fix, and marked resolved', async () => {
  const [letter] = await db.dataSource.query(
    "SELECT sequence::int AS sequence FROM dead_letters WHERE event_type = 'CounterIncremented'",
  );
  const ask = async () =>
    JSON.parse(
      new TextDecoder().decode(
        (
          await nc.request(
            deadLetterRetrySubject('counter-service'),
            JSON.stringify({ sequence: letter.sequence }),
          )
        ).data,
      ),
    );
  expect(await ask()).toEqual({ ok: false, error: 'this event always fails' });
  poisonFixed = true;
  expect(await ask()).toEqual({ ok: true });
  const [row] = await db.dataSource.query('SELECT status FROM dead_letters WHERE sequence = $1', [
    letter.sequence,
  ]);
  expect(row.status).toBe('resolved');
});

test('an event that cannot be decoded is dead-lettered at once without reaching a handler', async () => {
  const before = seen.length;
  const { jetstream } = await import('@nats-io/jetstream');
  const ack = await jetstream(nc).publish(
    'events.agent.garbage',
    new TextEncoder().encode('{"not":"an event"}'),
  );
  const letter = await waitFor('the undecodable dead letter', async () => {
    const rows = await db.dataSource.query(
      'SELECT deliveries, event_type, error FROM dead_letters WHERE sequence = $1',
      [ack.seq],
    );
    return rows[0];
  });
  expect(letter.deliveries).toBe(1);
  expect(letter.event_type).toBeNull();
  expect(letter.error).toMatch(/not an event envelope/);
  expect(seen.length).toBe(before);
});

test('a restarted service resumes from its durable consumer without handling acked events again', async () => {
  await app.close();
  const whileDown = await append('while-down');
  const before = seen.length;
  app = await startEventHandlers(
    HandlersModule,
    { connection: nc, store, db },
    {
      durable: 'counter-service',
      maxDeliver: 3,
      backoffMs: [50],
    },
  );
  await waitFor(
    'the event appended while down',
    () => seen.some((entry) => entry.note === 'while-down') || undefined,
  );
  await sleep(300);
  expect(seen.slice(before).map((entry) => entry.note)).toEqual(['while-down']);
  expect(whileDown.outcome).toBe('appended');
});
