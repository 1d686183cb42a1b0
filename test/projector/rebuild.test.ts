import type { NatsConnection } from '@nats-io/transport-node';
import {
  createDomainRegistry,
  projectorCommands,
  type ProjectionSchema,
  type ProjectorStatus,
  type RebuildStatus,
} from '#contracts';
import type { EventStore } from '#eventstore';
import type { CommandBus } from '#messaging';
import { ownedTables } from '../../apps/projector/src/engine/rebuild.js';
import { projections } from '../../apps/projector/src/projections/index.js';
import { startApp } from '../harness/apps.js';
import { testAdmin, testCommandBus } from '../harness/commands.js';
import { startNats, type TestNats } from '../harness/nats.js';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js';
import { sleep, waitFor, type RunningProcess } from '../harness/processes.js';
import { openTestStore } from '../eventstore/fixtures.js';
import { appendAgentHistory, appendAppHistory } from '../fixtures/events.js';

let nats: TestNats;
let nc: NatsConnection;
let store: EventStore;
let db: TestDatabase;
let projector: RunningProcess;
let commands: { bus: CommandBus; close(): Promise<void> };

beforeAll(async () => {
  nats = await startNats();
  nc = await nats.connect();
  ({ store } = await openTestStore(nc, createDomainRegistry()));
  db = await createTestDatabase('rebuild');
  projector = startApp('projector', {
    CL_NATS_URL: nats.url,
    CL_DATABASE_URL: db.url,
    CL_PROJECTOR_BATCH_SIZE: '100',
    CL_PROJECTOR_REBUILD_ROW_BUDGET: '25',
  });
  commands = testCommandBus(nats.url);
});
afterAll(async () => {
  await commands?.close();
  await projector?.stop();
  await nc?.close();
  await nats?.destroy();
  await db?.drop();
});

const send = <T>(subject: string, payload: unknown) =>
  commands.bus.execute<T>(subject, payload, { actor: testAdmin });

async function liveAt(sequence: number): Promise<void> {
  await waitFor(`live projections at ${sequence}`, async () => {
    if (projector.child.exitCode !== null) throw new Error(projector.output());
    const state = await send<ProjectorStatus>(projectorCommands.status, {}).catch(() => undefined);
    return (state && state.position >= sequence) || undefined;
  });
}

/** Every row of every projection table in `schema`. */
async function snapshot(schema: string): Promise<Record<string, unknown[]>> {
  const result: Record<string, unknown[]> = {};
  for (const table_name of ownedTables(projections)) {
    result[table_name] = await db.dataSource.query(`SELECT * FROM "${schema}"."${table_name}" ORDER BY 1`);
  }
  return result;
}

async function finished(id: string): Promise<RebuildStatus> {
  return waitFor(
    `rebuild ${id}`,
    async () => {
      const status = await send<RebuildStatus>(projectorCommands.rebuildStatus, { id });
      if (status.phase === 'failed') throw new Error(`rebuild failed: ${status.error}`);
      return status.phase === 'done' ? status : undefined;
    },
    { timeoutMs: 60_000 },
  );
}

test('a full rebuild swaps in tables equal to the live ones while the live tables keep serving', async () => {
  await appendAgentHistory(store, 400, 'swap');
  const last = await appendAppHistory(store, 3, 'swap');
  await liveAt(last);
  const before = await snapshot('public');
  expect(before.event_log).toHaveLength(last);
  // The app and deployment events are covered: every app, and seven deployments of each.
  expect(before.apps).toHaveLength(3);
  expect(before.deployments).toHaveLength(21);

  const started = await send<RebuildStatus>(projectorCommands.rebuild, {
    projections: ['all'],
    mode: 'swap',
  });
  expect(started.schema).toMatch(/^rebuild_/);
  // Reads keep answering while the rebuild runs, and new events keep being projected.
  let reads = 0;
  let done: RebuildStatus | undefined;
  const during = appendAgentHistory(store, 50, 'during');
  void finished(started.id).then((status) => (done = status));
  while (!done) {
    const [{ n }] = await db.dataSource.query('SELECT count(*)::int AS n FROM event_log');
    expect(n).toBeGreaterThanOrEqual(last);
    reads++;
    await sleep(20);
  }
  expect(reads).toBeGreaterThan(0);
  expect(
    done.differences!.every((difference) => difference.onlyLive === 0 && difference.onlyRebuilt === 0),
  ).toBe(true);
  const end = await during;
  await liveAt(end);
  const after = await snapshot('public');
  expect(after.event_log).toHaveLength(end);
  expect(
    after.event_stats!.reduce((sum: number, row) => sum + Number((row as { count: string }).count), 0),
  ).toBe(end);
  const schemas = await send<ProjectionSchema[]>(projectorCommands.schemas, {});
  expect(schemas.filter((entry) => entry.schema.startsWith('rebuild_'))).toEqual([]);
});

test('time travel: the state as of sequence N equals the live state when it was at N', async () => {
  await appendAgentHistory(store, 60, 'past');
  const n = await appendAppHistory(store, 2, 'past');
  await liveAt(n);
  const atN = await snapshot('public');
  expect(atN.deployments).toHaveLength(3 * 7 + 2 * 7);
  await sleep(50);
  const moment = new Date().toISOString();
  await sleep(50);
  await appendAppHistory(store, 1, 'future');
  await liveAt(await appendAgentHistory(store, 60, 'future'));

  const bySequence = await finished(
    (
      await send<RebuildStatus>(projectorCommands.rebuild, {
        projections: ['all'],
        mode: 'inspect',
        asOf: { sequence: n },
        label: 'seq',
      })
    ).id,
  );
  expect(bySequence.schema).toBe('asof_seq');
  expect(await snapshot('asof_seq')).toEqual(atN);

  const byTime = await finished(
    (
      await send<RebuildStatus>(projectorCommands.rebuild, {
        projections: ['all'],
        mode: 'inspect',
        asOf: { time: moment },
        label: 'time',
      })
    ).id,
  );
  expect(byTime.sequence).toBe(n);
  expect(await snapshot('asof_time')).toEqual(atN);

  await send(projectorCommands.dropSchema, { schema: 'asof_seq' });
  await expect(send(projectorCommands.dropSchema, { schema: 'public' })).rejects.toThrow(
    /time-travel schema/,
  );
});

test('a rebuild request naming an unknown projection is refused with the field', async () => {
  await expect(
    send(projectorCommands.rebuild, { projections: ['nope'], mode: 'swap' }),
  ).rejects.toMatchObject({
    code: 'not_found',
    field: 'projections',
  });
  await expect(
    send(projectorCommands.rebuild, { projections: ['all'], mode: 'swap', asOf: { sequence: 3 } }),
  ).rejects.toMatchObject({
    code: 'invalid',
    field: 'payload.asOf',
  });
});
