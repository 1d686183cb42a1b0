import type { AppConfig, NewEvent, PhaseLimits, StoredEvent } from '#contracts';
import { deciderSpec, stored } from '#testing';
import { foldApp, type KeptRelease, type LiveApp } from './app.js';
import { currentDeadline, leaseExpired, overdue, type LeaseRecord } from './deadlines.js';
import { foldDeployment, type DeploymentState, type LiveDeployment } from './deployment.js';

const t0 = Date.parse('2030-01-01T00:00:00.000Z');
const given = deciderSpec(foldDeployment);
const s = (seconds: number) => seconds * 1000;
const iso = (ms: number) => new Date(ms).toISOString();

const DEP = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';
const LEASE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OTHER_LEASE = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const ROUTE = '33333333-3333-4333-8333-333333333333';
const R1 = '11111111-1111-4111-8111-111111111111';
const COMMIT = 'a'.repeat(40);
const TTL = 20_000;

const config: AppConfig = {
  hostname: 'shop.apps.example.test',
  source: { type: 'git', url: 'https://git.example.test/shop.git', ref: 'main', credentials: null },
  build: { root: null, install: null, build: null, start: null, portEnv: null, timeoutSeconds: null },
  healthCheck: { path: '/healthz', timeoutSeconds: 30, graceSeconds: 2, successes: 1 },
  env: {},
  secrets: [],
  drain: { delaySeconds: 5, stopTimeoutSeconds: 10 },
  limits: { memoryMb: 512, processes: 64 },
  releasesKept: 3,
  runtime: 'process',
};
/** Distinct limits, so that a deadline computed from the wrong one shows. */
const limits: PhaseLimits = {
  claim: 1800,
  fetch: 300,
  build: 900,
  start: 61,
  health: 32,
  switch: 62,
  verify: 20,
  drain: 45,
  cancel: 63,
  slack: 15,
};
const slack = s(limits.slack);
const kept1: KeptRelease = {
  releaseId: R1,
  number: 1,
  commit: '1'.repeat(40),
  builtAt: '2029-12-01T00:00:00.000Z',
};

const appEvents = (extra: (NewEvent | StoredEvent)[]): LiveApp => {
  const state = foldApp([
    ...stored(
      [
        { type: 'AppCreated', data: { appName: 'shop', agentId: 'web-a', config } },
        {
          type: 'DeploymentAccepted',
          data: {
            appName: 'shop',
            deploymentId: R1,
            number: 1,
            kind: 'deploy',
            queued: false,
            supersedes: null,
          },
        },
        {
          type: 'DeploymentFinished',
          data: {
            appName: 'shop',
            deploymentId: R1,
            outcome: 'succeeded',
            current: { releaseId: R1, number: 1, port: 20_001, commit: kept1.commit },
            routeId: ROUTE,
            keptReleases: [kept1],
          },
        },
      ],
      { aggregate: { type: 'app', id: 'shop' }, at: new Date(t0) },
    ),
    ...extra.map((event) =>
      'sequence' in event
        ? event
        : stored([event], { aggregate: { type: 'app', id: 'shop' }, at: new Date(t0) })[0]!,
    ),
  ]);
  if (state.status !== 'live') throw new Error('expected a live app');
  return state;
};
const accepted = (queued: boolean): NewEvent => ({
  type: 'DeploymentAccepted',
  data: { appName: 'shop', deploymentId: DEP, number: 2, kind: 'deploy', queued, supersedes: null },
});
/** DEP runs: it was accepted at t0 with nothing ahead of it. */
const app = appEvents([accepted(false)]);

// ---------------------------------------------------------------------------------------------------

