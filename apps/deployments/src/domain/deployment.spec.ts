import type { AppConfig, NewEvent, PhaseLimits, PhaseReport } from '#contracts';
import { deciderSpec, refusal, stored } from '#testing';
import { foldApp, type KeptRelease, type LiveApp } from './app.js';
import {
  checkLeaseHolder,
  decideAgentGone,
  decideCancel,
  decideClaim,
  decideReport,
  decideSuperseded,
  decideVerification,
  drainTarget,
  foldDeployment,
  type Claim,
  type DeploymentState,
  type LiveDeployment,
} from './deployment.js';

const t0 = new Date('2030-01-01T00:00:00.000Z');
const given = deciderSpec(foldDeployment, { aggregate: { type: 'deployment', id: 'x' }, at: t0 });

const DEP = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';
const NEWER = 'eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee';
const LEASE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OTHER_LEASE = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const ROUTE = '33333333-3333-4333-8333-333333333333';
const OTHER_ROUTE = '44444444-4444-4444-8444-444444444444';
/** Release 1 (kept, serving before this deployment) and release 2 (kept, serving before the rollback). */
const R1 = '11111111-1111-4111-8111-111111111111';
const R2 = '22222222-2222-4222-8222-222222222222';
const COMMIT = 'a'.repeat(40);

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
const limits: PhaseLimits = {
  claim: 1800,
  fetch: 300,
  build: 900,
  start: 60,
  health: 32,
  switch: 60,
  verify: 20,
  drain: 45,
  cancel: 60,
  slack: 15,
};

const kept1: KeptRelease = {
  releaseId: R1,
  number: 1,
  commit: '1'.repeat(40),
  builtAt: '2029-12-01T00:00:00.000Z',
};
const kept2: KeptRelease = {
  releaseId: R2,
  number: 2,
  commit: '2'.repeat(40),
  builtAt: '2029-12-02T00:00:00.000Z',
};

// ---------------------------------------------------------------------------------------------------
// The app the deployment belongs to.

function appOf(events: NewEvent[]): LiveApp {
  const state = foldApp(stored(events, { aggregate: { type: 'app', id: 'shop' }, at: t0 }));
  if (state.status !== 'live') throw new Error('expected a live app');
  return state;
}
const appCreated: NewEvent = { type: 'AppCreated', data: { appName: 'shop', agentId: 'web-a', config } };
const acceptedAs = (
  deploymentId: string,
  number: number,
  kind: 'deploy' | 'rollback' = 'deploy',
): NewEvent => ({
  type: 'DeploymentAccepted',
  data: { appName: 'shop', deploymentId, number, kind, queued: false, supersedes: null },
});
const finishedWith = (deploymentId: string, current: KeptRelease, keptReleases: KeptRelease[]): NewEvent => ({
  type: 'DeploymentFinished',
  data: {
    appName: 'shop',
    deploymentId,
    outcome: 'succeeded',
    current: {
      releaseId: current.releaseId,
      number: current.number,
      port: 20_000 + current.number,
      commit: current.commit,
    },
    routeId: ROUTE,
    keptReleases,
  },
});
/** Release 1 serves; this deployment is number 2. */
const app = appOf([appCreated, acceptedAs(R1, 1), finishedWith(R1, kept1, [kept1]), acceptedAs(DEP, 2)]);
/** Release 2 serves, 1 is kept; the rollback to 1 is number 3. */
const rollbackApp = appOf([
  appCreated,
  acceptedAs(R1, 1),
  finishedWith(R1, kept1, [kept1]),
  acceptedAs(R2, 2),
  finishedWith(R2, kept2, [kept2, kept1]),
  acceptedAs(DEP, 3, 'rollback'),
]);

// ---------------------------------------------------------------------------------------------------
// A deployment's events.

const requestedDeploy: NewEvent = {
  type: 'DeploymentRequested',
  data: {
    deploymentId: DEP,
    appName: 'shop',
    agentId: 'web-a',
    kind: 'deploy',
    ref: 'main',
    upload: null,
    targetRelease: null,
    previous: { releaseId: R1, number: 1, port: 20_001, commit: kept1.commit },
    config,
    routeId: ROUTE,
    limits,
  },
};
const requestedRollback: NewEvent = {
  type: 'DeploymentRequested',
  data: {
    deploymentId: DEP,
    appName: 'shop',
    agentId: 'web-a',
    kind: 'rollback',
    ref: null,
    upload: null,
    targetRelease: { releaseId: R1, number: 1 },
    previous: { releaseId: R2, number: 2, port: 20_002, commit: kept2.commit },
    config,
    routeId: ROUTE,
    limits,
  },
};
const claimed = (leaseId = LEASE): NewEvent => ({
  type: 'DeploymentClaimed',
  data: { deploymentId: DEP, leaseId, agentVersion: '1.2.3', leaseTtlMs: 20_000 },
});

