import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { EXIT_CODES } from '../../apps/agent/src/agent.js';
import { startApp } from '../harness/apps.js';
import { sleep, makeTempDir, waitFor, type RunningProcess } from '../harness/processes.js';
import { AgentsStack } from '../harness/stack.js';

/**
 * A real agent process (node dist/apps/agent/src/main.js) against the real stack: it enrolls once,
 * keeps its identity 0600, beats (online), refreshes its tokens, catches up on what was published
 * while it was stopped, goes offline when stopped, and loses its broker credentials on deregistration.
 */
let stack: AgentsStack;
let temporary: { path: string; remove(): Promise<void> };
let agent: RunningProcess | undefined;
let pongs: Subscription;
const received: { n: number }[] = [];
let configPath: string;
let stateDir: string;

beforeAll(async () => {
  stack = await AgentsStack.start({ livenessTimeoutMs: 1_500, livenessCheckMs: 200, accessTokenTtlS: 4 });
  temporary = await makeTempDir('agent');
  stateDir = join(temporary.path, 'state');
  configPath = join(temporary.path, 'agent.json');
  await writeFile(
    configPath,
    JSON.stringify({
      apiUrl: stack.baseUrl,
      enrollmentToken: await stack.enrollmentToken(),
      agentId: 'proc-a',
      // The agent enrolls from its own address, which the front takes as the agent's.
      sourceAddress: '127.0.0.44',
      labels: { role: 'web' },
      stateDir,
      heartbeatIntervalMs: 300,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 },
    }),
  );
  pongs = stack.service.subscribe('agents.proc-a.out.pong', {
    callback: (_error, message) => {
      received.push((message.json() as { received: { n: number } }).received);
    },
  });
});
afterAll(async () => {
  await agent?.stop();
  pongs?.unsubscribe();
  await temporary?.remove();
  await stack?.stop();
});

function startAgent(): RunningProcess {
  return startApp('agent', { CL_LOG_LEVEL: 'info' }, ['--config', configPath]);
}

async function ping(n: number): Promise<void> {
  await jetstream(stack.service).publish('agents.proc-a.in.ping', JSON.stringify({ n }));
}

const logOf = (process: RunningProcess) =>
  process
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

test('it enrolls once and keeps its identity 0600; the seed never left it', async () => {
  agent = startAgent();
  const identityPath = join(stateDir, 'identity.json');
  await waitFor('the identity file', () => stat(identityPath).then(() => true), { timeoutMs: 20_000 });
  expect((await stat(identityPath)).mode & 0o777).toBe(0o600);
  const identity = JSON.parse(await readFile(identityPath, 'utf8'));
  expect(identity.agentId).toBe('proc-a');
  expect(identity.natsSeed).toMatch(/^SU/);
  await expect(stat(join(stateDir, 'pending-key.json'))).rejects.toThrow();

  // Nothing the server stored contains the seed; the enrolled key is the agent's own public key.
  const jsm = await jetstreamManager(stack.service);
  const last = (await jsm.streams.info('EVENTS')).state.last_seq;
  const stored: string[] = [];
  for (let seq = 1; seq <= last; seq++) {
    const message = await jsm.streams.getMessage('EVENTS', { seq });
    if (message) stored.push(new TextDecoder().decode(message.data));
  }
  expect(stored.join('\n')).not.toContain(identity.natsSeed);
  const enrolled = stored.map((text) => JSON.parse(text)).find((event) => event.type === 'AgentEnrolled');
  expect(enrolled.data.natsPublicKey).toBe(identity.natsPublicKey);
});

test('heartbeats bring it online (one AgentCameOnline, not one event per beat)', async () => {
  await stack.waitForAgentStatus('proc-a', 'online');
  const before = await stack.lastEventSequence();
  await sleep(1_000); // about three more heartbeats
  expect(await stack.lastEventSequence()).toBe(before);
});