const requested = (kind: 'deploy' | 'rollback'): NewEvent => ({
  type: 'DeploymentRequested',
  data: {
    deploymentId: DEP,
    appName: 'shop',
    agentId: 'web-a',
    kind,
    ref: kind === 'deploy' ? 'main' : null,
    upload: null,
    targetRelease: kind === 'deploy' ? null : { releaseId: R1, number: 1 },
    previous: { releaseId: R1, number: 1, port: 20_001, commit: kept1.commit },
    config,
    routeId: ROUTE,
    limits,
  },
});
const claimed: NewEvent = {
  type: 'DeploymentClaimed',
  data: { deploymentId: DEP, leaseId: LEASE, agentVersion: '1.2.3', leaseTtlMs: TTL },
};
const fetched: NewEvent = {
  type: 'DeploymentFetched',
  data: { deploymentId: DEP, commit: COMMIT, sourceDigest: 'b'.repeat(64), bytes: 10 },
};
const built: NewEvent = {
  type: 'DeploymentBuilt',
  data: {
    deploymentId: DEP,
    release: { releaseId: DEP, number: 2 },
    artifactDigest: 'c'.repeat(64),
    manifest: {
      origin: 'node-default',
      root: '.',
      install: null,
      build: [],
      start: 'node server.js',
      portEnv: 'PORT',
      healthPath: '/healthz',
    },
    durationMs: 1,
  },
};
const started = (releaseId: string): NewEvent => ({
  type: 'DeploymentStarted',
  data: { deploymentId: DEP, releaseId, port: 20_003 },
});
const healthy = (releaseId: string): NewEvent => ({
  type: 'DeploymentHealthy',
  data: { deploymentId: DEP, releaseId, probes: 1, durationMs: 1 },
});
const switched: NewEvent = {
  type: 'DeploymentSwitched',
  data: {
    deploymentId: DEP,
    routeId: ROUTE,
    routeRevision: 2,
    target: { host: '2001:db8::a', port: 20_003 },
  },
};
const verified: NewEvent = {
  type: 'DeploymentVerified',
  data: { deploymentId: DEP, fronts: [], skipped: 'none' },
};
const verificationFailed: NewEvent = {
  type: 'DeploymentVerificationFailed',
  data: { deploymentId: DEP, reason: 'the front got 502', fronts: [] },
};
const cancelRequested: NewEvent = {
  type: 'DeploymentCancelRequested',
  data: { deploymentId: DEP, reason: 'by alice' },
};

/** The n-th event of a history happens n seconds after t0: each status is entered at its own time. */
const timed = (events: NewEvent[]): StoredEvent[] =>
  events.flatMap((event, i) =>
    stored([event], { aggregate: { type: 'deployment', id: DEP }, at: new Date(t0 + s(i)) }),
  );
/** When the last event of a history happened. */
const lastAt = (events: NewEvent[]) => t0 + s(events.length - 1);

const deploy = [requested('deploy'), claimed, fetched, built, started(DEP), healthy(DEP), switched];
const upTo = (n: number) => deploy.slice(0, n + 1);

const failed = (phase: string, reason: string): NewEvent[] => [
  {
    type: 'DeploymentFailed',
    data: { deploymentId: DEP, phase, reason, exitCode: null, signal: null, lastLines: [], reverted: false },
  } as NewEvent,
];
const succeededUndrained: NewEvent[] = [
  {
    type: 'DeploymentSucceeded',
    data: {
      deploymentId: DEP,
      release: { releaseId: DEP, number: 2, port: 20_003, commit: COMMIT },
      drained: false,
      keptReleases: [{ releaseId: DEP, number: 2, commit: COMMIT, builtAt: iso(t0 + s(3)) }, kept1],
    },
  },
];

/** A lease that holds far beyond every deadline here: only the phase deadlines apply. */
const holding: LeaseRecord = { leaseId: LEASE, expiresAt: iso(t0 + s(86_400)) };

const stateOf = (history: NewEvent[]): LiveDeployment => {
  const state = given(timed(history)).state;
  if (state.status === 'absent') throw new Error('expected a deployment');
  return state;
};
const at =
  (now: number, lease: LeaseRecord | null = holding, appState: LiveApp | null = app) =>
  (state: DeploymentState) =>
    overdue(state, appState, lease, now);

