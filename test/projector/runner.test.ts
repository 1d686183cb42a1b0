import type { NatsConnection } from '@nats-io/transport-node';
import { createDomainRegistry, type StoredEvent } from '#contracts';
import type { EventStore } from '#eventstore';
import type { AgentRow } from '#persistence';
import type { Projection } from '../../apps/projector/src/engine/projection.js';
import { RowProjection } from '../../apps/projector/src/engine/row-projection.js';
import { ProjectionRunner } from '../../apps/projector/src/engine/runner.js';
import { createLogger } from '#platform';
import { randomUUID } from 'node:crypto';
import {
  agentsProjection,
  appsProjection,
  deploymentsProjection,
  eventLogProjection,
  eventStatsProjection,
  evolveAgentRow,
  hostnamesProjection,
} from '../../apps/projector/src/projections/index.js';
import { startNats, type TestNats } from '../harness/nats.js';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js';
import { openTestStore } from '../eventstore/fixtures.js';
import { adminContext, agentEnrolled, appendAgentHistory, appendAppHistory } from '../fixtures/events.js';

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

function deadLetters(): Promise<unknown[]> {
  return db.dataSource.query(
    'SELECT consumer, sequence::int AS sequence, deliveries, event_type, error FROM dead_letters',
  );
}

/** A logger that keeps warnings and errors, to assert on what a run reported. */
function capturingLogger(lines: string[]) {
  return createLogger('test', { level: 'warn', write: (line) => lines.push(line) });
}

async function statsRows() {
  return db.dataSource.query(
    'SELECT type, count::int AS count, last_sequence::int AS last_sequence FROM event_stats ORDER BY type COLLATE "C"',
  );
}

function foldStats(events: StoredEvent[]) {
  return (
    [...eventStatsProjection.fold(events).values()]
      .map((row) => ({ type: row.type, count: row.count, last_sequence: row.last_sequence }))
      // Code-point order, as the query's (DeploymentCancelRequested before DeploymentCancelled).
      .sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0))
  );
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
  const letters = await deadLetters();
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

/** Host names claimed, released and claimed again by other routes, so rows come, go and come back. */
async function appendHostnameHistory(rounds: number, names: number): Promise<number> {
  let last = 0;
  for (let round = 0; round < rounds; round++) {
    for (let index = 0; index < names; index++) {
      const hostname = `app-${index}.apps.example.com`;
      const routeId = randomUUID();
      const claimed = await store.append(
        { type: 'hostname', id: hostname },
        [{ type: 'HostnameClaimed', data: { hostname, routeId, agentId: `agent-${round}` } }],
        { context: adminContext },
      );
      last = claimed.lastSequence;
      if ((index + round) % 3 === 0) {
        const released = await store.append(
          { type: 'hostname', id: hostname },
          [{ type: 'HostnameReleased', data: { hostname, routeId } }],
          { context: adminContext },
        );
        last = released.lastSequence;
      }
    }
  }
  return last;
}

async function tableRows(table: string, key: string): Promise<unknown[]> {
  return db.dataSource.query(`SELECT to_jsonb(t) AS row FROM ${table} t ORDER BY ${key}`);
}

/** What a projection's table holds after the per-batch path, in a database of its own. */
async function perBatchRows(projections: Projection[], table: string, key: string, last: number) {
  const reference = await createTestDatabase('runner_reference');
  try {
    await new ProjectionRunner({
      dataSource: reference.dataSource,
      store,
      projections,
      logger,
      batchSize: 5,
      untilSequence: last,
    }).run();
    return await reference.dataSource.query(`SELECT to_jsonb(t) AS row FROM ${table} t ORDER BY ${key}`);
  } finally {
    await reference.drop();
  }
}

