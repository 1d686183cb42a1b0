import type { NewEvent, StoredEvent } from '#contracts';
import { deploymentViewOfRow, type DeploymentRow } from '#persistence';
import { deploymentsProjection } from './deployments.js';

const id = '11111111-1111-4111-8111-111111111111';
const other = '22222222-2222-4222-8222-222222222222';
const route = '44444444-4444-4444-8444-444444444444';
const commit = 'a'.repeat(40);
const limits = {
  claim: 1800,
  fetch: 300,
  build: 900,
  start: 60,
  health: 40,
  switch: 60,
  verify: 20,
  drain: 45,
  cancel: 60,
  slack: 15,
};
let sequence = 0;
let clock = Date.parse('2030-01-01T00:00:00.000Z');

function event(input: NewEvent, aggregate: 'deployment' | 'app' = 'deployment'): StoredEvent {
  sequence++;
  clock += 1_000;
  const aggregateId = aggregate === 'app' ? 'shop' : (input.data as { deploymentId: string }).deploymentId;
  return {
    id: `e${sequence}`,
    type: input.type,
    schemaVersion: 1,
    aggregate: { type: aggregate, id: aggregateId },
    occurredAt: new Date(clock).toISOString(),
    actor: { kind: 'admin', id: 'ops' },
    correlationId: 'c',
    causationId: null,
    data: input.data,
    sequence,
    subject: `events.${aggregate}.${aggregateId}`,
  };
}

const requested = (kind: 'deploy' | 'rollback' = 'deploy', deploymentId = id) =>
  event({
    type: 'DeploymentRequested',
    data: {
      deploymentId,
      appName: 'shop',
      agentId: 'web-a',
      kind,
      ref: kind === 'deploy' ? 'main' : null,
      upload: null,
      targetRelease: kind === 'rollback' ? { releaseId: other, number: 1 } : null,
      previous: null,
      config: {
        hostname: 'shop.apps.example.test',
        source: { type: 'upload' },
        build: { root: null, build: null, start: null, portEnv: null, timeoutSeconds: null },
        healthCheck: { path: '/health', timeoutSeconds: 30, graceSeconds: 10, successes: 1 },
        env: {},
        secrets: [],
        drain: { delaySeconds: 1, stopTimeoutSeconds: 5 },
        limits: { memoryMb: 256, processes: 32 },
        releasesKept: 2,
        runtime: 'process',
      },
      routeId: null,
      limits,
    },
  });
const accepted = (number: number, queued = false, deploymentId = id) =>
  event(
    {
      type: 'DeploymentAccepted',
      data: { appName: 'shop', deploymentId, number, kind: 'deploy', queued, supersedes: null },
    },
    'app',
  );
const claimed = () =>
  event({
    type: 'DeploymentClaimed',
    data: {
      deploymentId: id,
      leaseId: '55555555-5555-4555-8555-555555555555',
      agentVersion: '1',
      leaseTtlMs: 20000,
    },
  });
const fetched = () =>
  event({
    type: 'DeploymentFetched',
    data: { deploymentId: id, commit, sourceDigest: 'b'.repeat(64), bytes: 9 },
  });
const built = (number: number) =>
  event({
    type: 'DeploymentBuilt',
    data: {
      deploymentId: id,
      release: { releaseId: id, number },
      artifactDigest: 'c'.repeat(64),
      manifest: {
        origin: 'node-default',
        root: '.',
        install: null,
        build: [],
        start: 'node server.js',
        portEnv: 'PORT',
        healthPath: '/health',
      },
      durationMs: 1200,
    },
  });
const started = (releaseId = id) =>
  event({ type: 'DeploymentStarted', data: { deploymentId: id, releaseId, port: 41001 } });
const healthy = (releaseId = id) =>
  event({ type: 'DeploymentHealthy', data: { deploymentId: id, releaseId, probes: 1, durationMs: 300 } });
const switched = () =>
  event({
    type: 'DeploymentSwitched',
    data: { deploymentId: id, routeId: route, routeRevision: 2, target: { host: '127.0.0.2', port: 41001 } },
  });
const fronts = [{ url: 'http://front-1/health', status: 200, error: null, attempts: 1 }];

const fold = (events: StoredEvent[]) => deploymentsProjection.fold(events).get(id);
const plus = (at: string, seconds: number) => new Date(Date.parse(at) + seconds * 1000).toISOString();