describe('every status has a deadline: not overdue 1 ms before it, overdue after it', () => {
  const cases: [string, NewEvent[], number, NewEvent[]][] = [
    [
      'requested (active, waiting for the claim)',
      upTo(0),
      t0 + s(limits.claim) + slack,
      failed('claimed', 'agent web-a did not claim it in 1800 s (offline, or busy building another app)'),
    ],
    [
      'claimed (fetching)',
      upTo(1),
      lastAt(upTo(1)) + s(limits.fetch) + slack,
      failed('fetched', 'the source was not fetched in 300 s'),
    ],
    [
      'fetched (building)',
      upTo(2),
      lastAt(upTo(2)) + s(limits.build) + slack,
      failed('built', 'the build did not finish in 900 s'),
    ],
    [
      'built (starting)',
      upTo(3),
      lastAt(upTo(3)) + s(limits.start) + slack,
      failed('started', 'the release did not start in 61 s'),
    ],
    [
      'started (gate)',
      upTo(4),
      lastAt(upTo(4)) + s(limits.health) + slack,
      failed('healthy', 'the health check did not pass in 32 s'),
    ],
    [
      'healthy (switching)',
      upTo(5),
      lastAt(upTo(5)) + s(limits.switch) + slack,
      failed('switched', 'the route did not switch in 62 s'),
    ],
    [
      'switched (verifying)',
      upTo(6),
      lastAt(upTo(6)) + s(limits.verify) + slack,
      [
        {
          type: 'DeploymentVerificationFailed',
          data: { deploymentId: DEP, reason: 'the front did not verify the release in 20 s', fronts: [] },
        },
      ],
    ],
    [
      'reverting',
      [...deploy, verificationFailed],
      t0 + s(7) + s(limits.switch) + slack,
      failed('verified', 'the agent did not put the traffic back in 62 s'),
    ],
    ['verified (draining)', [...deploy, verified], t0 + s(7) + s(limits.drain) + slack, succeededUndrained],
    [
      'a rollback, claimed (starting the kept release)',
      [requested('rollback'), claimed],
      t0 + s(1) + s(limits.start) + slack,
      failed('started', 'the release did not start in 61 s'),
    ],
    [
      'a rollback, started (gate)',
      [requested('rollback'), claimed, started(R1)],
      t0 + s(2) + s(limits.health) + slack,
      failed('healthy', 'the health check did not pass in 32 s'),
    ],
    [
      'cancel requested while building: the cancel deadline, from the request',
      [...upTo(2), cancelRequested],
      t0 + s(3) + s(limits.cancel) + slack,
      [
        {
          type: 'DeploymentCancelled',
          data: {
            deploymentId: DEP,
            phase: 'built',
            reason: 'requested',
            supersededBy: null,
            reverted: false,
          },
        },
      ],
    ],
    [
      'cancel requested after the switch',
      [...deploy, cancelRequested],
      t0 + s(7) + s(limits.cancel) + slack,
      [
        {
          type: 'DeploymentCancelled',
          data: {
            deploymentId: DEP,
            phase: 'verified',
            reason: 'requested',
            supersededBy: null,
            reverted: false,
          },
        },
      ],
    ],
    [
      'cancel requested, then verified: the drain deadline, and success',
      [...deploy, cancelRequested, verified],
      t0 + s(8) + s(limits.drain) + slack,
      succeededUndrained,
    ],
  ];

  test.each(cases)('%s', (_name, history, deadline, events) => {
    expect(currentDeadline(stateOf(history), app)?.at).toBe(deadline);
    given(timed(history))
      .when(at(deadline - 1))
      .then([]);
    given(timed(history)).when(at(deadline)).then([]);
    given(timed(history))
      .when(at(deadline + 1))
      .then(events);
    // Appended, the event ends the deadline's status: nothing more is overdue for it.
    const after = given(timed(history), stored(events, { at: new Date(deadline + 1) })).state;
    expect(after.status).not.toBe(stateOf(history).status);
  });

  test('the claim deadline of a deployment that waited in the queue starts when it became active', () => {
    const activatedAt = t0 + s(600);
    const queuedThenActive = appEvents([
      accepted(true),
      ...stored([{ type: 'DeploymentActivated', data: { appName: 'shop', deploymentId: DEP } }], {
        aggregate: { type: 'app', id: 'shop' },
        at: new Date(activatedAt),
      }),
    ]);
    expect(queuedThenActive).toMatchObject({ active: DEP, activeSince: iso(activatedAt) });
    const deadline = activatedAt + s(limits.claim) + slack;
    expect(currentDeadline(stateOf(upTo(0)), queuedThenActive)?.at).toBe(deadline);
    given(timed(upTo(0)))
      .when(at(deadline - 1, null, queuedThenActive))
      .then([]);
    given(timed(upTo(0)))
      .when(at(deadline + 1, null, queuedThenActive))
      .then(
        failed('claimed', 'agent web-a did not claim it in 1800 s (offline, or busy building another app)'),
      );
  });

  test('a cancel deadline replaces the phase deadline it outlasts', () => {
    // Cancelled 299 s into the fetch: the fetch deadline passes, the cancel one has not yet.
    const history = timed(upTo(1));
    const cancelAt = t0 + s(300);
    const withCancel = [...history, ...stored([cancelRequested], { at: new Date(cancelAt) })];
    const fetchDeadline = t0 + s(1) + s(limits.fetch) + slack;
    given(withCancel)
      .when(at(fetchDeadline + 1))
      .then([]);
    given(withCancel)
      .when(at(cancelAt + s(limits.cancel) + slack + 1))
      .then([
        {
          type: 'DeploymentCancelled',
          data: {
            deploymentId: DEP,
            phase: 'fetched',
            reason: 'requested',
            supersededBy: null,
            reverted: false,
          },
        },
      ]);
  });
});

