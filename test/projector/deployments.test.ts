import type { NatsConnection } from '@nats-io/transport-node';
import { createDomainRegistry, type StoredEvent } from '#contracts';
import type { EventStore } from '#eventstore';
import {
  appByName,
  appsOfAgent,
  appViewOfRow,
  deleteSecretValues,
  deploymentById,
  deploymentsOfApp,
  deploymentViewOfRow,
  insertSecretValue,
  listSecretVersions,
  nonTerminalDeployments,
  queryApps,
  readSecretValues,
} from '#persistence';
import { createLogger } from '#platform';
import { ProjectionRunner } from '../../apps/projector/src/engine/runner.js';
import { ownedTables } from '../../apps/projector/src/engine/rebuild.js';
import {
  appsProjection,
  deploymentsProjection,
  projections,
} from '../../apps/projector/src/projections/index.js';
import { startNats, type TestNats } from '../harness/nats.js';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js';
import { openTestStore } from '../eventstore/fixtures.js';
import { appendAppHistory } from '../fixtures/events.js';

let nats: TestNats;
let nc: NatsConnection;
let store: EventStore;
let db: TestDatabase;
const events: StoredEvent[] = [];

beforeAll(async () => {
  nats = await startNats();
  nc = await nats.connect();
  ({ store } = await openTestStore(nc, createDomainRegistry()));
  db = await createTestDatabase('deployments');
  const last = await appendAppHistory(store, 2, 'q');
  await new ProjectionRunner({
    dataSource: db.dataSource,
    store,
    projections: [appsProjection, deploymentsProjection],
    logger: createLogger('test', { level: 'error' }),
    batchSize: 6,
    untilSequence: last,
  }).run();
  for await (const event of store.readLog()) events.push(event);
});
afterAll(async () => {
  await nc?.close();
  await nats?.destroy();
  await db?.drop();
});

test('the tables hold what a fold of the log holds, through the views', async () => {
  const apps = appsProjection.fold(events);
  const deployments = deploymentsProjection.fold(events);
  expect(apps.size).toBe(2);
  expect(deployments.size).toBe(14);
  for (const [name, row] of apps) expect(await appByName(db.dataSource, name)).toEqual(appViewOfRow(row));
  for (const [id, row] of deployments) {
    expect(await deploymentById(db.dataSource, id)).toEqual(deploymentViewOfRow(row));
  }
  expect(await appByName(db.dataSource, 'nope')).toBeUndefined();
  expect(await deploymentById(db.dataSource, '99999999-9999-4999-8999-999999999999')).toBeUndefined();
});

test('apps: by name, by agent, paged with a total', async () => {
  const app = (await appByName(db.dataSource, 'q-0'))!;
  expect(app).toMatchObject({
    agentId: 'q-agent-0',
    hostname: 'q-0.apps.example.test',
    deploymentsCount: 7,
    secrets: [{ name: 'DB_PASSWORD', version: 1 }],
  });
  // The rollback made the first release serve again; the failed one was never kept.
  expect(app.current?.number).toBe(1);
  expect(app.keptReleases.map((release) => release.number)).toEqual([1, 3]);
  expect(app.activeDeploymentId).not.toBeNull();
  expect(app.queuedDeploymentId).not.toBeNull();
  expect((await appsOfAgent(db.dataSource, 'q-agent-1')).map((a) => a.appName)).toEqual(['q-1']);
  expect(await queryApps(db.dataSource, { limit: 1, offset: 1 })).toMatchObject({
    apps: [{ appName: 'q-1' }],
    total: 2,
  });
  expect(await queryApps(db.dataSource, { agentId: 'q-agent-0' })).toMatchObject({ total: 1 });
});