test('requested: a row with the actor and the limits; the number and the claim deadline come with the app accepting it', () => {
  const request = requested();
  const row = fold([request])!;
  expect(row).toMatchObject({
    status: 'requested',
    number: null,
    kind: 'deploy',
    phases: { requested: request.occurredAt },
    requested_by: { kind: 'admin', id: 'ops' },
    limits,
    deadline_at: null,
    last_sequence: request.sequence,
  });
  const accept = accepted(1);
  expect(fold([request, accept])).toMatchObject({
    number: 1,
    activated_at: accept.occurredAt,
    deadline_at: plus(accept.occurredAt, 1800 + 15),
    last_sequence: accept.sequence,
  });
  // Another deployment's acceptance, or an acceptance before any request, changes nothing here.
  expect(fold([request, accepted(2, false, other)])!.number).toBeNull();
  expect(deploymentsProjection.fold([accepted(1)]).size).toBe(0);
});

test('queued: no deadline until activated', () => {
  const history = [requested(), accepted(2, true)];
  expect(fold(history)).toMatchObject({ number: 2, activated_at: null, deadline_at: null });
  const activated = event(
    { type: 'DeploymentActivated', data: { appName: 'shop', deploymentId: id } },
    'app',
  );
  expect(fold([...history, activated])).toMatchObject({
    activated_at: activated.occurredAt,
    deadline_at: plus(activated.occurredAt, 1815),
  });
});

test('a full deploy: every phase with its time, the release, the port, verification, success; the view tells the story', () => {
  const history = [
    requested(),
    accepted(3),
    claimed(),
    fetched(),
    built(3),
    started(),
    healthy(),
    switched(),
  ];
  const atSwitch = fold(history)!;
  expect(atSwitch).toMatchObject({
    status: 'switched',
    commit,
    release_id: id,
    release_number: 3,
    port: 41001,
    route_id: route,
    verification: { state: 'pending', fronts: [], reason: null, skipped: null },
    deadline_at: plus(history.at(-1)!.occurredAt, 20 + 15),
  });
  expect(deploymentViewOfRow(atSwitch).phases.map((phase) => phase.state)).toEqual([
    'done',
    'done',
    'done',
    'done',
    'done',
    'done',
    'done',
    'current',
    'pending',
  ]);
  const verified = event({ type: 'DeploymentVerified', data: { deploymentId: id, fronts, skipped: null } });
  const drained = event({
    type: 'DeploymentDrained',
    data: { deploymentId: id, previousReleaseId: null, stoppedBy: 'exit' },
  });
  const succeeded = event({
    type: 'DeploymentSucceeded',
    data: {
      deploymentId: id,
      release: { releaseId: id, number: 3, port: 41001, commit },
      drained: true,
      keptReleases: [],
    },
  });
  const row = fold([...history, verified, drained, succeeded])!;
  expect(row).toMatchObject({
    status: 'succeeded',
    finished_at: succeeded.occurredAt,
    deadline_at: null,
    verification: { state: 'passed', fronts },
    failure: null,
  });
  const view = deploymentViewOfRow(row);
  expect(view).toMatchObject({
    number: 3,
    status: 'succeeded',
    release: { releaseId: id, number: 3 },
    commit,
    port: 41001,
    cancelRequested: null,
    requestedBy: { kind: 'admin', id: 'ops' },
  });
  expect(view.phases.every((phase) => phase.state === 'done')).toBe(true);
  expect(view.phases[0]).toMatchObject({ phase: 'requested', durationMs: null });
  // Accepted is not a phase: claimed comes 2 s after the request.
  expect(view.phases[1]).toMatchObject({ phase: 'claimed', durationMs: 2000 });
  // Nothing reopens a finished deployment.
  expect(fold([...history, verified, drained, succeeded, claimed()])).toEqual(row);
});

test('a failed health check: failure with the exit and last lines; the timeline marks where it stopped', () => {
  const failed = event({
    type: 'DeploymentFailed',
    data: {
      deploymentId: id,
      phase: 'healthy',
      reason: 'GET /health answered 500',
      exitCode: 1,
      signal: null,
      lastLines: ['boom'],
      reverted: false,
    },
  });
  const row = fold([requested(), accepted(1), claimed(), fetched(), built(1), started(), failed])!;
  expect(row).toMatchObject({
    status: 'failed',
    finished_at: failed.occurredAt,
    deadline_at: null,
    failure: {
      phase: 'healthy',
      reason: 'GET /health answered 500',
      exitCode: 1,
      signal: null,
      lastLines: ['boom'],
      reverted: false,
    },
  });
  expect(Object.fromEntries(deploymentViewOfRow(row).phases.map((p) => [p.phase, p.state]))).toEqual({
    requested: 'done',
    claimed: 'done',
    fetched: 'done',
    built: 'done',
    started: 'done',
    healthy: 'failed',
    switched: 'skipped',
    verified: 'skipped',
    drained: 'skipped',
  });
});

