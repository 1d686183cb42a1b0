import type { Actor, AppConfig, NewEvent } from '#contracts';
import { deciderSpec, refusal, stored } from '#testing';
import {
  checkAppActor,
  decideAccept,
  decideConfigure,
  decideCreateApp,
  decideFinish,
  decideRemoveSecret,
  decideSetSecret,
  foldApp,
  keptAfter,
  nextSecretVersion,
  rollbackTarget,
  type AppState,
  type Finish,
  type KeptRelease,
  type LiveApp,
} from './app.js';

const t0 = new Date('2030-01-01T00:00:00.000Z');
const given = deciderSpec(foldApp, { aggregate: { type: 'app', id: 'shop' }, at: t0 });

const admin: Actor = { kind: 'admin', id: 'alice' };
const agentA: Actor = { kind: 'agent', id: 'web-a' };
const agentB: Actor = { kind: 'agent', id: 'web-b' };

const config: AppConfig = {
  hostname: 'shop.apps.example.test',
  source: { type: 'git', url: 'https://git.example.test/shop.git', ref: 'main', credentials: null },
  build: { root: null, install: null, build: null, start: null, portEnv: null, timeoutSeconds: null },
  healthCheck: { path: '/healthz', timeoutSeconds: 30, graceSeconds: 2, successes: 1 },
  env: { NODE_ENV: 'production' },
  secrets: [],
  drain: { delaySeconds: 5, stopTimeoutSeconds: 10 },
  limits: { memoryMb: 512, processes: 64 },
  releasesKept: 3,
  runtime: 'process',
};

const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const routeId = '33333333-3333-4333-8333-333333333333';
const commit = (c: string) => c.repeat(40);

/** Events with the command that caused them, as the command handler stores them. */
const by = (commandId: string, events: NewEvent[]) =>
  stored(events, { aggregate: { type: 'app', id: 'shop' }, at: t0, causationId: commandId });

const created: NewEvent[] = [{ type: 'AppCreated', data: { appName: 'shop', agentId: 'web-a', config } }];
const createdBy = (commandId = 'create-1') => by(commandId, created);

const accepted = (n: number, queued = false, supersedes: string | null = null): NewEvent => ({
  type: 'DeploymentAccepted',
  data: { appName: 'shop', deploymentId: id(n), number: n, kind: 'deploy', queued, supersedes },
});
const activated = (n: number): NewEvent => ({
  type: 'DeploymentActivated',
  data: { appName: 'shop', deploymentId: id(n) },
});

const kept = (n: number): KeptRelease => ({
  releaseId: id(n),
  number: n,
  commit: commit(String(n % 10)),
  builtAt: `2030-01-0${n}T00:00:00.000Z`,
});
const release = (n: number, port = 20_000 + n) => ({ ...kept(n), port });
const current = (n: number, port = 20_000 + n) => ({
  releaseId: id(n),
  number: n,
  port,
  commit: commit(String(n % 10)),
});
const finished = (n: number, currentN: number | null, keptNs: number[]): NewEvent => ({
  type: 'DeploymentFinished',
  data: {
    appName: 'shop',
    deploymentId: id(n),
    outcome: 'succeeded',
    current: currentN === null ? null : current(currentN),
    routeId,
    keptReleases: keptNs.map(kept),
  },
});

const live = (state: AppState): LiveApp => {
  if (state.status !== 'live') throw new Error('expected a live app');
  return state;
};