test('its last-seen time is its last heartbeat, not the time it came online', async () => {
  const token = stack.adminToken();
  const seenAt = async () =>
    Date.parse((await stack.request('GET', 'agents/proc-a', { token })).body.lastSeenAt as string);
  const [online] = await stack.db.dataSource.query(
    `SELECT last_seen_at FROM agents WHERE agent_id = 'proc-a'`,
  );
  const cameOnline = new Date(online.last_seen_at).getTime();
  // Heartbeats are recorded at most every 5 s per agent: within two of those it has moved on.
  await waitFor('a later last-seen time', async () => (await seenAt()) > cameOnline + 2_000, {
    timeoutMs: 15_000,
  });
  const listed = await stack.request('GET', 'agents', { token });
  const row = (listed.body.agents as { agentId: string; lastSeenAt: string }[]).find(
    (agent) => agent.agentId === 'proc-a',
  );
  expect(Date.parse(row!.lastSeenAt)).toBeGreaterThan(cameOnline + 2_000);
});

test('a message to its subject is handled and acked; tokens are refreshed before they expire', async () => {
  await ping(1);
  await waitFor('pong 1', () => received.some((entry) => entry.n === 1));
  // Access tokens live 4 s here: the agent refreshes them (and its NATS JWT) on its own.
  await waitFor('a token refresh', () => logOf(agent!).some((line) => line.msg === 'tokens refreshed'), {
    timeoutMs: 15_000,
  });
});

test('stopped (SIGTERM: clean exit), it goes offline; what was published meanwhile arrives after restart', async () => {
  await agent!.stop('SIGTERM');
  expect(agent!.child.exitCode).toBe(0);
  expect(logOf(agent!).some((line) => line.msg === 'agent stopped')).toBe(true);
  await ping(2);
  await ping(3);
  await stack.waitForAgentStatus('proc-a', 'offline');
  expect(received.some((entry) => entry.n === 2)).toBe(false);

  agent = startAgent();
  await waitFor(
    'pongs 2 and 3 after the restart',
    () => [2, 3].every((n) => received.some((entry) => entry.n === n)),
    {
      timeoutMs: 20_000,
    },
  );
  await stack.waitForAgentStatus('proc-a', 'online');
  // It did not enroll again: the stored identity was used (the token is spent anyway).
  expect(logOf(agent).some((line) => line.msg === 'enrolled')).toBe(false);
  // Every message was acked: nothing is pending on its consumer.
  const jsm = await jetstreamManager(stack.service);
  await waitFor('acks', async () => {
    const info = await jsm.consumers.info('AGENTS', 'agent-proc-a');
    return info.num_ack_pending === 0 && info.num_pending === 0;
  });
});

test('SIGTERM while the broker is away: it exits at once (it does not wait for a reconnect)', async () => {
  await stack.nats.stop();
  try {
    await waitFor('the agent to see the broker gone', () =>
      logOf(agent!).some((line) => line.msg === 'disconnected from NATS'),
    );
    const stopped = agent!.stop('SIGTERM');
    // Far less than a reconnect backoff or a drain that waits for the broker (it took ~29 s).
    await waitFor('the agent to exit', () => agent!.child.exitCode !== null, { timeoutMs: 5_000 });
    await stopped;
    expect(agent!.child.exitCode).toBe(0);
  } finally {
    await stack.nats.start();
  }
  agent = startAgent();
  await stack.waitForAgentStatus('proc-a', 'online', 30_000);
  // The services reconnect by themselves; registration takes commands again before the next test.
  const admin = stack.adminToken();
  await waitFor(
    'registration to answer again',
    async () => (await stack.request('POST', 'enrollment-tokens', { token: admin, body: {} })).status === 201,
    { timeoutMs: 30_000, intervalMs: 250 },
  );
});

