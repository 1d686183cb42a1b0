import type { NatsConnection } from '@nats-io/transport-node';
import { createDomainRegistry, type StoredEvent } from '#contracts';
import type { EventStore } from '#eventstore';
import { ProjectionRunner, type Projection } from '#persistence';
import { createLogger } from '#platform';
import { eventLogProjection, eventStatsProjection } from '../../apps/projector/src/projections/index.js';
import { startNats, type TestNats } from '../harness/nats.js';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js';
import { openTestStore } from '../eventstore/fixtures.js';
import { adminContext, agentEnrolled, appendAgentHistory } from '../fixtures/events.js';

const logger = createLogger('test', { level: 'error' });
let nats: TestNats;
let nc: NatsConnection;
let store: EventStore;
let db: TestDatabase;

beforeEach(async () => {
  nats = await startNats();
  nc = await nats.connect();
  ({ store } = await openTestStore(nc, createDomainRegistry()));
  db = await createTestDatabase('runner');
});
afterEach(async () => {
  await nc?.close();
  await nats?.destroy();
  await db?.drop();
});

async function readAll(): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for await (const event of store.readLog()) events.push(event);
  return events;
}

async function statsRows() {
  return db.dataSource.query(
    'SELECT type, count::int AS count, last_sequence::int AS last_sequence FROM event_stats ORDER BY type',
  );
}

function foldStats(events: StoredEvent[]) {
  return [...eventStatsProjection.fold(events).values()]
    .map((row) => ({ type: row.type, count: row.count, last_sequence: row.last_sequence }))
    .sort((a, b) => a.type.localeCompare(b.type));
}

test('projections in small batches equal a fold of the log, with checkpoints at the end', async () => {
  const last = await appendAgentHistory(store, 40);
  const runner = new ProjectionRunner({
    dataSource: db.dataSource,
    store,
    projections: [eventLogProjection, eventStatsProjection],
    logger,
    batchSize: 7,
    untilSequence: last,
  });
  await runner.run();
  const events = await readAll();
  expect(await statsRows()).toEqual(foldStats(events));
  const logged = await db.dataSource.query(
    'SELECT sequence::int AS sequence FROM event_log ORDER BY sequence',
  );
  expect(logged.map((row: { sequence: number }) => row.sequence)).toEqual(
    events.map((event) => event.sequence),
  );
  const checkpoints = await db.dataSource.query(
    'SELECT projection, last_sequence::int AS s FROM projection_checkpoints ORDER BY 1',
  );
  expect(checkpoints).toEqual([
    { projection: 'event_log', s: last },
    { projection: 'event_stats', s: last },
  ]);

  // Running again from the checkpoints applies nothing twice.
  await new ProjectionRunner({
    dataSource: db.dataSource,
    store,
    projections: [eventStatsProjection],
    logger,
    untilSequence: last,
  }).run();
  expect(await statsRows()).toEqual(foldStats(events));
});

test('a poison event is retried, then dead-lettered, and later events are still projected', async () => {
  const attempts: number[] = [];
  const poisonSensitive: Projection = {
    name: 'poison_sensitive_stats',
    tables: ['event_stats'],
    eventTypes: eventStatsProjection.eventTypes,
    async apply(events, context) {
      for (const event of events) {
        if (
          event.type === 'AgentEnrolled' &&
          (event.data as { labels: Record<string, string> }).labels.poison
        ) {
          attempts.push(event.sequence);
          throw new Error('cannot project this agent');
        }
      }
      await eventStatsProjection.apply(events, context);
    },
  };
  await appendAgentHistory(store, 3, 'before');
  const poison = await store.append(
    { type: 'agent', id: 'poisoned' },
    [agentEnrolled('poisoned', { poison: 'yes' })],
    {
      context: adminContext,
    },
  );
  const last = await appendAgentHistory(store, 3, 'after');

  await new ProjectionRunner({
    dataSource: db.dataSource,
    store,
    projections: [poisonSensitive],
    logger,
    maxAttempts: 3,
    backoffMs: [1],
    untilSequence: last,
  }).run();

  // Once in the whole batch, then three single attempts.
  expect(attempts).toEqual(Array(4).fill(poison.lastSequence));
  const letters = await db.dataSource.query(
    'SELECT consumer, sequence::int AS sequence, deliveries, event_type, error FROM dead_letters',
  );
  expect(letters).toEqual([
    {
      consumer: 'projection:poison_sensitive_stats',
      sequence: poison.lastSequence,
      deliveries: 3,
      event_type: 'AgentEnrolled',
      error: 'cannot project this agent',
    },
  ]);
  const events = (await readAll()).filter((event) => event.sequence !== poison.lastSequence);
  expect(await statsRows()).toEqual(foldStats(events));
});

test('a database outage does not dead-letter anything: the batch is retried until the database is back', async () => {
  const last = await appendAgentHistory(store, 5);
  let calls = 0;
  const flaky: Projection = {
    name: 'flaky_stats',
    tables: ['event_stats'],
    async apply(events, context) {
      calls++;
      // Kill our own connection, as a Postgres restart would.
      if (calls === 1) await context.query('SELECT pg_terminate_backend(pg_backend_pid())');
      await eventStatsProjection.apply(
        events.filter((event) => eventStatsProjection.eventTypes.includes(event.type)),
        context,
      );
    },
  };
  await new ProjectionRunner({
    dataSource: db.dataSource,
    store,
    projections: [flaky],
    logger,
    backoffMs: [10],
    untilSequence: last,
  }).run();
  expect(calls).toBeGreaterThan(1);
  expect(await db.dataSource.query('SELECT count(*)::int AS n FROM dead_letters')).toEqual([{ n: 0 }]);
  expect(await statsRows()).toEqual(foldStats(await readAll()));
});