describe('creating an app', () => {
  test('a new name appends AppCreated, with one AppSecretSet per secret it starts with', () => {
    given()
      .when((app) =>
        decideCreateApp(app, { actor: admin, appName: 'shop', agentId: 'web-a', config, commandId: 'c1' }),
      )
      .then(created);
    const withSecret = { ...config, secrets: [{ name: 'API_KEY', version: 1 }] };
    given()
      .when((app) =>
        decideCreateApp(app, {
          actor: agentA,
          appName: 'shop',
          agentId: 'web-a',
          config: withSecret,
          commandId: 'c1',
        }),
      )
      .then([
        { type: 'AppCreated', data: { appName: 'shop', agentId: 'web-a', config: withSecret } },
        { type: 'AppSecretSet', data: { appName: 'shop', name: 'API_KEY', version: 1 } },
      ]);
  });

  test('the fold starts the app empty', () => {
    expect(given(createdBy()).state).toEqual({
      status: 'live',
      appName: 'shop',
      agentId: 'web-a',
      config,
      secrets: {},
      accepted: {},
      deploymentsCount: 0,
      active: null,
      activeSince: null,
      queued: null,
      current: null,
      routeId: null,
      keptReleases: [],
      createdAt: t0.toISOString(),
      updatedAt: t0.toISOString(),
      createdBy: 'create-1',
      secretCommands: {},
      secretHighWater: {},
    });
  });

  test('a retry of the creating command appends nothing; another command for the name is a conflict', () => {
    const create =
      (commandId: string, agentId = 'web-a') =>
      (app: AppState) =>
        decideCreateApp(app, { actor: admin, appName: 'shop', agentId, config, commandId });
    given(createdBy('c1')).when(create('c1')).then([]);
    given(createdBy('c1')).when(create('c2')).thenRefuses('conflict', 'name');
    given(createdBy('c1')).when(create('c1', 'web-b')).thenRefuses('conflict', 'name');
  });

  test('an agent creates apps only for itself', () => {
    given()
      .when((app) =>
        decideCreateApp(app, { actor: agentB, appName: 'shop', agentId: 'web-a', config, commandId: 'c1' }),
      )
      .thenRefuses('forbidden', 'agentId');
  });
});

describe('who may act on an app', () => {
  test('an admin on any app; its agent on its own; not found for an admin when absent', () => {
    const app = given(createdBy()).state;
    expect(() => checkAppActor(admin, app, 'shop')).not.toThrow();
    expect(() => checkAppActor(agentA, app, 'shop')).not.toThrow();
    expect(() => checkAppActor({ kind: 'service', id: 'deployments' }, app, 'shop')).not.toThrow();
    const missing = refusal(() => checkAppActor(admin, { status: 'absent' }, 'shop'));
    expect([missing.code, missing.field]).toEqual(['not_found', 'appName']);
  });

  test('a foreign agent gets the same 403 whether the app exists or not', () => {
    const existing = refusal(() => checkAppActor(agentB, given(createdBy()).state, 'shop'));
    const absent = refusal(() => checkAppActor(agentB, { status: 'absent' }, 'shop'));
    expect([existing.code, existing.field, existing.message]).toEqual([
      'forbidden',
      'appName',
      'agent web-b has no app shop',
    ]);
    expect([absent.code, absent.field, absent.message]).toEqual([
      existing.code,
      existing.field,
      existing.message,
    ]);
  });
});

describe('configuring an app', () => {
  test('a changed configuration appends the whole new one; the same one appends nothing', () => {
    const changed = { ...config, env: { NODE_ENV: 'staging' }, releasesKept: 5 };
    given(createdBy())
      .when((app) => decideConfigure(live(app), changed))
      .then([{ type: 'AppConfigured', data: { appName: 'shop', config: changed } }]);
    given(createdBy())
      .when((app) => decideConfigure(live(app), { ...config }))
      .then([]);
    expect(
      given(createdBy(), [{ type: 'AppConfigured', data: { appName: 'shop', config: changed } }]).state,
    ).toMatchObject({ config: changed });
  });

  test('the host name cannot change', () => {
    given(createdBy())
      .when((app) => decideConfigure(live(app), { ...config, hostname: 'other.apps.example.test' }))
      .thenRefuses('invalid', 'hostname');
  });

  test('a configuration keeps the secret versions the app has: secrets change only by set and remove', () => {
    const history = [
      ...createdBy(),
      ...by('s1', [
        { type: 'AppSecretSet', data: { appName: 'shop', name: 'API_KEY', version: 1 } },
        {
          type: 'AppConfigured',
          data: { appName: 'shop', config: { ...config, secrets: [{ name: 'API_KEY', version: 1 }] } },
        },
      ]),
    ];
    // Naming no secret, or a version the store never had, changes nothing about the secrets.
    given(history)
      .when((app) => decideConfigure(live(app), { ...config, secrets: [] }))
      .then([]);
    given(history)
      .when((app) => decideConfigure(live(app), { ...config, secrets: [{ name: 'API_KEY', version: 7 }] }))
      .then([]);
    given(history)
      .when((app) => decideConfigure(live(app), { ...config, env: {}, secrets: [] }))
      .then([
        {
          type: 'AppConfigured',
          data: {
            appName: 'shop',
            config: { ...config, env: {}, secrets: [{ name: 'API_KEY', version: 1 }] },
          },
        },
      ]);
  });
});