const reports = {
  fetched: { phase: 'fetched', commit: COMMIT, sourceDigest: 'b'.repeat(64), bytes: 4096 },
  built: {
    phase: 'built',
    release: { releaseId: DEP, number: 2 },
    artifactDigest: 'c'.repeat(64),
    manifest: {
      origin: 'node-default',
      root: '.',
      install: 'npm ci',
      build: ['npm run build'],
      start: 'npm start',
      portEnv: 'PORT',
      healthPath: '/healthz',
    },
    durationMs: 12_000,
  },
  started: { phase: 'started', releaseId: DEP, port: 20_003 },
  healthy: { phase: 'healthy', releaseId: DEP, probes: 2, durationMs: 1500 },
  switched: {
    phase: 'switched',
    routeId: ROUTE,
    routeRevision: 7,
    target: { host: '2001:db8::a', port: 20_003 },
  },
  drained: { phase: 'drained', previousReleaseId: R1, stoppedBy: 'exit' },
} satisfies Record<string, PhaseReport>;
const rollbackReports = {
  started: { phase: 'started', releaseId: R1, port: 20_003 },
  healthy: { phase: 'healthy', releaseId: R1, probes: 2, durationMs: 1500 },
  switched: reports.switched,
  drained: { phase: 'drained', previousReleaseId: R2, stoppedBy: 'kill' },
} satisfies Record<string, PhaseReport>;

const EVENT_OF = {
  fetched: 'DeploymentFetched',
  built: 'DeploymentBuilt',
  started: 'DeploymentStarted',
  healthy: 'DeploymentHealthy',
  switched: 'DeploymentSwitched',
  drained: 'DeploymentDrained',
} as const;
/** The event a phase report appends. */
function eventOf(report: PhaseReport): NewEvent {
  const { phase, ...data } = report;
  return { type: EVENT_OF[phase as keyof typeof EVENT_OF], data: { deploymentId: DEP, ...data } } as NewEvent;
}

const fronts = [{ url: 'https://shop.apps.example.test/healthz', status: 200, error: null, attempts: 1 }];
const verified: NewEvent = { type: 'DeploymentVerified', data: { deploymentId: DEP, fronts, skipped: null } };
const verificationFailed: NewEvent = {
  type: 'DeploymentVerificationFailed',
  data: {
    deploymentId: DEP,
    reason: 'the front got 502 from https://shop.apps.example.test/healthz',
    fronts,
  },
};
const cancelRequested: NewEvent = {
  type: 'DeploymentCancelRequested',
  data: { deploymentId: DEP, reason: 'cancelled by admin alice' },
};
const failedEvent: NewEvent = {
  type: 'DeploymentFailed',
  data: {
    deploymentId: DEP,
    phase: 'built',
    reason: 'npm run build exited with 1',
    exitCode: 1,
    signal: null,
    lastLines: ['error TS2304'],
    reverted: false,
  },
};

/** The history of a deploy up to each status. */
const deployTo = {
  requested: [requestedDeploy],
  claimed: [requestedDeploy, claimed()],
  fetched: [requestedDeploy, claimed(), eventOf(reports.fetched)],
  built: [requestedDeploy, claimed(), eventOf(reports.fetched), eventOf(reports.built)],
  started: [
    requestedDeploy,
    claimed(),
    eventOf(reports.fetched),
    eventOf(reports.built),
    eventOf(reports.started),
  ],
  healthy: [
    requestedDeploy,
    claimed(),
    eventOf(reports.fetched),
    eventOf(reports.built),
    eventOf(reports.started),
    eventOf(reports.healthy),
  ],
  switched: [
    requestedDeploy,
    claimed(),
    eventOf(reports.fetched),
    eventOf(reports.built),
    eventOf(reports.started),
    eventOf(reports.healthy),
    eventOf(reports.switched),
  ],
} satisfies Record<string, NewEvent[]>;
const deployToVerified = [...deployTo.switched, verified];
const deployToReverting = [...deployTo.switched, verificationFailed];
const rollbackTo = {
  requested: [requestedRollback],
  claimed: [requestedRollback, claimed()],
  started: [requestedRollback, claimed(), eventOf(rollbackReports.started)],
  healthy: [requestedRollback, claimed(), eventOf(rollbackReports.started), eventOf(rollbackReports.healthy)],
  switched: [
    requestedRollback,
    claimed(),
    eventOf(rollbackReports.started),
    eventOf(rollbackReports.healthy),
    eventOf(rollbackReports.switched),
  ],
} satisfies Record<string, NewEvent[]>;