test('a bulk load that writes and forgets its rows many times equals the batch-by-batch projection', async () => {
  await appendAgentHistory(store, 12);
  await appendAppHistory(store, 3, 'bulk');
  const last = await appendHostnameHistory(4, 9);
  // A refused bulk write would fall back to batch by batch and hide a bulk bug: there must be none.
  const warnings: string[] = [];
  const runner = new ProjectionRunner({
    dataSource: db.dataSource,
    store,
    projections: [
      eventLogProjection,
      eventStatsProjection,
      agentsProjection,
      hostnamesProjection,
      appsProjection,
      deploymentsProjection,
    ],
    logger: capturingLogger(warnings),
    batchSize: 4,
    bulk: true,
    // Tiny: rows are flushed and evicted every few batches, then read back (or known absent) when touched.
    bulkRowBudget: 3,
    untilSequence: last,
  });
  await runner.run();
  expect(warnings).toEqual([]);
  expect(runner.position).toBe(last);

  expect(await tableRows('hostnames', 'hostname')).toEqual(
    await perBatchRows([hostnamesProjection], 'hostnames', 'hostname', last),
  );
  expect(await tableRows('agents', 'agent_id')).toEqual(
    await perBatchRows([agentsProjection], 'agents', 'agent_id', last),
  );
  expect(await tableRows('apps', 'app_name')).toEqual(
    await perBatchRows([appsProjection], 'apps', 'app_name', last),
  );
  const deployments = await tableRows('deployments', 'deployment_id');
  expect(deployments).toHaveLength(21);
  expect(deployments).toEqual(
    await perBatchRows([deploymentsProjection], 'deployments', 'deployment_id', last),
  );
  const events = await readAll();
  expect(await statsRows()).toEqual(foldStats(events));
  const held = [...hostnamesProjection.fold(events).keys()].sort();
  expect(
    (await tableRows('hostnames', 'hostname')).map(
      (row) => (row as { row: { hostname: string } }).row.hostname,
    ),
  ).toEqual(held);
  const checkpoints = await db.dataSource.query(
    'SELECT projection, last_sequence::int AS s FROM projection_checkpoints ORDER BY 1',
  );
  expect(checkpoints).toEqual(
    ['agents', 'apps', 'deployments', 'event_log', 'event_stats', 'hostnames'].map((projection) => ({
      projection,
      s: last,
    })),
  );
});

test('a bulk load dead-letters an event its fold cannot take, and the rest still lands', async () => {
  await appendAgentHistory(store, 4, 'before');
  const poison = await store.append(
    { type: 'agent', id: 'poisoned' },
    [agentEnrolled('poisoned', { poison: 'yes' })],
    { context: adminContext },
  );
  const last = await appendAgentHistory(store, 4, 'after');
  const picky = new RowProjection<AgentRow>({
    ...agentsProjection.spec,
    name: 'picky_agents',
    evolve: (row, event) => {
      if ((event.data as { labels?: Record<string, string> }).labels?.poison)
        throw new Error('cannot fold this agent');
      return evolveAgentRow(row, event);
    },
  });
  const warnings: string[] = [];
  await new ProjectionRunner({
    dataSource: db.dataSource,
    store,
    projections: [picky],
    logger: capturingLogger(warnings),
    batchSize: 3,
    bulk: true,
    bulkRowBudget: 2,
    untilSequence: last,
  }).run();
  const letters = await deadLetters();
  expect(letters).toEqual([
    {
      consumer: 'projection:picky_agents',
      sequence: poison.lastSequence,
      deliveries: 1,
      event_type: 'AgentEnrolled',
      error: 'cannot fold this agent',
    },
  ]);
  // Dead-lettered at once and logged as such; never a fallback to batch by batch.
  expect(warnings.map((line) => JSON.parse(line).msg)).toEqual(['event dead-lettered by projection']);
  const ids = await db.dataSource.query('SELECT agent_id FROM agents ORDER BY agent_id');
  const expected = [
    ...agentsProjection
      .fold((await readAll()).filter((event) => event.sequence !== poison.lastSequence))
      .keys(),
  ].sort();
  expect(ids.map((row: { agent_id: string }) => row.agent_id)).toEqual(expected);
});

test('when Postgres refuses a bulk write, the load starts again batch by batch and still lands', async () => {
  const last = await appendAgentHistory(store, 6);
  let refusals = 0;
  const refusing: Projection = {
    name: 'event_stats',
    tables: ['event_stats'],
    eventTypes: eventStatsProjection.eventTypes,
    apply: (events, context) => eventStatsProjection.apply(events, context),
    bulkLoader: () => ({
      rowsInMemory: 0,
      prefetch: async () => undefined,
      fold: () => [],
      takeChanges: () => async (context) => {
        refusals++;
        await context.query('SELECT 1 / 0');
      },
      evict: () => undefined,
    }),
  };
  await new ProjectionRunner({
    dataSource: db.dataSource,
    store,
    projections: [refusing],
    logger,
    batchSize: 4,
    bulk: true,
    untilSequence: last,
  }).run();
  expect(refusals).toBe(1);
  expect(await statsRows()).toEqual(foldStats(await readAll()));
});
