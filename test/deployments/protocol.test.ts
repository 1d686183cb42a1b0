import { randomBytes, randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  credentialsBoxInfo,
  deploymentCommands,
  DomainError,
  type AppView,
  type DeploymentView,
} from '#contracts';
import { generateSealingKeyPair, open, seal } from '#pki-client';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { waitFor } from '../harness/processes.js';
import { AgentProtocol, hex, rawEventLog, REPOS, startDeploymentsStack } from './helpers.js';

/**
 * The deployments service driven phase by phase over the agent protocol, with a real agent's broker
 * credentials: the state machine, the lease, the deadlines, secrets delivered sealed and never logged,
 * and what another agent may not do. (The agent process itself, HAProxy and the front's probe come in
 * the end-to-end tests.)
 */
let stack: AgentsStack;
let alpha: EnrolledAgent;
let bravo: EnrolledAgent;
let alphaNats: NatsConnection;
let bravoNats: NatsConnection;
let agent: AgentProtocol;
let intruder: AgentProtocol;
const SECRET = `s3cr3t-${randomBytes(16).toString('hex')}`;
const ALPHA_ADDRESS = '198.51.100.20';

beforeAll(async () => {
  stack = await startDeploymentsStack();
  alpha = await stack.enroll('alpha', {}, ALPHA_ADDRESS);
  bravo = await stack.enroll('bravo', {}, '198.51.100.21');
  alphaNats = await stack.connectAsAgent(alpha);
  bravoNats = await stack.connectAsAgent(bravo);
  agent = new AgentProtocol('alpha', alphaNats);
  intruder = new AgentProtocol('bravo', bravoNats);
});
afterAll(async () => {
  await alphaNats?.close().catch(() => undefined);
  await bravoNats?.close().catch(() => undefined);
  await stack?.stop();
});

async function createApp(name: string, extra: Record<string, unknown> = {}): Promise<AppView> {
  return stack.command<AppView>(deploymentCommands.createApp, {
    name,
    agentId: 'alpha',
    source: { type: 'git', url: `file://${REPOS}/${name}`, ref: 'main' },
    env: [
      { name: 'GREETING', value: 'hello' },
      { name: 'API_TOKEN', value: SECRET, secret: true },
    ],
    healthCheck: { path: '/healthz', timeoutSeconds: 5 },
    ...extra,
  });
}

const deploy = (appName: string, commandId?: string) =>
  stack.command<DeploymentView>(
    deploymentCommands.request,
    { appName, request: { ref: 'main' } },
    { kind: 'admin', id: 'test' },
    commandId,
  );
const view = (deploymentId: string) =>
  stack.command<DeploymentView>(deploymentCommands.getDeployment, { deploymentId });

