import pg from 'pg';
import type { NatsConnection } from '@nats-io/transport-node';
import { createDomainRegistry, type StoredEvent } from '#contracts';
import type { EventStore } from '#eventstore';
import { eventStatsProjection, projections } from '../../apps/projector/src/projections/index.js';
import { startApp } from '../harness/apps.js';
import { startNats, type TestNats } from '../harness/nats.js';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js';
import { sleep, waitFor, type RunningProcess } from '../harness/processes.js';
import { openTestStore } from '../eventstore/fixtures.js';
import { appendAgentHistory } from '../fixtures/events.js';

let nats: TestNats;
let nc: NatsConnection;
let store: EventStore;
let db: TestDatabase;
const projectors: RunningProcess[] = [];

beforeAll(async () => {
  nats = await startNats();
  nc = await nats.connect();
  ({ store } = await openTestStore(nc, createDomainRegistry()));
  db = await createTestDatabase('projector_crash');
});
afterAll(async () => {
  for (const projector of projectors) await projector.stop('SIGKILL');
  await nc?.close();
  await nats?.destroy();
  await db?.drop();
});

function startProjector(): RunningProcess {
  const projector = startApp('projector', {
    CL_NATS_URL: nats.url,
    CL_DATABASE_URL: db.url,
    CL_PROJECTOR_BATCH_SIZE: '200',
  });
  projectors.push(projector);
  return projector;
}

async function checkpoints(): Promise<Record<string, number>> {
  const rows: { projection: string; s: number }[] = await db.dataSource.query(
    'SELECT projection, last_sequence::int AS s FROM projection_checkpoints',
  );
  return Object.fromEntries(rows.map((row) => [row.projection, row.s]));
}

async function caughtUp(projector: RunningProcess, last: number): Promise<void> {
  await waitFor(
    `projector at ${last}`,
    async () => {
      if (projector.child.exitCode !== null) throw new Error(`projector exited:\n${projector.output()}`);
      const reached = Object.values(await checkpoints());
      return (
        (reached.length === projections.length && reached.every((sequence) => sequence === last)) || undefined
      );
    },
    { timeoutMs: 60_000 },
  );
}

async function expectProjectionsEqualFoldOfLog(): Promise<void> {
  const events: StoredEvent[] = [];
  for await (const event of store.readLog()) events.push(event);
  const folded = [...eventStatsProjection.fold(events).values()]
    .map((row) => ({ type: row.type, count: row.count, last_sequence: row.last_sequence }))
    .sort((a, b) => a.type.localeCompare(b.type));
  const stats = await db.dataSource.query(
    'SELECT type, count::int AS count, last_sequence::int AS last_sequence FROM event_stats ORDER BY type',
  );
  expect(stats).toEqual(folded);
  const logged: { sequence: number }[] = await db.dataSource.query(
    'SELECT sequence::int AS sequence FROM event_log ORDER BY sequence',
  );
  expect(logged.map((row) => row.sequence)).toEqual(events.map((event) => event.sequence));
  expect(await db.dataSource.query('SELECT count(*)::int AS n FROM dead_letters')).toEqual([{ n: 0 }]);
}

test('a projector killed in the middle of a batch resumes with no event applied twice or skipped', async () => {
  const firstLast = await appendAgentHistory(store, 150, 'early');
  const projector = startProjector();
  await caughtUp(projector, firstLast);

  // Hold event_stats so the projector's next batch stops half-way: event_log rows written, stats waiting.
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE event_stats IN ACCESS EXCLUSIVE MODE');
  const secondLast = await appendAgentHistory(store, 300, 'late');
  await waitFor('the projector blocked inside its batch transaction', async () => {
    const rows = await blocker.query(
      `SELECT 1 FROM pg_stat_activity WHERE application_name = 'projector' AND wait_event_type = 'Lock' AND state = 'active'`,
    );
    return rows.rowCount! > 0 || undefined;
  });
  await projector.stop('SIGKILL');
  await blocker.query('ROLLBACK');
  await blocker.end();

  // The interrupted batch left nothing behind.
  expect(Object.values(await checkpoints())).toEqual(projections.map(() => firstLast));
  const [{ n }] = await db.dataSource.query('SELECT count(*)::int AS n FROM event_log WHERE sequence > $1', [
    firstLast,
  ]);
  expect(n).toBe(0);

  const restarted = startProjector();
  await caughtUp(restarted, secondLast);
  await expectProjectionsEqualFoldOfLog();
  await restarted.stop();
});

test('repeated SIGKILLs at arbitrary moments of a long catch-up still converge to the fold of the log', async () => {
  const last = await appendAgentHistory(store, 1200, 'bulk');
  for (const delayMs of [150, 400, 250]) {
    const projector = startProjector();
    await sleep(delayMs);
    await projector.stop('SIGKILL');
  }
  const finalRun = startProjector();
  await caughtUp(finalRun, last);
  await expectProjectionsEqualFoldOfLog();
  await finalRun.stop();
  expect(finalRun.child.exitCode === 0 || finalRun.child.signalCode === 'SIGTERM').toBe(true);
});

test('a database kept while the log was lost is built again from the new log, not trusted', async () => {
  const projector = startProjector();
  await caughtUp(projector, await store.lastSequence());
  await projector.stop();
  // The broker's data is gone and it starts empty: a new log under the same name (seconds resolve the
  // creation time, so a moment passes first).
  await sleep(1_100);
  const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(nc);
  await jsm.streams.delete('EVENTS');
  ({ store } = await openTestStore(nc, createDomainRegistry()));
  const last = await appendAgentHistory(store, 20, 'new-log');
  expect(last).toBeLessThan(100);

  const restarted = startProjector();
  await caughtUp(restarted, last);
  expect(restarted.output()).toContain('the projections were built from another event log');
  await expectProjectionsEqualFoldOfLog();
  const [{ n }] = await db.dataSource.query(
    `SELECT count(*)::int AS n FROM agents WHERE agent_id LIKE 'bulk%'`,
  );
  expect(n).toBe(0);
  await restarted.stop();
});
