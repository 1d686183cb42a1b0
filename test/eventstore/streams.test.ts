import { z } from 'zod';
import { jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineEvent, EventRegistry, UndecodableEventError } from '#contracts';
import { EventStore, provisionAppendOnlyStream, UnsafeStreamError } from '#eventstore';
import { startNats, type TestNats } from '../harness/nats.js';
import { CounterIncremented, openTestStore, testContext } from './fixtures.js';

let nats: TestNats;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  nats = await startNats();
  nc = await nats.connect();
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  await nc?.close();
  await nats?.destroy();
});

test('the event stream refuses delete and purge through the JetStream API', async () => {
  const { store } = await openTestStore(nc);
  const appended = await store.append(
    { type: 'agent', id: 'kept' },
    [{ type: 'CounterIncremented', data: { by: 1 } }],
    {
      context: testContext,
    },
  );
  await expect(jsm.streams.deleteMessage('EVENTS', appended.lastSequence)).rejects.toThrow(/delete/i);
  await expect(jsm.streams.deleteMessage('EVENTS', appended.lastSequence, false)).rejects.toThrow(/delete/i);
  await expect(jsm.streams.purge('EVENTS')).rejects.toThrow(/purge/i);
  await expect(jsm.streams.purge('EVENTS', { filter: 'events.agent.kept' })).rejects.toThrow(/purge/i);
  expect((await store.readAggregate('agent', 'kept')).events).toHaveLength(1);
});

test('provisioning is idempotent', async () => {
  const options = { name: 'EVENTS', subjects: ['events.>'], replicas: 1, duplicateWindowMs: 60_000 };
  const again = await provisionAppendOnlyStream(jsm, options);
  expect(again.created).toBe(false);
  expect(again.info.config.deny_delete).toBe(true);
  expect(again.info.config.deny_purge).toBe(true);
  expect(again.info.config.storage).toBe(StorageType.File);
});

test('a service refuses to start against a stream whose configuration could lose events', async () => {
  await jsm.streams.add({
    name: 'UNSAFE',
    subjects: ['unsafe.>'],
    storage: StorageType.Memory,
    max_age: 3_600_000_000_000,
  });
  const error = await provisionAppendOnlyStream(jsm, {
    name: 'UNSAFE',
    subjects: ['unsafe.>'],
    replicas: 1,
    duplicateWindowMs: 60_000,
  }).catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(UnsafeStreamError);
  const problems = (error as UnsafeStreamError).problems.join('\n');
  expect(problems).toMatch(/storage is memory/);
  expect(problems).toMatch(/deny_delete is off/);
  expect(problems).toMatch(/deny_purge is off/);
  expect(problems).toMatch(/max_age/);
  // Nothing was changed on the unsafe stream.
  expect((await jsm.streams.info('UNSAFE')).config.deny_delete).toBe(false);
});

test('an event stored at schema version 1 is read as version 2 through its registered upcaster', async () => {
  const { store: oldStore } = await openTestStore(nc);
  const stored = await oldStore.append(
    { type: 'agent', id: 'upcast' },
    [{ type: 'CounterIncremented', data: { by: 3, note: 'old' } }],
    {
      context: testContext,
    },
  );
  expect(stored.events[0]!.schemaVersion).toBe(1);

  const CounterIncrementedV2 = defineEvent({
    type: 'CounterIncremented',
    aggregate: 'agent',
    version: 2,
    schema: z.strictObject({
      amount: z.number().int().positive(),
      unit: z.enum(['count']),
      comment: z.string().optional(),
    }),
    upcasters: {
      1: (data) => ({
        amount: (data as { by: number }).by,
        unit: 'count',
        comment: (data as { note?: string }).note,
      }),
    },
  });
  const newStore = new EventStore(nc, jsm, {
    registry: new EventRegistry([CounterIncrementedV2]),
  });
  const [event] = (await newStore.readAggregate('agent', 'upcast')).events;
  expect(event!.schemaVersion).toBe(2);
  expect(event!.data).toEqual({ amount: 3, unit: 'count', comment: 'old' });
  expect(event!.sequence).toBe(stored.lastSequence);

  // New events are written at version 2 and the old code refuses to read them instead of misreading them.
  const written = await newStore.append(
    { type: 'agent', id: 'upcast' },
    [{ type: 'CounterIncremented', data: { amount: 1, unit: 'count' } }],
    {
      context: testContext,
    },
  );
  expect(written.events[0]!.schemaVersion).toBe(2);
  const error = await oldStore.getBySequence(written.lastSequence).catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(UndecodableEventError);
  expect((error as Error).message).toMatch(/newer than this code/);
});

test('defineEvent refuses a version without an upcaster path', () => {
  expect(() =>
    defineEvent({ type: 'Broken', aggregate: 'agent', version: 2, schema: CounterIncremented.schema }),
  ).toThrow(/no upcaster from v1/);
});