describe('secrets', () => {
  const set = (name: string, version: number): NewEvent[] => [
    { type: 'AppSecretSet', data: { appName: 'shop', name, version } },
  ];
  const removed = (name: string): NewEvent[] => [
    { type: 'AppSecretRemoved', data: { appName: 'shop', name } },
  ];
  const withSecrets = (secrets: { name: string; version: number }[]) => ({ ...config, secrets });

  test('the first value of a name is version 1, and the config names it', () => {
    const { state } = given(createdBy());
    expect(nextSecretVersion(live(state), 'API_KEY', 's1')).toBe(1);
    given(createdBy())
      .when((app) => decideSetSecret(live(app), 'API_KEY', 1, 's1'))
      .then([
        ...set('API_KEY', 1),
        {
          type: 'AppConfigured',
          data: { appName: 'shop', config: withSecrets([{ name: 'API_KEY', version: 1 }]) },
        },
      ]);
  });

  test('a new value is the next version; the config keeps the secrets sorted by name', () => {
    const history = [
      ...createdBy(),
      ...by('s1', [
        ...set('TOKEN', 1),
        {
          type: 'AppConfigured',
          data: { appName: 'shop', config: withSecrets([{ name: 'TOKEN', version: 1 }]) },
        },
      ]),
      ...by('s2', [
        ...set('API_KEY', 1),
        {
          type: 'AppConfigured',
          data: {
            appName: 'shop',
            config: withSecrets([
              { name: 'API_KEY', version: 1 },
              { name: 'TOKEN', version: 1 },
            ]),
          },
        },
      ]),
    ];
    const { state } = given(history);
    expect(live(state).secrets).toEqual({
      TOKEN: { version: 1, setAt: t0.toISOString() },
      API_KEY: { version: 1, setAt: t0.toISOString() },
    });
    expect(nextSecretVersion(live(state), 'TOKEN', 's3')).toBe(2);
    given(history)
      .when((app) => decideSetSecret(live(app), 'TOKEN', 2, 's3'))
      .then([
        ...set('TOKEN', 2),
        {
          type: 'AppConfigured',
          data: {
            appName: 'shop',
            config: withSecrets([
              { name: 'API_KEY', version: 1 },
              { name: 'TOKEN', version: 2 },
            ]),
          },
        },
      ]);
  });

  test('a retry of the same command gets the same version and appends nothing', () => {
    const history = [...createdBy(), ...by('s1', set('TOKEN', 1)), ...by('s2', set('TOKEN', 2))];
    const { state } = given(history);
    expect(nextSecretVersion(live(state), 'TOKEN', 's2')).toBe(2);
    expect(nextSecretVersion(live(state), 'TOKEN', 's1')).toBe(3);
    given(history)
      .when((app) => decideSetSecret(live(app), 'TOKEN', 2, 's2'))
      .then([]);
  });

  test('remove, then set again: the version continues from the highest one the name had', () => {
    const history = [
      ...createdBy(),
      ...by('s1', set('TOKEN', 1)),
      ...by('s2', set('TOKEN', 2)),
      ...by('r1', removed('TOKEN')),
    ];
    const { state } = given(history);
    expect(live(state).secrets).toEqual({});
    expect(live(state).secretHighWater).toEqual({ TOKEN: 2 });
    expect(nextSecretVersion(live(state), 'TOKEN', 's3')).toBe(3);
    // Even the command that set version 2 gets a new version now: its value was removed.
    expect(nextSecretVersion(live(state), 'TOKEN', 's2')).toBe(3);
    given(history)
      .when((app) => decideSetSecret(live(app), 'TOKEN', 3, 's3'))
      .then([
        ...set('TOKEN', 3),
        {
          type: 'AppConfigured',
          data: { appName: 'shop', config: withSecrets([{ name: 'TOKEN', version: 3 }]) },
        },
      ]);
  });

  test('removing a secret drops it from the config; removing an unknown one appends nothing', () => {
    const history = [
      ...createdBy(),
      ...by('s1', [
        ...set('TOKEN', 1),
        {
          type: 'AppConfigured',
          data: { appName: 'shop', config: withSecrets([{ name: 'TOKEN', version: 1 }]) },
        },
      ]),
    ];
    given(history)
      .when((app) => decideRemoveSecret(live(app), 'TOKEN'))
      .then([...removed('TOKEN'), { type: 'AppConfigured', data: { appName: 'shop', config } }]);
    given(history)
      .when((app) => decideRemoveSecret(live(app), 'OTHER'))
      .then([]);
    given(history, by('r1', removed('TOKEN')))
      .when((app) => decideRemoveSecret(live(app), 'TOKEN'))
      .then([]);
  });
});