/** Claimed statuses before the point of no return, with the phase each works towards. */
const RUNNING = [
  ['claimed', deployTo.claimed, 'fetched'],
  ['fetched', deployTo.fetched, 'built'],
  ['built', deployTo.built, 'started'],
  ['started', deployTo.started, 'healthy'],
  ['healthy', deployTo.healthy, 'switched'],
  ['switched', deployTo.switched, 'verified'],
] as const;

const report =
  (what: PhaseReport, options: { leaseId?: string; agentId?: string; app?: LiveApp | null } = {}) =>
  (state: DeploymentState) =>
    decideReport(
      state,
      DEP,
      options.agentId ?? 'web-a',
      options.leaseId ?? LEASE,
      what,
      'app' in options ? (options.app ?? null) : app,
    );
const claim =
  (overrides: Partial<Claim> = {}) =>
  (state: DeploymentState) =>
    decideClaim(state, DEP, {
      agentId: 'web-a',
      leaseId: LEASE,
      agentVersion: '1.2.3',
      leaseTtlMs: 20_000,
      active: true,
      ...overrides,
    });
const live = (state: DeploymentState): LiveDeployment => {
  if (state.status === 'absent') throw new Error('expected a deployment');
  return state;
};

const succeededDeploy = (drained: boolean): NewEvent => ({
  type: 'DeploymentSucceeded',
  data: {
    deploymentId: DEP,
    release: { releaseId: DEP, number: 2, port: 20_003, commit: COMMIT },
    drained,
    keptReleases: [{ releaseId: DEP, number: 2, commit: COMMIT, builtAt: t0.toISOString() }, kept1],
  },
});
const abandonedAt = (phase: string, reason: string): NewEvent =>
  ({
    type: 'DeploymentAbandoned',
    data: { deploymentId: DEP, phase, reason, lastRenewalAt: null },
  }) as NewEvent;
const cancelledAt = (phase: string, reverted: boolean): NewEvent =>
  ({
    type: 'DeploymentCancelled',
    data: { deploymentId: DEP, phase, reason: 'requested', supersededBy: null, reverted },
  }) as NewEvent;

// ---------------------------------------------------------------------------------------------------

describe('the fold', () => {
  test('a request starts waiting, with the snapshot it carries', () => {
    expect(given(deployTo.requested).state).toMatchObject({
      status: 'requested',
      deploymentId: DEP,
      agentId: 'web-a',
      kind: 'deploy',
      ref: 'main',
      limits,
      routeId: ROUTE,
      lease: null,
      release: null,
      cancelRequested: null,
      phases: { requested: t0.toISOString() },
    });
    expect(given(rollbackTo.requested).state).toMatchObject({
      kind: 'rollback',
      release: { releaseId: R1, number: 1, builtAt: null },
    });
  });

  test('every phase is timestamped when it is reached, and the status entered then starts its deadline', () => {
    const times = deployToVerified.map((_, i) => new Date(t0.getTime() + i * 1000));
    const history = deployToVerified.flatMap((event, i) =>
      stored([event], { aggregate: { type: 'deployment', id: DEP }, at: times[i] }),
    );
    const state = live(given(history).state);
    const iso = (i: number) => times[i]!.toISOString();
    expect(state).toMatchObject({
      status: 'verified',
      enteredAt: iso(7),
      phases: {
        requested: iso(0),
        claimed: iso(1),
        fetched: iso(2),
        built: iso(3),
        started: iso(4),
        healthy: iso(5),
        switched: iso(6),
        verified: iso(7),
      },
      lease: { leaseId: LEASE, ttlMs: 20_000, claimedAt: iso(1) },
      commit: COMMIT,
      release: { releaseId: DEP, number: 2, builtAt: iso(3) },
      port: 20_003,
      routeRevision: 7,
      verification: 'passed',
    });
  });
});

