import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { deploymentCommands, LOGS_STREAM, type AppView, type DeploymentView } from '#contracts';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { waitFor } from '../harness/processes.js';
import { AgentProtocol, REPOS, startDeploymentsStack } from './helpers.js';

/**
 * `GET /api/v1/deployments/{id}/logs` and `GET /api/v1/apps/{name}/logs` against the real stack: batches
 * published by a real agent over its broker connection, relayed into LOGS, read back as JSON and as
 * Server-Sent Events.
 */
let stack: AgentsStack;
let alpha: EnrolledAgent;
let bravo: EnrolledAgent;
let alphaNats: NatsConnection;
let agent: AgentProtocol;
let admin: string;
const STREAMS_MAX = 2;
const ALPHA_ADDRESS = '198.51.100.30';

beforeAll(async () => {
  stack = await startDeploymentsStack({ env: { CL_LOG_STREAMS_MAX: String(STREAMS_MAX) } });
  alpha = await stack.enroll('alpha', {}, ALPHA_ADDRESS);
  bravo = await stack.enroll('bravo', {}, '198.51.100.31');
  alphaNats = await stack.connectAsAgent(alpha);
  agent = new AgentProtocol('alpha', alphaNats);
  admin = stack.adminToken();
});
afterAll(async () => {
  await alphaNats?.close().catch(() => undefined);
  await stack?.stop();
});

let batchSeq = 0;
/** Publishes one batch as the agent, and waits until the relay stored it. */
async function publish(deploymentId: string, lines: string[]): Promise<void> {
  const before = await storedLines(deploymentId);
  alphaNats.publish(
    `agents.alpha.out.logs.${deploymentId}`,
    JSON.stringify({
      boot: 'b1',
      seq: batchSeq++,
      lines: lines.map((x) => ({ t: new Date().toISOString(), s: 'out', x })),
    }),
  );
  await alphaNats.flush();
  await waitFor(
    'the batch to be stored',
    async () => (await storedLines(deploymentId)) >= before + lines.length,
  );
}

async function storedLines(deploymentId: string): Promise<number> {
  const reply = await stack.request('GET', `deployments/${deploymentId}/logs?tail=5000`, { token: admin });
  if (reply.status !== 200) throw new Error(`logs: ${reply.status} ${JSON.stringify(reply.body)}`);
  return (reply.body.lines as unknown[]).length;
}

/** An app of alpha's and a deployment of it, claimed by alpha. */
async function claimedDeployment(name: string): Promise<{ deploymentId: string; leaseId: string }> {
  await stack.command<AppView>(deploymentCommands.createApp, {
    name,
    agentId: 'alpha',
    source: { type: 'git', url: `file://${REPOS}/${name}`, ref: 'main' },
    healthCheck: { path: '/healthz', timeoutSeconds: 5 },
  });
  const requested = await stack.command<DeploymentView>(
    deploymentCommands.request,
    { appName: name, request: { ref: 'main' } },
    { kind: 'admin', id: 'test' },
  );
  const { leaseId } = await agent.claim(requested.deploymentId);
  return { deploymentId: requested.deploymentId, leaseId };
}

interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

/** A Server-Sent Events reader over one HTTP request. */
class EventStream {
  readonly events: SseEvent[] = [];
  status = 0;
  body = '';
  ended = false;
  private buffer = '';
  private constructor(
    private readonly request: ClientRequest,
    private readonly response: IncomingMessage,
  ) {
    this.status = response.statusCode ?? 0;
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      this.body += chunk;
      this.buffer += chunk;
      let end;
      while ((end = this.buffer.indexOf('\n\n')) >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const event: SseEvent = { event: 'message', data: '' };
        let data = false;
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const [field, ...rest] = line.split(':');
          const value = rest.join(':').replace(/^ /, '');
          if (field === 'event') event.event = value;
          else if (field === 'id') event.id = value;
          else if (field === 'data') {
            event.data += value;
            data = true;
          }
        }
        if (data) this.events.push(event);
      }
    });
    response.on('end', () => (this.ended = true));
    response.on('close', () => (this.ended = true));
  }

  static open(path: string, token: string, headers: Record<string, string> = {}): Promise<EventStream> {
    const url = new URL(`${stack.baseUrl}/api/v1/${path}`);
    return new Promise((resolve, reject) => {
      const request = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: `${url.pathname}${url.search}`,
          agent: false,
          headers: { accept: 'text/event-stream', authorization: `Bearer ${token}`, ...headers },
        },
        (response) => resolve(new EventStream(request, response)),
      );
      request.on('error', reject);
      request.end();
    });
  }

  lines(): { id: number; x: string[] }[] {
    return this.events
      .filter((event) => event.event === 'lines')
      .map((event) => ({
        id: Number(event.id),
        x: (JSON.parse(event.data) as { lines: { x: string }[] }).lines.map((line) => line.x),
      }));
  }

  async until(what: string, check: () => boolean): Promise<void> {
    await waitFor(what, async () => check() || undefined);
  }

  close(): void {
    this.request.destroy();
  }
}

