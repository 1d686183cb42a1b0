import type { AppConfig, NewEvent, StoredEvent } from '#contracts';
import { appViewOfRow } from '#persistence';
import { appsProjection } from './apps.js';

const appName = 'shop';
let sequence = 0;
let clock = Date.parse('2030-01-01T00:00:00.000Z');

function event(input: NewEvent): StoredEvent {
  sequence++;
  clock += 1_000;
  return {
    id: `e${sequence}`,
    type: input.type,
    schemaVersion: 1,
    aggregate: { type: 'app', id: appName },
    occurredAt: new Date(clock).toISOString(),
    actor: { kind: 'system', id: 'test' },
    correlationId: 'c',
    causationId: null,
    data: input.data,
    sequence,
    subject: `events.app.${appName}`,
  };
}

const config = (env: Record<string, string> = {}): AppConfig => ({
  hostname: 'shop.apps.example.test',
  source: { type: 'upload' },
  build: { root: null, build: null, start: null, portEnv: null, timeoutSeconds: null },
  healthCheck: { path: '/health', timeoutSeconds: 30, graceSeconds: 0, successes: 1 },
  env,
  secrets: [],
  drain: { delaySeconds: 1, stopTimeoutSeconds: 5 },
  limits: { memoryMb: 256, processes: 32 },
  releasesKept: 2,
  runtime: 'process',
});
const d1 = '11111111-1111-4111-8111-111111111111';
const d2 = '22222222-2222-4222-8222-222222222222';
const d3 = '33333333-3333-4333-8333-333333333333';
const route = '44444444-4444-4444-8444-444444444444';

const created = () => event({ type: 'AppCreated', data: { appName, agentId: 'web-a', config: config() } });
const accepted = (deploymentId: string, number: number, queued = false) =>
  event({
    type: 'DeploymentAccepted',
    data: { appName, deploymentId, number, kind: 'deploy', queued, supersedes: null },
  });
const fold = (events: StoredEvent[]) => appsProjection.fold(events).get(appName);

test('created: the app with its host name and config, nothing deployed; events before it change nothing', () => {
  expect(fold([event({ type: 'AppConfigured', data: { appName, config: config() } })])).toBeUndefined();
  const first = created();
  expect(fold([first])).toEqual({
    app_name: appName,
    agent_id: 'web-a',
    hostname: 'shop.apps.example.test',
    route_id: null,
    config: config(),
    secrets: {},
    current_release: null,
    kept_releases: [],
    active_deployment_id: null,
    queued_deployment_id: null,
    deployments_count: 0,
    created_at: first.occurredAt,
    updated_at: first.occurredAt,
    last_sequence: first.sequence,
  });
  // A second AppCreated (it cannot be appended, but a fold must not reset the app).
  expect(
    fold([first, event({ type: 'AppConfigured', data: { appName, config: config({ A: '1' }) } }), created()])!
      .config.env,
  ).toEqual({ A: '1' });
});

test('secrets are names, versions and times: set, set again, removed; the view lists them by name', () => {
  const set1 = event({ type: 'AppSecretSet', data: { appName, name: 'TOKEN', version: 1 } });
  const setA = event({ type: 'AppSecretSet', data: { appName, name: 'API_KEY', version: 1 } });
  const set2 = event({ type: 'AppSecretSet', data: { appName, name: 'TOKEN', version: 2 } });
  const row = fold([created(), set1, setA, set2])!;
  expect(row.secrets).toEqual({
    TOKEN: { version: 2, setAt: set2.occurredAt },
    API_KEY: { version: 1, setAt: setA.occurredAt },
  });
  expect(appViewOfRow(row).secrets.map((secret) => secret.name)).toEqual(['API_KEY', 'TOKEN']);
  const removed = event({ type: 'AppSecretRemoved', data: { appName, name: 'TOKEN' } });
  expect(fold([created(), set1, removed])).toMatchObject({ secrets: {}, updated_at: removed.occurredAt });
});

test('the lock: accepted runs or queues, the count is the highest number, finished frees and records the release', () => {
  const history = [created(), accepted(d1, 1), accepted(d2, 2, true)];
  expect(fold(history)).toMatchObject({
    active_deployment_id: d1,
    queued_deployment_id: d2,
    deployments_count: 2,
  });
  const current = { releaseId: d1, number: 1, port: 41001, commit: null };
  const kept = [{ releaseId: d1, number: 1, commit: null, builtAt: '2030-01-01T00:00:05.000Z' }];
  const finished = event({
    type: 'DeploymentFinished',
    data: { appName, deploymentId: d1, outcome: 'succeeded', current, routeId: route, keptReleases: kept },
  });
  const activated = event({ type: 'DeploymentActivated', data: { appName, deploymentId: d2 } });
  const row = fold([...history, finished, activated])!;
  expect(row).toMatchObject({
    active_deployment_id: d2,
    queued_deployment_id: null,
    current_release: current,
    kept_releases: kept,
    route_id: route,
    last_sequence: activated.sequence,
  });
  expect(appViewOfRow(row)).toMatchObject({
    current,
    keptReleases: kept,
    activeDeploymentId: d2,
    deploymentsCount: 2,
  });

  // A queued one superseded and finished: only the queue slot is freed, the active one keeps running.
  const replaced = fold([
    created(),
    accepted(d1, 1),
    accepted(d2, 2, true),
    event({
      type: 'DeploymentFinished',
      data: {
        appName,
        deploymentId: d2,
        outcome: 'cancelled',
        current: null,
        routeId: null,
        keptReleases: [],
      },
    }),
    accepted(d3, 3, true),
  ]);
  expect(replaced).toMatchObject({
    active_deployment_id: d1,
    queued_deployment_id: d3,
    deployments_count: 3,
  });
});