describe('claim', () => {
  test('the active deployment, waiting, is claimed by its agent with a lease', () => {
    given(deployTo.requested).when(claim()).then([claimed()]);
    given(rollbackTo.requested).when(claim()).then([claimed()]);
  });

  test('a retry with the same lease appends nothing, at any step before the end', () => {
    given(deployTo.claimed).when(claim()).then([]);
    given(deployTo.healthy).when(claim()).then([]);
  });

  test('another lease on a claimed deployment is a conflict', () => {
    given(deployTo.claimed)
      .when(claim({ leaseId: OTHER_LEASE }))
      .thenRefuses('conflict', 'deploymentId');
  });

  test('a queued deployment cannot be claimed; neither can a finished one, even with its lease', () => {
    given(deployTo.requested)
      .when(claim({ active: false }))
      .thenRefuses('conflict', 'deploymentId');
    given(deployTo.claimed, [failedEvent]).when(claim()).thenRefuses('conflict', 'deploymentId');
    given(deployTo.requested, [cancelledAt('claimed', false)])
      .when(claim())
      .thenRefuses('conflict', 'deploymentId');
  });

  test('a foreign agent gets 403, the same answer whether the deployment exists', () => {
    const existing = given(deployTo.requested)
      .when(claim({ agentId: 'web-b' }))
      .thenRefuses('forbidden', 'deploymentId');
    const absent = given()
      .when(claim({ agentId: 'web-b' }))
      .thenRefuses('forbidden', 'deploymentId');
    expect(absent.message).toBe(existing.message);
    expect(existing.message).toBe(`agent web-b has no deployment ${DEP}`);
  });
});

describe('a deploy: every legal transition', () => {
  test('claimed → fetched → built → started → healthy → switched, one event per report', () => {
    given(deployTo.claimed)
      .when(report(reports.fetched))
      .then([eventOf(reports.fetched)]);
    given(deployTo.fetched)
      .when(report(reports.built))
      .then([eventOf(reports.built)]);
    given(deployTo.built)
      .when(report(reports.started))
      .then([eventOf(reports.started)]);
    given(deployTo.started)
      .when(report(reports.healthy))
      .then([eventOf(reports.healthy)]);
    given(deployTo.healthy)
      .when(report(reports.switched))
      .then([eventOf(reports.switched)]);
    for (const [status, history] of RUNNING) expect(given(history).state.status).toBe(status);
  });

  test('switched → verified by the front; verified → drained and succeeded in one decision', () => {
    given(deployTo.switched)
      .when((state) => decideVerification(state, { passed: true, fronts, skipped: null }))
      .then([verified]);
    given(deployToVerified)
      .when(report(reports.drained))
      .then([eventOf(reports.drained), succeededDeploy(true)]);
    const done = live(given(deployToVerified, [eventOf(reports.drained), succeededDeploy(true)]).state);
    expect(done).toMatchObject({ status: 'succeeded', drained: true, finishedAt: t0.toISOString() });
  });

  test('without the app at hand, success keeps no releases (the app computes them when it finishes)', () => {
    given(deployToVerified)
      .when(report(reports.drained, { app: null }))
      .then([
        eventOf(reports.drained),
        { ...succeededDeploy(true), data: { ...succeededDeploy(true).data, keptReleases: [] } } as NewEvent,
      ]);
  });

  test('switched → reverting when the front cannot verify; reverted → failed(reverted)', () => {
    given(deployTo.switched)
      .when((state) =>
        decideVerification(state, {
          passed: false,
          fronts,
          reason: verificationFailed.data.reason as string,
        }),
      )
      .then([verificationFailed]);
    const reverting = live(given(deployToReverting).state);
    expect(reverting).toMatchObject({
      status: 'reverting',
      verification: 'failed',
      failure: { phase: 'verified' },
    });
    given(deployToReverting)
      .when(report({ phase: 'reverted' }))
      .then([
        {
          type: 'DeploymentFailed',
          data: {
            deploymentId: DEP,
            phase: 'verified',
            reason: verificationFailed.data.reason,
            exitCode: null,
            signal: null,
            lastLines: [],
            reverted: true,
          },
        } as NewEvent,
      ]);
  });

  test('the agent reports a failure in any status before verified, reverted or not', () => {
    const failure = {
      phase: 'failed',
      failedPhase: 'built',
      reason: 'npm run build exited with 1',
      exitCode: 1,
      signal: null,
      lastLines: ['error TS2304'],
      reverted: false,
    } satisfies PhaseReport;
    for (const [, history] of RUNNING) given(history).when(report(failure)).then([failedEvent]);
    given(deployToReverting)
      .when(report({ ...failure, failedPhase: 'verified', reverted: true }))
      .then([
        { ...failedEvent, data: { ...failedEvent.data, phase: 'verified', reverted: true } } as NewEvent,
      ]);
    expect(given(deployTo.fetched, [failedEvent]).state).toMatchObject({
      status: 'failed',
      failure: {
        phase: 'built',
        reason: 'npm run build exited with 1',
        exitCode: 1,
        lastLines: ['error TS2304'],
      },
    });
  });
});