test('deregistration: its connection is dropped, its credentials and tokens stop working', async () => {
  // Tokens live 4 s here: take the identity once the agent holds one with time left (after the restarts
  // of the test before, on a loaded machine, its refresh may be under way).
  const identity = await waitFor(
    'an access token with a few seconds left',
    async () => {
      const read = JSON.parse(await readFile(join(stateDir, 'identity.json'), 'utf8'));
      return Date.parse(read.accessTokenExpiresAt) - Date.now() > 2_000 ? read : undefined;
    },
    // Its refresh may be backing off after the broker's restart in the test before, on a loaded machine.
    { timeoutMs: 45_000, intervalMs: 100 },
  ).catch((error: unknown) => {
    // What the agent said about its refreshes is what explains a miss.
    throw new Error(`${String(error)}\n${agent!.output().slice(-4000)}`);
  });
  // A second connection with the agent's credentials, to watch the server drop it.
  const watcher: NatsConnection = await stack.nats.connectWithJwt(identity.natsJwt, identity.natsSeed, {
    inboxPrefix: '_INBOX_proc-a',
    maxReconnectAttempts: 0,
  });
  const watcherErrors: string[] = [];
  void (async () => {
    for await (const status of watcher.status())
      if (status.type === 'error') watcherErrors.push(String(status.error));
  })();

  const response = await stack.request('DELETE', 'agents/proc-a', { token: identity.accessToken });
  expect(response).toMatchObject({ status: 200, body: { agentId: 'proc-a', changed: true } });

  // The agent's account is pushed with its users revoked and no connections allowed: the server drops
  // the connection for either reason, whichever it applies first.
  const cutOff = /Authentication Revoked|maximum account active connections exceeded/;
  await waitFor('the server to revoke the connection', () =>
    watcherErrors.some((error) => cutOff.test(error)),
  );
  await waitFor('the watcher to be closed', () => watcher.isClosed());
  await expect(stack.nats.connectWithJwt(identity.natsJwt, identity.natsSeed)).rejects.toThrow(
    /Authorization Violation/,
  );
  await waitFor('the agent process to be cut off', () =>
    logOf(agent!).some((line) => cutOff.test(JSON.stringify(line))),
  );
  // It learns why (its refresh is refused), says so once, and exits with the code that a service
  // manager does not restart — instead of retrying forever.
  await waitFor('the agent process to exit', () => agent!.child.exitCode !== null, { timeoutMs: 20_000 });
  expect(agent!.child.exitCode).toBe(EXIT_CODES.credentialsRefused);
  expect(
    logOf(agent!).filter((line) => String(line.msg).includes("refused this agent's credentials")),
  ).toHaveLength(1);

  expect((await stack.request('GET', 'agents/proc-a', { token: identity.accessToken })).status).toBe(401);
  const refresh = await stack.request('POST', 'auth/refresh', {
    body: { refreshToken: identity.refreshToken },
  });
  expect(refresh.status).toBe(401);
  await expect(
    jetstreamManager(stack.service).then((jsm) => jsm.consumers.info('AGENTS', 'agent-proc-a')),
  ).rejects.toThrow(/consumer not found/);
  await stack.waitForAgentStatus('proc-a', 'deregistered');
}, 90_000);

test('the revocation survives restarts of nats-server and of registration', async () => {
  const identity = JSON.parse(await readFile(join(stateDir, 'identity.json'), 'utf8'));
  await stack.stopRegistration();
  await stack.nats.stop();
  await stack.nats.start();
  await expect(stack.nats.connectWithJwt(identity.natsJwt, identity.natsSeed)).rejects.toThrow(
    /Authorization Violation/,
  );
  await stack.startRegistration();
  await expect(stack.nats.connectWithJwt(identity.natsJwt, identity.natsSeed)).rejects.toThrow(
    /Authorization Violation/,
  );
  // Service credentials still work after the restarts.
  const service = await stack.nats.connectWithCreds(stack.installation.layout.credsOf('registration'));
  await service.close();
});