test('a failed verification reverts: reverting with its own deadline, then failed and reverted', () => {
  const history = [
    requested(),
    accepted(1),
    claimed(),
    fetched(),
    built(1),
    started(),
    healthy(),
    switched(),
  ];
  const failedVerification = event({
    type: 'DeploymentVerificationFailed',
    data: { deploymentId: id, reason: 'front-1 got 502', fronts },
  });
  expect(fold([...history, failedVerification])).toMatchObject({
    status: 'reverting',
    verification: { state: 'failed', fronts, reason: 'front-1 got 502', skipped: null },
    failure: { phase: 'verified', reason: 'front-1 got 502', reverted: false },
    deadline_at: plus(failedVerification.occurredAt, 60 + 15),
  });
  const failed = event({
    type: 'DeploymentFailed',
    data: {
      deploymentId: id,
      phase: 'verified',
      reason: 'front-1 got 502',
      exitCode: null,
      signal: null,
      lastLines: [],
      reverted: true,
    },
  });
  expect(fold([...history, failedVerification, failed])).toMatchObject({
    status: 'failed',
    failure: { phase: 'verified', reverted: true },
  });
});

test('a rollback: its release is the target from the start; fetch and build are skipped', () => {
  const row = fold([requested('rollback'), accepted(4), claimed(), started(other), healthy(other)])!;
  expect(row).toMatchObject({
    kind: 'rollback',
    status: 'healthy',
    release_id: other,
    release_number: 1,
    commit: null,
  });
  const claimedRow = fold([requested('rollback'), accepted(4), claimed()])!;
  expect(claimedRow.deadline_at).toBe(plus(claimedRow.entered_at, 60 + 15));
  expect(deploymentViewOfRow(row).phases.map((phase) => [phase.phase, phase.state])).toEqual([
    ['requested', 'done'],
    ['claimed', 'done'],
    ['fetched', 'skipped'],
    ['built', 'skipped'],
    ['started', 'done'],
    ['healthy', 'done'],
    ['switched', 'current'],
    ['verified', 'pending'],
    ['drained', 'pending'],
  ]);
});

test('cancel: requested while it runs bounds it by the cancel limit; cancelled and abandoned explain themselves', () => {
  const cancel = event({
    type: 'DeploymentCancelRequested',
    data: { deploymentId: id, reason: 'wrong branch' },
  });
  const history = [requested(), accepted(1), claimed(), cancel];
  const row = fold(history)!;
  expect(row).toMatchObject({
    status: 'claimed',
    cancel_requested_at: cancel.occurredAt,
    cancel_reason: 'wrong branch',
    deadline_at: plus(cancel.occurredAt, 60 + 15),
  });
  expect(deploymentViewOfRow(row).cancelRequested).toEqual({ at: cancel.occurredAt, reason: 'wrong branch' });
  const cancelled = event({
    type: 'DeploymentCancelled',
    data: { deploymentId: id, phase: 'fetched', reason: 'requested', supersededBy: null, reverted: false },
  });
  expect(fold([...history, cancelled])).toMatchObject({
    status: 'cancelled',
    failure: { phase: 'fetched', reason: 'cancelled: wrong branch', reverted: false },
  });
  const superseded = event({
    type: 'DeploymentCancelled',
    data: { deploymentId: id, phase: 'claimed', reason: 'superseded', supersededBy: other, reverted: false },
  });
  expect(fold([requested(), accepted(2, true), superseded])!.failure!.reason).toBe(
    `superseded by deployment ${other}`,
  );
  const abandoned = event({
    type: 'DeploymentAbandoned',
    data: { deploymentId: id, phase: 'fetched', reason: 'lease-expired', lastRenewalAt: null },
  });
  expect(fold([requested(), accepted(1), claimed(), abandoned])).toMatchObject({
    status: 'abandoned',
    finished_at: abandoned.occurredAt,
    failure: { phase: 'fetched', reason: 'abandoned: its agent stopped renewing the lease' },
  });
  // An acceptance after the end (the POST's second append, repaired late) still gives the number.
  const late = fold([requested(), superseded, accepted(7, true)]) as DeploymentRow;
  expect(late).toMatchObject({ status: 'cancelled', number: 7, deadline_at: null });
});