describe('a rollback: no fetched, no built', () => {
  test('claimed → started (the target release) → healthy → switched → verified → drained and succeeded', () => {
    const withApp = { app: rollbackApp };
    given(rollbackTo.claimed)
      .when(report(rollbackReports.started, withApp))
      .then([eventOf(rollbackReports.started)]);
    given(rollbackTo.started)
      .when(report(rollbackReports.healthy, withApp))
      .then([eventOf(rollbackReports.healthy)]);
    given(rollbackTo.healthy)
      .when(report(rollbackReports.switched, withApp))
      .then([eventOf(rollbackReports.switched)]);
    given(rollbackTo.switched)
      .when((state) => decideVerification(state, { passed: true, fronts, skipped: null }))
      .then([verified]);
    // The release keeps the commit and the build time the app knows of it.
    given(rollbackTo.switched, [verified])
      .when(report(rollbackReports.drained, withApp))
      .then([
        eventOf(rollbackReports.drained),
        {
          type: 'DeploymentSucceeded',
          data: {
            deploymentId: DEP,
            release: { releaseId: R1, number: 1, port: 20_003, commit: kept1.commit },
            drained: true,
            keptReleases: [kept1, kept2],
          },
        },
      ]);
  });

  test('skipping a phase of a rollback is a conflict naming report.phase', () => {
    const withApp = { app: rollbackApp };
    for (const phase of ['healthy', 'switched', 'drained'] as const) {
      given(rollbackTo.claimed)
        .when(report(rollbackReports[phase], withApp))
        .thenRefuses('conflict', 'report.phase');
    }
    for (const phase of ['switched', 'drained'] as const) {
      given(rollbackTo.started)
        .when(report(rollbackReports[phase], withApp))
        .thenRefuses('conflict', 'report.phase');
    }
    given(rollbackTo.switched)
      .when(report(rollbackReports.drained, withApp))
      .thenRefuses('conflict', 'report.phase');
  });

  test('fetched and built are refused from claimed; the started release must be the target', () => {
    given(rollbackTo.claimed)
      .when(report(reports.fetched, { app: rollbackApp }))
      .thenRefuses('conflict', 'report.phase');
    given(rollbackTo.claimed)
      .when(report(reports.built, { app: rollbackApp }))
      .thenRefuses('conflict', 'report.phase');
    given(rollbackTo.claimed)
      .when(report({ phase: 'started', releaseId: R2, port: 20_003 }, { app: rollbackApp }))
      .thenRefuses('invalid', 'report.releaseId');
    given(rollbackTo.started)
      .when(report({ ...rollbackReports.healthy, releaseId: DEP }, { app: rollbackApp }))
      .thenRefuses('invalid', 'report.releaseId');
  });
});