describe('no deadline', () => {
  test('a queued deployment waits without one (the active one bounds it), and so does one the app lacks', () => {
    const queued = appEvents([
      {
        type: 'DeploymentAccepted',
        data: {
          appName: 'shop',
          deploymentId: R1,
          number: 3,
          kind: 'deploy',
          queued: false,
          supersedes: null,
        },
      },
      accepted(true),
    ]);
    expect(queued).toMatchObject({ queued: DEP });
    expect(currentDeadline(stateOf(upTo(0)), queued)).toBeNull();
    expect(currentDeadline(stateOf(upTo(0)), null)).toBeNull();
    given(timed(upTo(0)))
      .when(at(t0 + s(86_400 * 365), null, queued))
      .then([]);
    given(timed(upTo(0)))
      .when(at(t0 + s(86_400 * 365), null, null))
      .then([]);
  });

  test('an ended deployment has none, and nothing is ever overdue for it', () => {
    for (const end of [...failed('built', 'x'), ...succeededUndrained]) {
      const history = [...timed(upTo(2)), ...stored([end], { at: new Date(t0 + s(3)) })];
      expect(currentDeadline(given(history).state as LiveDeployment, app)).toBeNull();
      given(history)
        .when(at(t0 + s(86_400 * 365), null))
        .then([]);
    }
    given().when(at(t0, null)).then([]);
  });
});

describe('the lease', () => {
  const claimedAt = t0 + s(1);
  const history = timed(upTo(2)); // claimed at t0+1 s, fetched at t0+2 s
  const record = (expiresAt: number, leaseId = LEASE): LeaseRecord => ({
    leaseId,
    expiresAt: iso(expiresAt),
  });
  const abandoned = (phase: string, lastRenewalAt: string | null): NewEvent[] => [
    {
      type: 'DeploymentAbandoned',
      data: { deploymentId: DEP, phase, reason: 'lease-expired', lastRenewalAt },
    } as NewEvent,
  ];

  test('expired by its record: abandoned at the phase it worked towards, with the last renewal', () => {
    const expiresAt = t0 + s(60);
    given(history)
      .when(at(expiresAt, record(expiresAt)))
      .then([]);
    given(history)
      .when(at(expiresAt + 1, record(expiresAt)))
      .then(abandoned('built', iso(expiresAt - TTL)));
    expect(leaseExpired(stateOf(upTo(2)), record(expiresAt), expiresAt)).toBe(false);
    expect(leaseExpired(stateOf(upTo(2)), record(expiresAt), expiresAt + 1)).toBe(true);
  });

  test('a renewed record keeps an old claim alive', () => {
    given(history)
      .when(at(claimedAt + s(3600), record(claimedAt + s(3600) + TTL)))
      .then(failed('built', 'the build did not finish in 900 s'));
    given(history)
      .when(at(claimedAt + s(600), record(claimedAt + s(600) + 1)))
      .then([]);
  });

  test('no record: nothing while the claim is younger than one lease, abandoned once older', () => {
    given(history)
      .when(at(claimedAt + TTL, null))
      .then([]);
    given(history)
      .when(at(claimedAt + TTL + 1, null))
      .then(abandoned('built', null));
    // A record of another lease is no record of this one.
    given(history)
      .when(at(claimedAt + TTL, record(t0 + s(86_400), OTHER_LEASE)))
      .then([]);
    given(history)
      .when(at(claimedAt + TTL + 1, record(t0 + s(86_400), OTHER_LEASE)))
      .then(abandoned('built', null));
  });

  test('an unclaimed deployment has no lease to expire', () => {
    expect(leaseExpired(stateOf(upTo(0)), null, t0 + s(86_400))).toBe(false);
    given(timed(upTo(0)))
      .when(at(t0 + s(60), null))
      .then([]);
  });

  test('the lease runs out before the phase deadline: abandoned, not failed', () => {
    const late = t0 + s(2) + s(limits.build) + slack + 1;
    given(history)
      .when(at(late, record(t0 + s(30))))
      .then(abandoned('built', iso(t0 + s(30) - TTL)));
  });

  test('after verified, an expired lease (or none) means success without a drain', () => {
    const verifiedHistory = timed([...deploy, verified]);
    given(verifiedHistory)
      .when(at(t0 + s(30), record(t0 + s(29))))
      .then(succeededUndrained);
    given(verifiedHistory)
      .when(at(claimedAt + TTL + 1, null))
      .then(succeededUndrained);
  });

  test('while reverting or cancelling, an expired lease abandons', () => {
    given(timed([...deploy, verificationFailed]))
      .when(at(claimedAt + TTL + 1, null))
      .then(abandoned('verified', null));
    given(timed([...upTo(3), cancelRequested]))
      .when(at(claimedAt + TTL + 1, null))
      .then(abandoned('started', null));
  });
});