async function refusedCommand(subject: string, payload: unknown, actor?: { kind: 'agent'; id: string }) {
  try {
    await stack.command(subject, payload, actor);
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

/** Claims and reports every phase up to `switched`, as an agent that built and started the release. */
async function runToSwitched(deploymentId: string) {
  const claimed = await agent.claim(deploymentId);
  const { leaseId } = claimed;
  await agent.report(deploymentId, leaseId, {
    phase: 'fetched',
    commit: hex(20),
    sourceDigest: hex(32),
    bytes: 1234,
  });
  await agent.report(deploymentId, leaseId, {
    phase: 'built',
    release: { releaseId: deploymentId, number: claimed.number },
    artifactDigest: hex(32),
    manifest: {
      origin: 'node-default',
      root: '.',
      install: null,
      build: [],
      start: 'npm start',
      portEnv: 'PORT',
      healthPath: '/healthz',
    },
    durationMs: 40,
  });
  const port = 20_000 + claimed.number;
  await agent.report(deploymentId, leaseId, { phase: 'started', releaseId: deploymentId, port });
  await agent.report(deploymentId, leaseId, {
    phase: 'healthy',
    releaseId: deploymentId,
    probes: 2,
    durationMs: 150,
  });
  const routeId =
    (await stack.command<AppView>(deploymentCommands.getApp, { appName: 'web' })).routeId ?? randomUUID();
  await agent.report(deploymentId, leaseId, {
    phase: 'switched',
    routeId,
    routeRevision: claimed.number,
    target: { host: ALPHA_ADDRESS, port },
  });
  return { leaseId, port, number: claimed.number };
}

describe('a deployment from request to success', () => {
  let deploymentId: string;

  test('an app is created with its secret as a name and a version only', async () => {
    const app = await createApp('web');
    expect(app).toMatchObject({ appName: 'web', agentId: 'alpha', hostname: 'web.apps.deploy.test' });
    expect(app.secrets).toEqual([expect.objectContaining({ name: 'API_TOKEN', version: 1 })]);
    expect(app.config.env).toEqual({ GREETING: 'hello' });
    expect(JSON.stringify(app)).not.toContain(SECRET);
  });

  test('requested, claimed, every phase reported, verified, drained: succeeded', async () => {
    const requested = await deploy('web');
    deploymentId = requested.deploymentId;
    expect(requested).toMatchObject({ status: 'requested', number: 1, kind: 'deploy' });
    expect(requested.phases.find((phase) => phase.phase === 'claimed')).toMatchObject({ state: 'current' });

    const assigned = await agent.ask<{ apps: { appName: string }[]; inFlight: { deploymentId: string }[] }>(
      'assigned',
      {},
    );
    await waitFor('the projection to list the deployment', async () => {
      const again = await agent.ask<{ inFlight: { deploymentId: string }[] }>('assigned', {});
      return again.inFlight.some((entry) => entry.deploymentId === deploymentId);
    });
    expect(assigned.apps.map((app) => app.appName)).toContain('web');

    const { leaseId, port } = await runToSwitched(deploymentId);
    // No verification URL: the front records that it skipped the probe, and says why.
    await waitFor(
      'the front to verify',
      async () => (await agent.renew(deploymentId, leaseId)).verification === 'passed',
    );
    const answer = await agent.report(deploymentId, leaseId, {
      phase: 'drained',
      previousReleaseId: null,
      stoppedBy: 'none',
    });
    expect(answer.status).toBe('succeeded');
    const done = await view(deploymentId);
    expect(done.status).toBe('succeeded');
    expect(done.phases.filter((phase) => phase.state === 'done').map((phase) => phase.phase)).toEqual([
      'requested',
      'claimed',
      'fetched',
      'built',
      'started',
      'healthy',
      'switched',
      'verified',
      'drained',
    ]);
    await waitFor('the app to record the serving release', async () => {
      const app = await stack.command<AppView>(deploymentCommands.getApp, { appName: 'web' });
      return app.current?.releaseId === deploymentId && app.activeDeploymentId === null;
    });
    const app = await stack.command<AppView>(deploymentCommands.getApp, { appName: 'web' });
    expect(app.current).toMatchObject({ number: 1, port });
    expect(app.keptReleases.map((release) => release.number)).toEqual([1]);
  });

  test('a repeated report appends nothing; a contradicting one and a skipped phase are refused', async () => {
    const requested = await deploy('web');
    const claimed = await agent.claim(requested.deploymentId);
    const fetched = { phase: 'fetched', commit: hex(20), sourceDigest: hex(32), bytes: 1 };
    await agent.report(requested.deploymentId, claimed.leaseId, fetched);
    const before = await stack.lastEventSequence();
    await agent.report(requested.deploymentId, claimed.leaseId, fetched);
    expect(await stack.lastEventSequence()).toBe(before);
    const other = await agent.refusal('report', {
      deploymentId: requested.deploymentId,
      leaseId: claimed.leaseId,
      report: { ...fetched, bytes: 2 },
    });
    expect([other.code, other.field]).toEqual(['conflict', 'report']);
    const skipped = await agent.refusal('report', {
      deploymentId: requested.deploymentId,
      leaseId: claimed.leaseId,
      report: { phase: 'healthy', releaseId: requested.deploymentId, probes: 1, durationMs: 1 },
    });
    expect([skipped.code, skipped.field]).toEqual(['conflict', 'report.phase']);
    expect(await stack.lastEventSequence()).toBe(before);
    // The agent fails it; the previous release keeps serving.
    await agent.report(requested.deploymentId, claimed.leaseId, {
      phase: 'failed',
      failedPhase: 'built',
      reason: 'npm ci exited with code 1',
      exitCode: 1,
      signal: null,
      lastLines: ['npm ERR! missing script'],
      reverted: false,
    });
    const failed = await view(requested.deploymentId);
    expect(failed).toMatchObject({ status: 'failed', failure: { phase: 'built', exitCode: 1 } });
    await waitFor('the app to let it go', async () => {
      const app = await stack.command<AppView>(deploymentCommands.getApp, { appName: 'web' });
      return app.activeDeploymentId === null;
    });
    const app = await stack.command<AppView>(deploymentCommands.getApp, { appName: 'web' });
    expect(app.current?.number).toBe(1);
  });

  test('the secret is delivered sealed to the key of the request, and appears in no event', async () => {
    const requested = await deploy('web');
    const claimed = await agent.claim(requested.deploymentId);
    const keys = generateSealingKeyPair();
    const answer = await agent.ask<{ sealed: Parameters<typeof open>[0] }>('secrets', {
      deploymentId: requested.deploymentId,
      leaseId: claimed.leaseId,
      publicKey: keys.publicKey,
    });
    expect(JSON.stringify(answer)).not.toContain(SECRET);
    const values = JSON.parse(
      open(answer.sealed, keys.privateKey, `cloudlunacy-secrets-v1:${requested.deploymentId}`).toString(
        'utf8',
      ),
    );
    expect(values).toEqual({ API_TOKEN: SECRET });
    // Another agent cannot have them, even with the lease id.
    const foreign = await intruder.refusal('secrets', {
      deploymentId: requested.deploymentId,
      leaseId: claimed.leaseId,
      publicKey: keys.publicKey,
    });
    expect(foreign.code).toBe('forbidden');
    expect(await rawEventLog(stack)).not.toContain(SECRET);
    const rows: { value: string }[] = await stack.db.dataSource.query(
      `SELECT row_to_json(t)::text AS value FROM (SELECT * FROM apps) t
       UNION ALL SELECT row_to_json(t)::text FROM (SELECT * FROM deployments) t
       UNION ALL SELECT encode(ciphertext, 'escape') FROM app_secret_values`,
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.map((row) => row.value).join('\n')).not.toContain(SECRET);
    // A cancel while the agent runs it is a request; the agent confirms it.
    const asked = await stack.command<DeploymentView>(deploymentCommands.cancel, {
      deploymentId: requested.deploymentId,
    });
    expect(asked).toMatchObject({ status: 'claimed', cancelRequested: expect.objectContaining({}) });
    expect((await agent.renew(requested.deploymentId, claimed.leaseId)).cancelRequested).toBe(true);
    await agent.report(requested.deploymentId, claimed.leaseId, { phase: 'cancelled', reverted: false });
    expect((await view(requested.deploymentId)).status).toBe('cancelled');
  });
});

describe('what another agent cannot do', () => {
  test('claim, renew and report another agent’s deployment: forbidden, and nothing appended', async () => {
    const requested = await deploy('web');
    const before = await stack.lastEventSequence();
    const claim = await intruder.refusal('claim', {
      deploymentId: requested.deploymentId,
      leaseId: randomUUID(),
      agentVersion: 'x',
    });
    expect([claim.code, claim.field]).toEqual(['forbidden', 'deploymentId']);
    const unknown = await intruder.refusal('claim', {
      deploymentId: randomUUID(),
      leaseId: randomUUID(),
      agentVersion: 'x',
    });
    expect([unknown.code, unknown.message.replace(/[0-9a-f-]{36}/, 'ID')]).toEqual([
      claim.code,
      claim.message.replace(/[0-9a-f-]{36}/, 'ID'),
    ]);
    const claimed = await agent.claim(requested.deploymentId);
    const renew = await intruder.refusal('renew', {
      deploymentId: requested.deploymentId,
      leaseId: claimed.leaseId,
    });
    expect(renew.code).toBe('forbidden');
    const report = await intruder.refusal('report', {
      deploymentId: requested.deploymentId,
      leaseId: claimed.leaseId,
      report: { phase: 'released' },
    });
    expect(report.code).toBe('forbidden');
    const wrongLease = await agent.refusal('renew', {
      deploymentId: requested.deploymentId,
      leaseId: randomUUID(),
    });
    expect([wrongLease.code, wrongLease.field]).toEqual(['conflict', 'leaseId']);
    const secondClaim = await agent.refusal('claim', {
      deploymentId: requested.deploymentId,
      leaseId: randomUUID(),
      agentVersion: 'x',
    });
    expect(secondClaim.code).toBe('conflict');
    // Only the one claim was appended.
    expect(await stack.lastEventSequence()).toBe(before + 1);
    // An agent creating or deploying another agent's app is refused the same way.
    const create = await refusedCommand(
      deploymentCommands.createApp,
      { name: 'stolen', agentId: 'alpha', source: { type: 'git', url: `file://${REPOS}/x` } },
      { kind: 'agent', id: 'bravo' },
    );
    expect(create.code).toBe('forbidden');
    const foreignDeploy = await refusedCommand(
      deploymentCommands.request,
      { appName: 'web', request: {} },
      { kind: 'agent', id: 'bravo' },
    );
    expect(foreignDeploy.code).toBe('forbidden');
    await agent.report(requested.deploymentId, claimed.leaseId, { phase: 'released' });
    expect((await view(requested.deploymentId)).status).toBe('abandoned');
  });
});

describe('deadlines and leases', () => {
  test('a claim whose lease is not renewed is abandoned, and the app runs the next one', async () => {
    await createApp('lease');
    const requested = await deploy('lease');
    await agent.claim(requested.deploymentId);
    await waitFor(
      'the lease to run out',
      async () => (await view(requested.deploymentId)).status === 'abandoned',
      { timeoutMs: 15_000 },
    );
    const abandoned = await view(requested.deploymentId);
    expect(abandoned.phases.find((phase) => phase.phase === 'claimed')?.state).toBe('done');
    // The lease is gone with it: the agent that held it is told so.
    const lost = await agent.refusal('renew', {
      deploymentId: requested.deploymentId,
      leaseId: randomUUID(),
    });
    expect(lost.code).toBe('conflict');
    const next = await deploy('lease');
    await waitFor('the next one to be active', async () => (await view(next.deploymentId)).number === 2);
    expect((await agent.claim(next.deploymentId)).number).toBe(2);
  });

  test('one active deployment per app: a second waits, a third replaces it; cancel before claim is at once', async () => {
    await createApp('queue');
    const first = await deploy('queue');
    const second = await deploy('queue');
    const third = await deploy('queue');
    const app = await stack.command<AppView>(deploymentCommands.getApp, { appName: 'queue' });
    expect(app.activeDeploymentId).toBe(first.deploymentId);
    expect(app.queuedDeploymentId).toBe(third.deploymentId);
    expect((await view(second.deploymentId)).status).toBe('cancelled');
    const queuedClaim = await agent.refusal('claim', {
      deploymentId: third.deploymentId,
      leaseId: randomUUID(),
      agentVersion: 'x',
    });
    expect(queuedClaim.code).toBe('conflict');
    const cancelled = await stack.command<DeploymentView>(deploymentCommands.cancel, {
      deploymentId: first.deploymentId,
    });
    expect(cancelled.status).toBe('cancelled');
    await waitFor('the queued one to become active', async () => {
      const now = await stack.command<AppView>(deploymentCommands.getApp, { appName: 'queue' });
      return now.activeDeploymentId === third.deploymentId;
    });
  });

  test('a retried request (same command id) names the same deployment and appends nothing', async () => {
    const key = randomUUID();
    const once = await deploy('queue', key);
    const before = await stack.lastEventSequence();
    const twice = await deploy('queue', key);
    expect(twice.deploymentId).toBe(once.deploymentId);
    expect(await stack.lastEventSequence()).toBe(before);
  });
});

describe('the log relay', () => {
  const batch = (lines: string[], seq = 0) =>
    JSON.stringify({
      boot: 'b1',
      seq,
      lines: lines.map((x) => ({ t: new Date().toISOString(), s: 'out', x })),
    });

  async function logsOf(deploymentId: string): Promise<string[]> {
    const jsm = await jetstreamManager(stack.service);
    const message = await jsm.streams
      .getMessage('LOGS', { last_by_subj: `logs.${deploymentId}` })
      .catch(() => null);
    if (!message) return [];
    return (message.json() as { lines: { x: string }[] }).lines.map((line) => line.x);
  }

  test('an agent’s lines are stored with secrets and terminal escapes removed; others’ are dropped', async () => {
    await createApp('logs');
    const requested = await deploy('logs');
    await agent.claim(requested.deploymentId);
    const encoded = Buffer.from(SECRET).toString('base64');
    alphaNats.publish(
      `agents.alpha.out.logs.${requested.deploymentId}`,
      batch([`token=${SECRET}`, `b64 ${encoded}`, 'plain \u001b[31mred\u001b[0m']),
    );
    await waitFor('the lines to be stored', async () => (await logsOf(requested.deploymentId)).length > 0);
    const lines = await logsOf(requested.deploymentId);
    expect(lines).toEqual(['token=[secret:API_TOKEN]', 'b64 [secret:API_TOKEN]', 'plain [31mred[0m']);
    const jsm = await jetstreamManager(stack.service);
    const before = (await jsm.streams.info('LOGS')).state.messages;
    // Another agent writing into alpha's deployment, and alpha writing into one that does not exist.
    bravoNats.publish(`agents.bravo.out.logs.${requested.deploymentId}`, batch(['forged'], 1));
    alphaNats.publish(`agents.alpha.out.logs.${randomUUID()}`, batch(['nowhere'], 2));
    alphaNats.publish(`agents.alpha.out.logs.${requested.deploymentId}`, '{"not": "a batch"}');
    await alphaNats.flush();
    await bravoNats.flush();
    // A later good batch proves the relay went past the bad ones.
    alphaNats.publish(`agents.alpha.out.logs.${requested.deploymentId}`, batch(['after'], 3));
    await waitFor('the good batch', async () => (await logsOf(requested.deploymentId)).includes('after'));
    expect((await jsm.streams.info('LOGS')).state.messages).toBe(before + 1);
  });
});

describe('secret rotation', () => {
  const versions = async (appName: string) =>
    (
      (await stack.db.dataSource.query(
        'SELECT version FROM app_secret_values WHERE app_name = $1 ORDER BY version',
        [appName],
      )) as { version: number }[]
    ).map((row) => row.version);

  test('a new version serves the next deployment; the old one is forgotten once nothing needs it', async () => {
    await createApp('rot');
    const running = await deploy('rot');
    const claimed = await agent.claim(running.deploymentId);
    const next = `r0tated-${randomBytes(12).toString('hex')}`;
    const set = await stack.command<{ version: number }>(deploymentCommands.setSecret, {
      appName: 'rot',
      name: 'API_TOKEN',
      value: next,
    });
    expect(set.version).toBe(2);
    // The deployment in flight was requested with version 1: it keeps it.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await versions('rot')).toEqual([1, 2]);
    await agent.report(running.deploymentId, claimed.leaseId, {
      phase: 'failed',
      failedPhase: 'fetched',
      reason: 'repository not found',
      exitCode: 128,
      signal: null,
      lastLines: [],
      reverted: false,
    });
    await waitFor('version 1 to be forgotten', async () => (await versions('rot')).join() === '2');
    const again = await deploy('rot');
    const reclaimed = await agent.claim(again.deploymentId);
    const keys = generateSealingKeyPair();
    const answer = await agent.ask<{ sealed: Parameters<typeof open>[0] }>('secrets', {
      deploymentId: again.deploymentId,
      leaseId: reclaimed.leaseId,
      publicKey: keys.publicKey,
    });
    const values = JSON.parse(
      open(answer.sealed, keys.privateKey, `cloudlunacy-secrets-v1:${again.deploymentId}`).toString('utf8'),
    );
    expect(values).toEqual({ API_TOKEN: next });
    expect(await rawEventLog(stack)).not.toContain(next);
  });
});

describe("a database's requests go to its agent only, and answers come from it only", () => {
  const JS_API = { apiPrefix: '$CL.JS.API' };

  /** The next message on alpha's own consumer with this topic (others are acknowledged and skipped). */
  async function nextInbound(
    topic: string,
  ): Promise<{ requestId: string; operation: { publicKey?: string } }> {
    const consumer = await jetstream(alphaNats, JS_API).consumers.get('AGENTS', 'agent-alpha');
    for (;;) {
      const message = await consumer.next({ expires: 5_000 });
      if (!message) throw new Error(`no ${topic} message for alpha`);
      message.ack();
      if (message.subject === `agents.alpha.in.${topic}`) return message.json();
    }
  }

  test('admins only, and only once deployed', async () => {
    await stack.command<AppView>(deploymentCommands.createApp, {
      name: 'kv',
      agentId: 'alpha',
      source: { type: 'database', engine: 'redis' },
    });
    const early = await refusedCommand(deploymentCommands.database, {
      appName: 'kv',
      operation: { kind: 'backups' },
    });
    expect([early.code, early.field]).toEqual(['conflict', 'appName']);
    const byAgent = await refusedCommand(
      deploymentCommands.database,
      { appName: 'kv', operation: { kind: 'backups' } },
      { kind: 'agent', id: 'alpha' },
    );
    expect(byAgent.code).toBe('forbidden');
    const notADatabase = await refusedCommand(deploymentCommands.database, {
      appName: 'web',
      operation: { kind: 'backups' },
    });
    expect(notADatabase.code).toBe('invalid');
  });

  test('the sealed credentials pass through unread; a forged answer from another agent is dropped', async () => {
    const requested = await deploy('kv').catch(() =>
      stack.command<DeploymentView>(deploymentCommands.request, { appName: 'kv', request: {} }),
    );
    const claimed = await agent.claim(requested.deploymentId);
    const { leaseId } = claimed;
    const report = (body: Record<string, unknown>) => agent.report(requested.deploymentId, leaseId, body);
    await report({ phase: 'fetched', commit: null, sourceDigest: hex(32), bytes: 1234 });
    await report({
      phase: 'built',
      release: { releaseId: requested.deploymentId, number: claimed.number },
      artifactDigest: hex(32),
      manifest: {
        origin: 'database',
        root: '.',
        install: null,
        build: [],
        start: 'exec redis-server ./redis.conf',
        portEnv: 'PORT',
        healthPath: '/',
      },
      durationMs: 5,
    });
    await report({ phase: 'started', releaseId: requested.deploymentId, port: 21_999 });
    await report({ phase: 'healthy', releaseId: requested.deploymentId, probes: 1, durationMs: 5 });
    await report({
      phase: 'switched',
      routeId: randomUUID(),
      routeRevision: 1,
      target: { host: ALPHA_ADDRESS, port: 21_999 },
    });
    await waitFor(
      'the front to verify',
      async () => (await agent.renew(requested.deploymentId, leaseId)).verification === 'passed',
    );
    expect((await report({ phase: 'drained', previousReleaseId: null, stoppedBy: 'none' })).status).toBe(
      'succeeded',
    );

    const keys = generateSealingKeyPair();
    const asked = stack.command<{ requestId: string; agentId: string; answer: { sealed: never } }>(
      deploymentCommands.database,
      { appName: 'kv', operation: { kind: 'credentials', publicKey: keys.publicKey, rotate: false } },
    );
    const request = await nextInbound('deployments.database');
    expect(request.operation.publicKey).toBe(keys.publicKey);
    // Bravo knows the request id (it cannot, but suppose): its answer, sealed to the right key, is dropped.
    const forged = { user: 'default', password: 'forged-by-bravo', rotatedAt: new Date().toISOString() };
    bravoNats.publish(
      'agents.bravo.out.deployments.database',
      JSON.stringify({
        requestId: request.requestId,
        sealed: seal(keys.publicKey, JSON.stringify(forged), credentialsBoxInfo(request.requestId)),
      }),
    );
    // Alpha's malformed answer is dropped too, and its real one taken.
    alphaNats.publish(
      'agents.alpha.out.deployments.database',
      JSON.stringify({ requestId: request.requestId }),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const real = { user: 'default', password: 'made-on-alpha', rotatedAt: new Date().toISOString() };
    alphaNats.publish(
      'agents.alpha.out.deployments.database',
      JSON.stringify({
        requestId: request.requestId,
        sealed: seal(keys.publicKey, JSON.stringify(real), credentialsBoxInfo(request.requestId)),
      }),
    );
    const reply = await asked;
    expect(reply.agentId).toBe('alpha');
    const opened = JSON.parse(
      open(reply.answer.sealed, keys.privateKey, credentialsBoxInfo(reply.requestId)).toString('utf8'),
    );
    expect(opened.password).toBe('made-on-alpha');
    // Nothing of it is in the log.
    expect(await rawEventLog(stack)).not.toContain('made-on-alpha');
  }, 60_000);
});