describe('illegal transitions', () => {
  const order = ['fetched', 'built', 'started', 'healthy', 'switched', 'drained'] as const;

  test('skipping a phase, or going ahead of it, is a conflict naming report.phase', () => {
    const cases: [string, NewEvent[], number][] = [
      ['claimed', deployTo.claimed, 0],
      ['fetched', deployTo.fetched, 1],
      ['built', deployTo.built, 2],
      ['started', deployTo.started, 3],
      ['healthy', deployTo.healthy, 4],
      ['switched', deployTo.switched, 5],
      ['reverting', deployToReverting, 5],
    ];
    for (const [, history, reached] of cases) {
      const next = reached; // the index of the legal next report (switched: none but the front's verdict)
      for (const [i, phase] of order.entries()) {
        if (i < next) continue; // recorded already: see the repeated reports
        if (i === next && next < 5) continue; // the legal one
        given(history).when(report(reports[phase])).thenRefuses('conflict', 'report.phase');
      }
    }
  });

  test('after verified only success can come: failed, cancelled and reverted are refused', () => {
    const failure = {
      phase: 'failed',
      failedPhase: 'drained',
      reason: 'stop timed out',
      exitCode: null,
      signal: 'SIGKILL',
      lastLines: [],
      reverted: false,
    } satisfies PhaseReport;
    given(deployToVerified).when(report(failure)).thenRefuses('conflict', 'report.phase');
    given(deployToVerified)
      .when(report({ phase: 'reverted' }))
      .thenRefuses('conflict', 'report.phase');
    given(deployTo.healthy, [cancelRequested], [eventOf(reports.switched), verified])
      .when(report({ phase: 'cancelled', reverted: true }))
      .thenRefuses('conflict', 'report.phase');
  });

  test('reverted with nothing to revert, cancelled with no cancel asked for: conflicts', () => {
    for (const [, history] of RUNNING) {
      given(history)
        .when(report({ phase: 'reverted' }))
        .thenRefuses('conflict', 'report.phase');
      given(history)
        .when(report({ phase: 'cancelled', reverted: false }))
        .thenRefuses('conflict', 'report.phase');
    }
    // Before the switch there is no traffic to put back, even when cancelling.
    given(deployTo.healthy, [cancelRequested])
      .when(report({ phase: 'reverted' }))
      .thenRefuses('conflict', 'report.phase');
  });

  test('reports before the claim or after the end: the lease is lost', () => {
    given(deployTo.requested).when(report(reports.fetched)).thenRefuses('conflict', 'leaseId');
    given(deployTo.claimed, [failedEvent]).when(report(reports.fetched)).thenRefuses('conflict', 'leaseId');
    given(deployTo.claimed, [failedEvent])
      .when(report({ phase: 'cancelled', reverted: false }))
      .thenRefuses('conflict', 'leaseId');
  });

  test('a report must prove what this deployment did', () => {
    given(deployTo.fetched)
      .when(report({ ...reports.built, release: { releaseId: R2, number: 2 } }))
      .thenRefuses('invalid', 'report.release.releaseId');
    given(deployTo.fetched)
      .when(report({ ...reports.built, release: { releaseId: DEP, number: 3 } }))
      .thenRefuses('invalid', 'report.release.number');
    given(deployTo.built)
      .when(report({ ...reports.started, releaseId: R1 }))
      .thenRefuses('invalid', 'report.releaseId');
    given(deployTo.started)
      .when(report({ ...reports.healthy, releaseId: R1 }))
      .thenRefuses('invalid', 'report.releaseId');
    given(deployTo.healthy)
      .when(report({ ...reports.switched, routeId: OTHER_ROUTE }))
      .thenRefuses('invalid', 'report.routeId');
    given(deployTo.healthy)
      .when(report({ ...reports.switched, target: { host: '2001:db8::a', port: 20_004 } }))
      .thenRefuses('invalid', 'report.target.port');
  });

  test('a first deployment (no route yet) switches the route its agent made', () => {
    const first = {
      ...requestedDeploy,
      data: { ...requestedDeploy.data, routeId: null, previous: null },
    } as NewEvent;
    const history = [first, ...deployTo.healthy.slice(1)];
    given(history)
      .when(report({ ...reports.switched, routeId: OTHER_ROUTE }))
      .then([eventOf({ ...reports.switched, routeId: OTHER_ROUTE })]);
    expect(given(history, [eventOf({ ...reports.switched, routeId: OTHER_ROUTE })]).state).toMatchObject({
      routeId: OTHER_ROUTE,
    });
  });
});

describe('repeated reports', () => {
  const recorded = [
    ['fetched', deployTo.healthy],
    ['built', deployTo.healthy],
    ['started', deployTo.healthy],
    ['healthy', deployTo.healthy],
    ['switched', deployTo.switched],
  ] as const;

  test('the same data appends nothing, whether it is the last report or an earlier one', () => {
    for (const [phase, history] of recorded) given(history).when(report(reports[phase])).then([]);
    given(deployToVerified).when(report(reports.switched)).then([]);
    given(deployToReverting).when(report(reports.switched)).then([]);
  });

  test('other data for a recorded phase is a conflict naming report', () => {
    given(deployTo.fetched)
      .when(report({ ...reports.fetched, bytes: 1 }))
      .thenRefuses('conflict', 'report');
    given(deployTo.built)
      .when(report({ ...reports.built, durationMs: 1 }))
      .thenRefuses('conflict', 'report');
    given(deployTo.started)
      .when(report({ ...reports.started, port: 20_009 }))
      .thenRefuses('conflict', 'report');
    given(deployTo.healthy)
      .when(report({ ...reports.healthy, probes: 9 }))
      .thenRefuses('conflict', 'report');
    given(deployTo.switched)
      .when(report({ ...reports.switched, routeRevision: 8 }))
      .thenRefuses('conflict', 'report');
  });

  test('a retried drained report, after it ended the deployment, answers ok; other data is refused', () => {
    const done = [...deployToVerified, eventOf(reports.drained), succeededDeploy(true)];
    given(done).when(report(reports.drained)).then([]);
    given(done)
      .when(report({ ...reports.drained, stoppedBy: 'kill' }))
      .thenRefuses('conflict', 'leaseId');
  });

  test('a repeat under another lease is not a retry: the lease is lost', () => {
    given(deployTo.fetched)
      .when(report(reports.fetched, { leaseId: OTHER_LEASE }))
      .thenRefuses('conflict', 'leaseId');
  });
});