test("an app's deployments: newest first, by status, paged", async () => {
  const all = await deploymentsOfApp(db.dataSource, 'q-0');
  expect(all.total).toBe(7);
  expect(all.deployments.map((d) => [d.number, d.kind, d.status])).toEqual([
    [7, 'deploy', 'requested'],
    [6, 'deploy', 'claimed'],
    [5, 'deploy', 'cancelled'],
    [4, 'rollback', 'succeeded'],
    [3, 'deploy', 'succeeded'],
    [2, 'deploy', 'failed'],
    [1, 'deploy', 'succeeded'],
  ]);
  const page = await deploymentsOfApp(db.dataSource, 'q-0', { status: 'succeeded', limit: 2, offset: 1 });
  expect(page.total).toBe(3);
  expect(page.deployments.map((d) => d.number)).toEqual([3, 1]);
  const ended = await deploymentsOfApp(db.dataSource, 'q-0', { status: ['failed', 'cancelled'] });
  expect(ended.deployments.map((d) => [d.number, d.failure?.phase])).toEqual([
    [5, 'fetched'],
    [2, 'healthy'],
  ]);
  expect(ended.deployments[1]!.failure).toMatchObject({
    exitCode: 1,
    lastLines: ['listening on 41002', 'Error: no database'],
  });
});

test('the supervisor scan: deployments not ended, soonest deadline first, the queued one last', async () => {
  const running = await nonTerminalDeployments(db.dataSource);
  // Two claimed ones (q-0's claimed first), then the two queued ones, which have no deadline.
  expect(running.slice(0, 2).map((d) => [d.appName, d.status])).toEqual([
    ['q-0', 'claimed'],
    ['q-1', 'claimed'],
  ]);
  expect(running[0]!.deadlineAt! < running[1]!.deadlineAt!).toBe(true);
  expect(running.slice(2).map((d) => [d.status, d.deadlineAt])).toEqual([
    ['requested', null],
    ['requested', null],
  ]);
  expect(
    running
      .slice(2)
      .map((d) => d.appName)
      .sort(),
  ).toEqual(['q-0', 'q-1']);
  const ofAgent = await nonTerminalDeployments(db.dataSource, { agentId: 'q-agent-1', limit: 1 });
  expect(ofAgent).toMatchObject([{ appName: 'q-1', status: 'claimed' }]);
  const claimed = (await deploymentById(db.dataSource, ofAgent[0]!.deploymentId))!;
  expect(claimed.deadlineAt).toBe(ofAgent[0]!.deadlineAt);
  expect(claimed.phases.find((phase) => phase.state === 'current')).toMatchObject({
    phase: 'fetched',
    deadlineAt: claimed.deadlineAt,
  });
});

test('secret values: stored once per version, read and deleted by version, never a projection', async () => {
  const sealed = (version: number) => ({
    appName: 'q-0',
    name: 'DB_PASSWORD',
    version,
    nonce: Buffer.alloc(12, version),
    ciphertext: Buffer.from(`sealed ${version}`),
    tag: Buffer.alloc(16, 7),
  });
  expect(await insertSecretValue(db.dataSource, sealed(1))).toBe(true);
  expect(await insertSecretValue(db.dataSource, { ...sealed(1), ciphertext: Buffer.from('other') })).toBe(
    false,
  );
  expect(await insertSecretValue(db.dataSource, sealed(2))).toBe(true);
  const read = await readSecretValues(db.dataSource, 'q-0', [
    { name: 'DB_PASSWORD', version: 1 },
    { name: 'DB_PASSWORD', version: 9 },
  ]);
  expect(read).toMatchObject([
    { version: 1, ciphertext: Buffer.from('sealed 1'), nonce: Buffer.alloc(12, 1) },
  ]);
  expect((await listSecretVersions(db.dataSource)).map((v) => v.version)).toEqual([1, 2]);
  expect(await readSecretValues(db.dataSource, 'q-1', [{ name: 'DB_PASSWORD', version: 1 }])).toEqual([]);
  expect(await deleteSecretValues(db.dataSource, 'q-0', [{ name: 'DB_PASSWORD', version: 1 }])).toBe(1);
  expect(await deleteSecretValues(db.dataSource, 'q-0', [{ name: 'DB_PASSWORD', version: 1 }])).toBe(0);
  expect((await listSecretVersions(db.dataSource, 'q-0')).map((v) => v.version)).toEqual([2]);
  // No projection owns the store: rebuilds and time travel never copy or replace it.
  expect(ownedTables(projections)).toEqual(expect.arrayContaining(['apps', 'deployments']));
  expect(ownedTables(projections)).not.toContain('app_secret_values');
});