describe('deployment logs', () => {
  let deploymentId: string;
  let leaseId: string;

  beforeAll(async () => {
    ({ deploymentId, leaseId } = await claimedDeployment('logs'));
    await publish(deploymentId, ['one', 'two']);
    await publish(deploymentId, ['three']);
    await publish(deploymentId, ['four', 'five']);
  });

  test('the JSON tail holds the last lines in order, with their batches’ sequences', async () => {
    const all = await stack.request('GET', `deployments/${deploymentId}/logs`, { token: admin });
    expect(all.status).toBe(200);
    const lines = all.body.lines as { seq: number; t: string; s: string; x: string }[];
    expect(lines.map((line) => line.x)).toEqual(['one', 'two', 'three', 'four', 'five']);
    expect(lines.every((line) => line.s === 'out' && typeof line.t === 'string')).toBe(true);
    const seqs = lines.map((line) => line.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(3);
    expect(all.body).toMatchObject({ deploymentId, last: seqs[seqs.length - 1] });

    const tail = await stack.request('GET', `deployments/${deploymentId}/logs?tail=2`, {
      token: alpha.accessToken,
    });
    expect(tail.status).toBe(200);
    expect((tail.body.lines as { x: string }[]).map((line) => line.x)).toEqual(['four', 'five']);
    const three = await stack.request('GET', `deployments/${deploymentId}/logs?tail=3`, { token: admin });
    expect((three.body.lines as { x: string }[]).map((line) => line.x)).toEqual(['three', 'four', 'five']);

    const bad = await stack.request('GET', `deployments/${deploymentId}/logs?tail=0`, { token: admin });
    expect([bad.status, bad.body.field]).toEqual([400, 'tail']);
  });

  test('another agent gets the same 403 for this deployment and an unknown one; an admin gets 404', async () => {
    const foreign = await stack.request('GET', `deployments/${deploymentId}/logs`, {
      token: bravo.accessToken,
    });
    const unknownId = '00000000-0000-4000-8000-000000000000';
    const unknown = await stack.request('GET', `deployments/${unknownId}/logs`, { token: bravo.accessToken });
    expect(foreign.status).toBe(403);
    expect(unknown.status).toBe(403);
    const sse = await EventStream.open(`deployments/${deploymentId}/logs`, bravo.accessToken);
    expect(sse.status).toBe(403);
    sse.close();
    const missing = await stack.request('GET', `deployments/${unknownId}/logs`, { token: admin });
    expect(missing.status).toBe(404);
  });

  test('SSE sends the tail, then a batch published after connecting; Last-Event-ID resumes without repeats', async () => {
    const first = await EventStream.open(`deployments/${deploymentId}/logs?tail=3`, alpha.accessToken);
    expect(first.status).toBe(200);
    await first.until('the tail', () => first.lines().flatMap((batch) => batch.x).length === 3);
    expect(first.lines().flatMap((batch) => batch.x)).toEqual(['three', 'four', 'five']);
    await publish(deploymentId, ['six']);
    await first.until('the live batch', () => first.lines().some((batch) => batch.x.includes('six')));
    const seen = first.lines();
    expect(seen.flatMap((batch) => batch.x)).toEqual(['three', 'four', 'five', 'six']);
    const lastId = seen[seen.length - 1]!.id;
    first.close();

    // Published while the client was away, then resumed after the last batch it saw.
    await publish(deploymentId, ['seven']);
    const resumed = await EventStream.open(`deployments/${deploymentId}/logs?follow=true`, admin, {
      accept: 'application/json',
      'last-event-id': String(lastId),
    });
    expect(resumed.status).toBe(200);
    await resumed.until('the missed batch', () => resumed.lines().length >= 1);
    await publish(deploymentId, ['eight']);
    await resumed.until('the next batch', () => resumed.lines().some((batch) => batch.x.includes('eight')));
    const after = resumed.lines();
    expect(after.flatMap((batch) => batch.x)).toEqual(['seven', 'eight']);
    expect(after.every((batch) => batch.id > lastId)).toBe(true);
    resumed.close();
  });

  test(`at most ${STREAMS_MAX} streams at once: the next one is a 503 naming CL_LOG_STREAMS_MAX`, async () => {
    const open = await Promise.all(
      Array.from({ length: STREAMS_MAX }, () => EventStream.open(`deployments/${deploymentId}/logs`, admin)),
    );
    expect(open.map((stream) => stream.status)).toEqual(open.map(() => 200));
    const refused = await stack.request('GET', `deployments/${deploymentId}/logs?follow=true`, {
      token: admin,
    });
    expect(refused.status).toBe(503);
    expect(refused.body.message).toContain('CL_LOG_STREAMS_MAX');
    for (const stream of open) stream.close();
    // A closed stream frees its place.
    await waitFor('a place to free up', async () => {
      const again = await EventStream.open(`deployments/${deploymentId}/logs`, admin);
      again.close();
      return again.status === 200 || undefined;
    });
    // No consumer is left behind on LOGS by the reads and the closed streams.
    const jsm = await jetstreamManager(stack.service);
    await waitFor('the streams’ consumers to be deleted', async () => {
      const left = await jsm.consumers.list(LOGS_STREAM).next();
      return left.length === 0 || undefined;
    });
  });

  test('a finished deployment’s stream sends what is stored, then `end`', async () => {
    await agent.report(deploymentId, leaseId, {
      phase: 'failed',
      failedPhase: 'fetched',
      reason: 'git fetch failed',
      exitCode: 128,
      signal: null,
      lastLines: ['fatal: repository not found'],
      reverted: false,
    });
    await waitFor('the projection to see it failed', async () => {
      const reply = await stack.request('GET', `deployments/${deploymentId}`, { token: admin });
      return reply.body.status === 'failed' || undefined;
    });
    const done = await EventStream.open(`deployments/${deploymentId}/logs?tail=2`, admin);
    expect(done.status).toBe(200);
    await done.until('the end', () => done.ended);
    expect(done.lines().flatMap((batch) => batch.x)).toEqual(['seven', 'eight']);
    const last = done.events[done.events.length - 1]!;
    expect(last.event).toBe('end');
    expect(JSON.parse(last.data)).toMatchObject({ deploymentId, status: 'failed' });

    // Resumed after its last batch: nothing more, the end at once.
    const lastId = done.lines()[1]!.id;
    const resumed = await EventStream.open(`deployments/${deploymentId}/logs`, admin, {
      'last-event-id': String(lastId),
    });
    await resumed.until('the end', () => resumed.ended);
    expect(resumed.events.map((event) => event.event)).toEqual(['end']);
  });
});

describe('a tail among other deployments’ logs', () => {
  test('the last lines come back when another deployment wrote most of the stream since', async () => {
    const { deploymentId } = await claimedDeployment('sparse');
    const { deploymentId: noisy } = await claimedDeployment('noisy');
    for (const x of ['s1', 's2', 's3']) await publish(deploymentId, [x]);
    const before = await storedLines(noisy);
    for (let index = 0; index < 60; index++) {
      alphaNats.publish(
        `agents.alpha.out.logs.${noisy}`,
        JSON.stringify({
          boot: 'b1',
          seq: batchSeq++,
          lines: [{ t: new Date().toISOString(), s: 'out', x: `noise ${index}` }],
        }),
      );
    }
    await alphaNats.flush();
    await waitFor(
      'the noise to be stored',
      async () => (await storedLines(noisy)) >= before + 60 || undefined,
    );
    await publish(deploymentId, ['s4']);
    // Few of the stream's batches are this deployment's: the first guess of where its tail starts holds
    // too few, and the read goes further back.
    const tail = await stack.request('GET', `deployments/${deploymentId}/logs?tail=2`, { token: admin });
    expect((tail.body.lines as { x: string }[]).map((line) => line.x)).toEqual(['s3', 's4']);
    const all = await stack.request('GET', `deployments/${deploymentId}/logs?tail=10`, { token: admin });
    expect((all.body.lines as { x: string }[]).map((line) => line.x)).toEqual(['s1', 's2', 's3', 's4']);
  });
});

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/**
 * Reports every phase of a claimed deployment up to its success, as the agent that ran it. A rollback
 * starts the kept release `rollbackOf` again: no fetch, no build.
 */
async function runToSucceeded(
  appName: string,
  deploymentId: string,
  claimed: { leaseId: string; number: number },
  rollbackOf?: string,
): Promise<void> {
  const { leaseId, number } = claimed;
  const releaseId = rollbackOf ?? deploymentId;
  if (rollbackOf === undefined) {
    await agent.report(deploymentId, leaseId, {
      phase: 'fetched',
      commit: hex(20),
      sourceDigest: hex(32),
      bytes: 100,
    });
    await agent.report(deploymentId, leaseId, {
      phase: 'built',
      release: { releaseId, number },
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
      durationMs: 10,
    });
  }
  const port = 21_000 + number;
  await agent.report(deploymentId, leaseId, { phase: 'started', releaseId, port });
  await agent.report(deploymentId, leaseId, { phase: 'healthy', releaseId, probes: 1, durationMs: 10 });
  const app = await stack.command<AppView>(deploymentCommands.getApp, { appName });
  await agent.report(deploymentId, leaseId, {
    phase: 'switched',
    routeId: app.routeId ?? randomUUID(),
    routeRevision: number,
    target: { host: ALPHA_ADDRESS, port },
  });
  // No verification URL: the front passes it, saying it skipped the probe.
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
  await waitFor('the projections to see it succeeded', async () => {
    const reply = await stack.request('GET', `deployments/${deploymentId}`, { token: admin });
    const shown = await stack.request('GET', `apps/${appName}`, { token: admin });
    return (
      (reply.body.status === 'succeeded' && (shown.body as unknown as AppView).activeDeploymentId === null) ||
      undefined
    );
  });
}

/** The next deployment (or rollback) of an app, claimed by alpha. */
async function claimedNext(appName: string, rollback = false) {
  const requested = await stack.command<DeploymentView>(
    rollback ? deploymentCommands.rollback : deploymentCommands.request,
    { appName, request: rollback ? {} : { ref: 'main' } },
    { kind: 'admin', id: 'test' },
  );
  const claimed = await agent.claim(requested.deploymentId);
  return { deploymentId: requested.deploymentId, claimed };
}

const texts = (body: Record<string, unknown>) => (body.lines as { x: string }[]).map((line) => line.x);

describe('app logs: the output of the release the app serves', () => {
  let first: string;
  let second: string;

  beforeAll(async () => {
    const claimed = await claimedDeployment('served');
    first = claimed.deploymentId;
    await publish(first, ['build of #1']);
    await runToSucceeded('served', first, { leaseId: claimed.leaseId, number: 1 });
    await publish(first, ['#1 listening', '#1 request']);
  });

  test('an app with no serving release is a 404 naming the app; the endpoint is in the capabilities', async () => {
    await stack.command<AppView>(deploymentCommands.createApp, {
      name: 'unserved',
      agentId: 'alpha',
      source: { type: 'git', url: `file://${REPOS}/unserved`, ref: 'main' },
    });
    await waitFor('the app to be projected', async () => {
      const shown = await stack.request('GET', 'apps/unserved', { token: admin });
      return shown.status === 200 || undefined;
    });
    const none = await stack.request('GET', 'apps/unserved/logs', { token: admin });
    expect([none.status, none.body.field]).toEqual([404, 'appName']);
    const capabilities = await stack.request('GET', 'capabilities', { token: admin });
    expect(capabilities.body.endpoints).toContain('GET /api/v1/apps/:name/logs');
  });

  test('the JSON tail is the serving deployment’s, with ?tail=', async () => {
    const all = await stack.request('GET', 'apps/served/logs', { token: admin });
    expect(all.status).toBe(200);
    expect(all.body.deploymentId).toBe(first);
    expect(texts(all.body)).toEqual(['build of #1', '#1 listening', '#1 request']);
    const tail = await stack.request('GET', 'apps/served/logs?tail=1', { token: alpha.accessToken });
    expect([tail.status, texts(tail.body)]).toEqual([200, ['#1 request']]);
    const bad = await stack.request('GET', 'apps/served/logs?tail=5001', { token: admin });
    expect([bad.status, bad.body.field]).toEqual([400, 'tail']);
  });

  test('another agent gets the same 403 for this app and an unknown one; an admin gets 404', async () => {
    const foreign = await stack.request('GET', 'apps/served/logs', { token: bravo.accessToken });
    const unknown = await stack.request('GET', 'apps/nosuchapp/logs', { token: bravo.accessToken });
    expect([foreign.status, unknown.status]).toEqual([403, 403]);
    expect(foreign.body.message).not.toContain(first);
    const sse = await EventStream.open('apps/served/logs', bravo.accessToken);
    expect(sse.status).toBe(403);
    sse.close();
    const missing = await stack.request('GET', 'apps/nosuchapp/logs', { token: admin });
    expect(missing.status).toBe(404);
    const badName = await stack.request('GET', 'apps/Not_A_Name/logs', { token: admin });
    expect([badName.status, badName.body.field]).toEqual([400, 'name']);
  });

  test('SSE sends the tail, then what the running release writes; Last-Event-ID resumes', async () => {
    const stream = await EventStream.open('apps/served/logs?tail=2', alpha.accessToken);
    expect(stream.status).toBe(200);
    await stream.until('the tail', () => stream.lines().flatMap((batch) => batch.x).length === 2);
    await publish(first, ['#1 live']);
    await stream.until('the live batch', () => stream.lines().some((batch) => batch.x.includes('#1 live')));
    expect(stream.lines().flatMap((batch) => batch.x)).toEqual(['#1 listening', '#1 request', '#1 live']);
    const lastId = stream.lines().at(-1)!.id;
    stream.close();

    await publish(first, ['#1 while away']);
    const resumed = await EventStream.open('apps/served/logs', admin, { 'last-event-id': String(lastId) });
    await resumed.until('the missed batch', () => resumed.lines().length >= 1);
    expect(resumed.lines().flatMap((batch) => batch.x)).toEqual(['#1 while away']);
    resumed.close();
  });

  test('after a new deployment and a rollback, the app’s logs are the deployment that started the release', async () => {
    const next = await claimedNext('served');
    second = next.deploymentId;
    await publish(second, ['#2 listening']);
    await runToSucceeded('served', second, next.claimed);
    const deployed = await stack.request('GET', 'apps/served/logs', { token: admin });
    expect([deployed.body.deploymentId, texts(deployed.body)]).toEqual([second, ['#2 listening']]);

    // The rollback starts release #1 again: its output goes to the rollback deployment.
    const rollback = await claimedNext('served', true);
    await runToSucceeded('served', rollback.deploymentId, rollback.claimed, first);
    await publish(rollback.deploymentId, ['#1 again']);
    const shown = await stack.request('GET', 'apps/served', { token: admin });
    expect((shown.body as unknown as AppView).current?.releaseId).toBe(first);
    const rolledBack = await stack.request('GET', 'apps/served/logs', { token: admin });
    expect([rolledBack.body.deploymentId, texts(rolledBack.body)]).toEqual([
      rollback.deploymentId,
      ['#1 again'],
    ]);

    // The rollback is finished, but its release runs: its own stream stays open for what comes.
    const serving = await EventStream.open(`deployments/${rollback.deploymentId}/logs`, admin);
    await serving.until('the tail', () => serving.lines().length === 1);
    await publish(rollback.deploymentId, ['#1 still running']);
    await serving.until('the live batch', () => serving.lines().length === 2);
    expect(serving.events.map((event) => event.event)).toEqual(['lines', 'lines']);
    expect(serving.ended).toBe(false);
    serving.close();

    // The deployment replaced is over: its stream sends what is stored, then `end`.
    const replaced = await EventStream.open(`deployments/${second}/logs`, admin);
    await replaced.until('the end', () => replaced.ended);
    expect(replaced.lines().flatMap((batch) => batch.x)).toEqual(['#2 listening']);
    expect(replaced.events.at(-1)).toMatchObject({ event: 'end' });
    expect(JSON.parse(replaced.events.at(-1)!.data)).toMatchObject({
      deploymentId: second,
      status: 'succeeded',
    });
  });
});
