import type { NatsConnection } from '@nats-io/transport-node';
import { ValidationError } from '#contracts';
import { ConcurrencyError, type EventStore } from '#eventstore';
import { startNats, type TestNats } from '../harness/nats.js';
import { openTestStore, testContext } from './fixtures.js';
import { sleep } from '../harness/processes.js';

let nats: TestNats;
let nc: NatsConnection;
let store: EventStore;

beforeAll(async () => {
  nats = await startNats();
  nc = await nats.connect();
  ({ store } = await openTestStore(nc));
});
afterAll(async () => {
  await nc?.close();
  await nats?.destroy();
});

const increment = (by: number) => ({ type: 'CounterIncremented', data: { by } });

test('expected sequence 0 on a fresh subject succeeds once and only once', async () => {
  const first = await store.append({ type: 'agent', id: 'fresh' }, [increment(1)], {
    context: testContext,
    expectedSequence: 0,
  });
  expect(first.outcome).toBe('appended');
  await expect(
    store.append({ type: 'agent', id: 'fresh' }, [increment(1)], {
      context: testContext,
      expectedSequence: 0,
    }),
  ).rejects.toBeInstanceOf(ConcurrencyError);
  const history = await store.readAggregate('agent', 'fresh');
  expect(history.events).toHaveLength(1);
  expect(history.lastSequence).toBe(first.lastSequence);
});

test('two concurrent appends with the same expected sequence: exactly one wins', async () => {
  const base = await store.append({ type: 'agent', id: 'race' }, [increment(1)], {
    context: testContext,
    expectedSequence: 0,
  });
  const attempts = await Promise.allSettled(
    Array.from({ length: 10 }, () =>
      store.append({ type: 'agent', id: 'race' }, [increment(2)], {
        context: testContext,
        expectedSequence: base.lastSequence,
      }),
    ),
  );
  const won = attempts.filter((attempt) => attempt.status === 'fulfilled');
  const lost = attempts.filter((attempt) => attempt.status === 'rejected');
  expect(won).toHaveLength(1);
  expect(lost).toHaveLength(9);
  for (const attempt of lost)
    expect((attempt as PromiseRejectedResult).reason).toBeInstanceOf(ConcurrencyError);
  expect((await store.readAggregate('agent', 'race')).events.map((event) => event.data)).toEqual([
    { by: 1 },
    { by: 2 },
  ]);
});

test('the same command id appended twice stores one event and says so', async () => {
  const first = await store.append({ type: 'agent', id: 'dedupe' }, [increment(5)], {
    context: testContext,
    expectedSequence: 0,
    commandId: 'command-1',
  });
  const retry = await store.append({ type: 'agent', id: 'dedupe' }, [increment(5)], {
    context: testContext,
    expectedSequence: 0,
    commandId: 'command-1',
  });
  expect(retry.outcome).toBe('duplicate');
  expect(retry.events[0]!.id).toBe(first.events[0]!.id);
  expect(retry.lastSequence).toBe(first.lastSequence);
  expect((await store.readAggregate('agent', 'dedupe')).events).toHaveLength(1);
});

test('a retried multi-event command completes a partial append without duplicating', async () => {
  const partial = await store.append({ type: 'agent', id: 'multi' }, [increment(1)], {
    context: testContext,
    expectedSequence: 0,
    commandId: 'command-2#0',
  });
  const retried = await store.append({ type: 'agent', id: 'multi' }, [increment(1), increment(2)], {
    context: testContext,
    expectedSequence: 0,
    commandId: 'command-2',
  });
  expect(retried.outcome).toBe('appended');
  expect(retried.events[0]!.sequence).toBe(partial.lastSequence);
  expect((await store.readAggregate('agent', 'multi')).events.map((event) => event.data)).toEqual([
    { by: 1 },
    { by: 2 },
  ]);
});

test('malformed payloads are refused at append with an error naming the field, and append nothing', async () => {
  const before = await store.lastSequence();
  const error = await store
    .append(
      { type: 'agent', id: 'bad' },
      [increment(1), { type: 'CounterIncremented', data: { by: 'two' } }],
      {
        context: testContext,
      },
    )
    .catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(ValidationError);
  expect((error as ValidationError).field).toBe('data.by');
  const extra = await store
    .append({ type: 'agent', id: 'bad' }, [{ type: 'CounterIncremented', data: { by: 1, admin: true } }], {
      context: testContext,
    })
    .catch((caught: unknown) => caught);
  expect((extra as ValidationError).field).toBe('data.admin');
  const unknown = await store
    .append({ type: 'agent', id: 'bad' }, [{ type: 'NoSuchEvent', data: {} }], { context: testContext })
    .catch((caught: unknown) => caught);
  expect((unknown as ValidationError).field).toBe('type');
  expect(await store.lastSequence()).toBe(before);
});

test('reads the whole log from a sequence or a time, in order', async () => {
  const start = new Date();
  await sleep(20);
  const appended = [];
  for (let index = 0; index < 25; index++) {
    appended.push(
      await store.append({ type: 'agent', id: `log-${index % 3}` }, [increment(index + 1)], {
        context: testContext,
      }),
    );
  }
  const fromTime = [];
  for await (const event of store.readLog({ fromTime: start })) fromTime.push(event.sequence);
  expect(fromTime).toEqual(appended.map((result) => result.lastSequence));

  const from = appended[10]!.lastSequence;
  const fromSequence = [];
  for await (const event of store.readLog({ fromSequence: from, bufferSize: 4 }))
    fromSequence.push(event.sequence);
  expect(fromSequence).toEqual(appended.slice(10).map((result) => result.lastSequence));

  const beyond = [];
  for await (const event of store.readLog({ fromSequence: (await store.lastSequence()) + 1 }))
    beyond.push(event);
  expect(beyond).toEqual([]);
  const future = [];
  for await (const event of store.readLog({ fromTime: new Date(Date.now() + 60_000) })) future.push(event);
  expect(future).toEqual([]);
});