describe('who may report: the agent, with its lease', () => {
  test('a foreign agent gets 403 on every report, the same answer whether the deployment exists', () => {
    for (const what of [
      reports.fetched,
      { phase: 'released' },
      { phase: 'cancelled', reverted: false },
    ] as PhaseReport[]) {
      const existing = given(deployTo.claimed)
        .when(report(what, { agentId: 'web-b' }))
        .thenRefuses('forbidden', 'deploymentId');
      const absent = given()
        .when(report(what, { agentId: 'web-b' }))
        .thenRefuses('forbidden', 'deploymentId');
      expect(absent.message).toBe(existing.message);
    }
  });

  test('a wrong lease is a conflict naming leaseId, for reports and renewals', () => {
    given(deployTo.claimed)
      .when(report(reports.fetched, { leaseId: OTHER_LEASE }))
      .thenRefuses('conflict', 'leaseId');
    given(deployTo.claimed)
      .when(report({ phase: 'released' }, { leaseId: OTHER_LEASE }))
      .thenRefuses('conflict', 'leaseId');
    given(deployTo.claimed)
      .when((state) => checkLeaseHolder(state, 'web-a', DEP, OTHER_LEASE))
      .thenRefuses('conflict', 'leaseId');
    given(deployTo.claimed, [failedEvent])
      .when((state) => checkLeaseHolder(state, 'web-a', DEP, LEASE))
      .thenRefuses('conflict', 'leaseId');
    given(deployTo.claimed)
      .when((state) => checkLeaseHolder(state, 'web-b', DEP, LEASE))
      .thenRefuses('forbidden', 'deploymentId');
    given(deployTo.claimed)
      .when((state) => checkLeaseHolder(state, 'web-a', DEP, LEASE))
      .then(undefined);
  });
});

describe('released: the agent restarted and gave up its claim', () => {
  test('before verified: abandoned; after: succeeded without a drain; once ended: nothing', () => {
    for (const [, history, phase] of RUNNING) {
      given(history)
        .when(report({ phase: 'released' }))
        .then([abandonedAt(phase, 'agent-restarted')]);
    }
    given(deployToReverting)
      .when(report({ phase: 'released' }))
      .then([abandonedAt('verified', 'agent-restarted')]);
    given(deployToVerified)
      .when(report({ phase: 'released' }))
      .then([succeededDeploy(false)]);
    given(deployTo.claimed, [failedEvent])
      .when(report({ phase: 'released' }))
      .then([]);
  });
});

describe('cancel', () => {
  const cancel = (state: DeploymentState) => decideCancel(state, DEP, 'cancelled by admin alice');

  test('before the claim, at once (active or queued)', () => {
    given(deployTo.requested)
      .when(cancel)
      .then([cancelledAt('claimed', false)]);
    given(rollbackTo.requested)
      .when(cancel)
      .then([cancelledAt('claimed', false)]);
    expect(given(deployTo.requested, [cancelledAt('claimed', false)]).state).toMatchObject({
      status: 'cancelled',
    });
  });

  test('while it runs, a request the agent acts on; asking again appends nothing', () => {
    for (const [, history] of RUNNING) {
      given(history).when(cancel).then([cancelRequested]);
      given(history, [cancelRequested]).when(cancel).then([]);
    }
    for (const history of [rollbackTo.claimed, rollbackTo.started])
      given(history).when(cancel).then([cancelRequested]);
    expect(live(given(deployTo.built, [cancelRequested]).state)).toMatchObject({
      status: 'built',
      cancelRequested: { at: t0.toISOString(), reason: 'cancelled by admin alice' },
    });
  });

  test('the agent confirms: cancelled at the phase it worked towards; after the switch, reverted', () => {
    for (const [, history, phase] of RUNNING) {
      given(history, [cancelRequested])
        .when(report({ phase: 'cancelled', reverted: false }))
        .then([cancelledAt(phase, false)]);
    }
    given(deployTo.switched, [cancelRequested])
      .when(report({ phase: 'reverted' }))
      .then([cancelledAt('verified', true)]);
  });

  test('refused after verified, while reverting, and once ended; unknown: not found', () => {
    given(deployToVerified).when(cancel).thenRefuses('conflict', 'deploymentId');
    given(deployToReverting).when(cancel).thenRefuses('conflict', 'deploymentId');
    given(deployTo.claimed, [failedEvent]).when(cancel).thenRefuses('conflict', 'deploymentId');
    given(deployToVerified, [eventOf(reports.drained), succeededDeploy(true)])
      .when(cancel)
      .thenRefuses('conflict', 'deploymentId');
    given().when(cancel).thenRefuses('not_found', 'deploymentId');
  });

  test('a cancel that loses the race with the verification: the deployment can only succeed', () => {
    const history = [...deployTo.switched, cancelRequested, verified];
    expect(given(history).state.status).toBe('verified');
    given(history).when(cancel).thenRefuses('conflict', 'deploymentId');
    given(history)
      .when(report(reports.drained))
      .then([eventOf(reports.drained), succeededDeploy(true)]);
  });
});