describe('accepting deployments: one active per app', () => {
  test('with none active, the deployment runs at once, numbered from 1', () => {
    given(createdBy())
      .when((app) => decideAccept(live(app), id(1), 'deploy'))
      .then([accepted(1)]);
    expect(given(createdBy(), [accepted(1)]).state).toMatchObject({
      active: id(1),
      activeSince: t0.toISOString(),
      queued: null,
      deploymentsCount: 1,
      accepted: { [id(1)]: 1 },
    });
  });

  test('with one active, the next one is queued; a newer one supersedes the queued one', () => {
    given(createdBy(), [accepted(1)])
      .when((app) => decideAccept(live(app), id(2), 'deploy'))
      .then([accepted(2, true, null)]);
    given(createdBy(), [accepted(1), accepted(2, true)])
      .when((app) => decideAccept(live(app), id(3), 'rollback'))
      .then([
        {
          type: 'DeploymentAccepted',
          data: {
            appName: 'shop',
            deploymentId: id(3),
            number: 3,
            kind: 'rollback',
            queued: true,
            supersedes: id(2),
          },
        },
      ]);
    expect(
      given(createdBy(), [accepted(1), accepted(2, true), accepted(3, true, id(2))]).state,
    ).toMatchObject({
      active: id(1),
      queued: id(3),
      deploymentsCount: 3,
    });
  });

  test('a retry of an accepted deployment appends nothing', () => {
    given(createdBy(), [accepted(1)])
      .when((app) => decideAccept(live(app), id(1), 'deploy'))
      .then([]);
    given(createdBy(), [accepted(1), accepted(2, true)])
      .when((app) => decideAccept(live(app), id(2), 'deploy'))
      .then([]);
  });
});