describe('supersede', () => {
  test('a queued deployment a newer request replaced is cancelled as superseded', () => {
    given(deployTo.requested)
      .when((state) => decideSuperseded(state, NEWER))
      .then([
        {
          type: 'DeploymentCancelled',
          data: {
            deploymentId: DEP,
            phase: 'claimed',
            reason: 'superseded',
            supersededBy: NEWER,
            reverted: false,
          },
        },
      ]);
  });

  test('once claimed or ended it is not superseded (a retry appends nothing)', () => {
    const superseded: NewEvent = {
      type: 'DeploymentCancelled',
      data: {
        deploymentId: DEP,
        phase: 'claimed',
        reason: 'superseded',
        supersededBy: NEWER,
        reverted: false,
      },
    };
    given(deployTo.claimed)
      .when((state) => decideSuperseded(state, NEWER))
      .then([]);
    given(deployTo.requested, [superseded])
      .when((state) => decideSuperseded(state, NEWER))
      .then([]);
    given()
      .when((state) => decideSuperseded(state, NEWER))
      .then([]);
  });
});

describe('verification', () => {
  test('only a switched deployment is verified; a late verdict changes nothing', () => {
    const pass = (state: DeploymentState) =>
      decideVerification(state, { passed: true, fronts, skipped: null });
    const fail = (state: DeploymentState) =>
      decideVerification(state, { passed: false, fronts, reason: 'x' });
    for (const history of [deployTo.requested, deployTo.healthy, deployToVerified, deployToReverting]) {
      given(history).when(pass).then([]);
      given(history).when(fail).then([]);
    }
    given(deployTo.switched)
      .when((state) =>
        decideVerification(state, { passed: true, fronts: [], skipped: 'no front URL is configured' }),
      )
      .then([
        {
          type: 'DeploymentVerified',
          data: { deploymentId: DEP, fronts: [], skipped: 'no front URL is configured' },
        },
      ]);
  });
});

describe('drainTarget: what a drain asks the fronts about', () => {
  const stateOf = (events: NewEvent[]) =>
    foldDeployment(stored(events, { aggregate: { type: 'deployment', id: DEP }, at: t0 })) as LiveDeployment;

  test('once verified: the switched address with the previous release port', () => {
    expect(drainTarget(stateOf(deployToVerified))).toEqual({ address: '2001:db8::a', port: 20_001 });
  });

  test('nothing before the verification, after the drain, or without a release to replace', () => {
    expect(drainTarget(stateOf(deployTo.switched))).toBeNull();
    expect(drainTarget(stateOf([...deployToVerified, eventOf(reports.drained)]))).toBeNull();
    const first: NewEvent = {
      type: 'DeploymentRequested',
      data: { ...(requestedDeploy.data as object), previous: null },
    } as NewEvent;
    expect(drainTarget(stateOf([first, ...deployToVerified.slice(1)]))).toBeNull();
  });
});

describe('the agent was deregistered', () => {
  test('before verified: abandoned (waiting or running); after: succeeded without a drain', () => {
    given(deployTo.requested)
      .when((state) => decideAgentGone(state, app))
      .then([abandonedAt('claimed', 'agent-deregistered')]);
    for (const [, history, phase] of RUNNING) {
      given(history)
        .when((state) => decideAgentGone(state, app))
        .then([abandonedAt(phase, 'agent-deregistered')]);
    }
    given(deployToReverting)
      .when((state) => decideAgentGone(state, app))
      .then([abandonedAt('verified', 'agent-deregistered')]);
    given(deployToVerified)
      .when((state) => decideAgentGone(state, app))
      .then([succeededDeploy(false)]);
  });

  test('an ended or unknown deployment: nothing', () => {
    given(deployTo.claimed, [failedEvent])
      .when((state) => decideAgentGone(state, app))
      .then([]);
    given()
      .when((state) => decideAgentGone(state, app))
      .then([]);
  });
});

test('refusals are DomainErrors the decider throws, never other errors', () => {
  expect(refusal(() => decideCancel({ status: 'absent' }, DEP, 'x')).code).toBe('not_found');
});