describe('finishing a deployment', () => {
  const success = (n: number, port = 20_000 + n): Finish => ({
    deploymentId: id(n),
    outcome: 'succeeded',
    release: release(n, port),
    routeId,
  });

  test('a success records the release that serves and keeps it first', () => {
    given(createdBy(), [accepted(1)])
      .when((app) => decideFinish(live(app), success(1)))
      .then([finished(1, 1, [1])]);
    expect(given(createdBy(), [accepted(1), finished(1, 1, [1])]).state).toMatchObject({
      active: null,
      activeSince: null,
      current: current(1),
      routeId,
      keptReleases: [kept(1)],
    });
  });

  test('finish activates the queued one in the same decision', () => {
    given(createdBy(), [accepted(1), accepted(2, true)])
      .when((app) => decideFinish(live(app), success(1)))
      .then([finished(1, 1, [1]), activated(2)]);
    expect(
      given(createdBy(), [accepted(1), accepted(2, true), finished(1, 1, [1]), activated(2)]).state,
    ).toMatchObject({ active: id(2), queued: null, current: current(1) });
  });

  test('a failure keeps the current release, the route and the kept releases', () => {
    const history = [accepted(1), finished(1, 1, [1]), accepted(2)];
    for (const outcome of ['failed', 'cancelled', 'abandoned'] as const) {
      given(createdBy(), history)
        .when((app) =>
          decideFinish(live(app), { deploymentId: id(2), outcome, release: null, routeId: null }),
        )
        .then([
          {
            type: 'DeploymentFinished',
            data: {
              appName: 'shop',
              deploymentId: id(2),
              outcome,
              current: current(1),
              routeId,
              keptReleases: [kept(1)],
            },
          },
        ]);
    }
  });

  test('a queued deployment that ends (cancelled, superseded) leaves the active one alone', () => {
    given(createdBy(), [accepted(1), accepted(2, true)])
      .when((app) =>
        decideFinish(live(app), { deploymentId: id(2), outcome: 'cancelled', release: null, routeId: null }),
      )
      .then([
        {
          type: 'DeploymentFinished',
          data: {
            appName: 'shop',
            deploymentId: id(2),
            outcome: 'cancelled',
            current: null,
            routeId: null,
            keptReleases: [],
          },
        },
      ]);
    const history = [
      accepted(1),
      accepted(2, true),
      {
        type: 'DeploymentFinished',
        data: {
          appName: 'shop',
          deploymentId: id(2),
          outcome: 'cancelled',
          current: null,
          routeId: null,
          keptReleases: [],
        },
      } as NewEvent,
    ];
    expect(given(createdBy(), history).state).toMatchObject({ active: id(1), queued: null });
  });

  test('a deployment neither active nor queued (finished already, or superseded) appends nothing', () => {
    given(createdBy(), [accepted(1), finished(1, 1, [1])])
      .when((app) => decideFinish(live(app), success(1)))
      .then([]);
    given(createdBy(), [accepted(1), accepted(2, true), accepted(3, true, id(2))])
      .when((app) =>
        decideFinish(live(app), { deploymentId: id(2), outcome: 'cancelled', release: null, routeId: null }),
      )
      .then([]);
  });

  test('kept releases: the serving one first, then the others newest first, at most releasesKept', () => {
    const history = [accepted(1), finished(1, 1, [1]), accepted(2), finished(2, 2, [2, 1]), accepted(3)];
    given(createdBy(), history, [finished(3, 3, [3, 2, 1]), accepted(4)])
      .when((app) => decideFinish(live(app), success(4)))
      .then([finished(4, 4, [4, 3, 2])]);
    const app = live(given(createdBy(), history).state);
    expect(keptAfter(app, release(3))).toEqual([kept(3), kept(2), kept(1)]);
    expect(keptAfter({ ...app, config: { ...app.config, releasesKept: 1 } }, release(3))).toEqual([kept(3)]);
  });

  test('a rollback puts a kept release first, with its commit and build time, and keeps the others', () => {
    const history = [accepted(1), finished(1, 1, [1]), accepted(2), finished(2, 2, [2, 1]), accepted(3)];
    // The rollback's deployment knows neither the commit (it fetched nothing) nor the build time.
    const rolledBack = { ...release(1, 20_100), commit: null, builtAt: t0.toISOString() };
    given(createdBy(), history)
      .when((app) =>
        decideFinish(live(app), { deploymentId: id(3), outcome: 'succeeded', release: rolledBack, routeId }),
      )
      .then([
        {
          type: 'DeploymentFinished',
          data: {
            appName: 'shop',
            deploymentId: id(3),
            outcome: 'succeeded',
            current: current(1, 20_100),
            routeId,
            keptReleases: [kept(1), kept(2)],
          },
        },
      ]);
  });
});

describe('the target of a rollback', () => {
  const history = [
    accepted(1),
    finished(1, 1, [1]),
    accepted(2),
    finished(2, 2, [2, 1]),
    accepted(3),
    finished(3, 3, [3, 2, 1]),
  ];
  const app = () => live(given(createdBy(), history).state);

  test('without a release: the newest kept one that does not serve', () => {
    expect(rollbackTarget(app(), undefined)).toEqual(kept(2));
  });

  test('by number or by id, when it is kept and not current', () => {
    expect(rollbackTarget(app(), 1)).toEqual(kept(1));
    expect(rollbackTarget(app(), id(2))).toEqual(kept(2));
  });

  test('the serving release, a release not kept, or no other kept release: a conflict naming release', () => {
    for (const target of [3, id(3), 7, id(9)]) {
      const error = refusal(() => rollbackTarget(app(), target));
      expect([error.code, error.field]).toEqual(['conflict', 'release']);
    }
    const only = live(given(createdBy(), [accepted(1), finished(1, 1, [1])]).state);
    const error = refusal(() => rollbackTarget(only, undefined));
    expect([error.code, error.field]).toEqual(['conflict', 'release']);
    const none = live(given(createdBy()).state);
    expect(refusal(() => rollbackTarget(none, undefined)).field).toBe('release');
  });
});
