import { hashToken } from '#auth';
import { registrationCommands } from '#contracts';
import { generatedAgentId } from '../../apps/registration/src/registration.commands.js';
import { AgentsStack, agentKeys } from '../harness/stack.js';
import { sleep } from '../harness/processes.js';

let stack: AgentsStack;
let admin: string;

beforeAll(async () => {
  stack = await AgentsStack.start();
  admin = stack.adminToken('alice');
});
afterAll(async () => {
  await stack?.stop();
});

function enrollBody(token: string, agentId?: string) {
  return { token, ...(agentId ? { agentId } : {}), natsPublicKey: agentKeys().publicKey };
}

/** An enrollment from an address of its own, which becomes the agent's (no publicAddress given). */
function enrollRequest(token: string, agentId?: string) {
  return stack.request('POST', 'agents/enroll', {
    from: stack.nextAgentAddress(),
    body: enrollBody(token, agentId),
  });
}

test('an enrollment token is shown once, stored only as its hash, and the admin is the actor', async () => {
  const response = await stack.request('POST', 'enrollment-tokens', {
    token: admin,
    body: { note: 'web fleet' },
  });
  expect(response.status).toBe(201);
  const token = response.body.token as string;
  expect(token).toMatch(/^clenr_/);
  const sequence = await stack.lastEventSequence();
  const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(stack.service);
  const message = await jsm.streams.getMessage('EVENTS', { seq: sequence });
  const text = new TextDecoder().decode(message!.data);
  expect(text).not.toContain(token);
  expect(text).not.toContain(token.slice(6));
  const event = JSON.parse(text);
  expect(event.type).toBe('EnrollmentTokenIssued');
  expect(event.aggregate).toEqual({ type: 'enrollment-token', id: hashToken(token) });
  expect(event.actor).toEqual({ kind: 'admin', id: 'alice' });
  expect(event.data.note).toBe('web fleet');
});

test('an Idempotency-Key makes a retried token request answer the same token and append nothing', async () => {
  const headers = { 'Idempotency-Key': 'fleet-token-1' };
  const first = await stack.request('POST', 'enrollment-tokens', {
    token: admin,
    headers,
    body: { note: 'retried', ttlSeconds: 600 },
  });
  expect(first.status).toBe(201);
  const before = await stack.lastEventSequence();
  const retry = await stack.request('POST', 'enrollment-tokens', {
    token: admin,
    headers,
    body: { note: 'retried', ttlSeconds: 600 },
  });
  expect(retry.status).toBe(201);
  expect(retry.body).toEqual(first.body);
  expect(await stack.lastEventSequence()).toBe(before);
  // Another admin's same key, or the same key without one, is another token.
  const other = await stack.request('POST', 'enrollment-tokens', {
    token: stack.adminToken('bob'),
    headers,
    body: { note: 'retried', ttlSeconds: 600 },
  });
  expect(other.status).toBe(201);
  expect(other.body.token).not.toBe(first.body.token);
  // The same key for a different request is refused, naming the header, and appends nothing.
  const afterOther = await stack.lastEventSequence();
  const changed = await stack.request('POST', 'enrollment-tokens', {
    token: admin,
    headers,
    body: { note: 'a different note' },
  });
  expect(changed.status).toBe(409);
  expect(changed.body).toMatchObject({ error: 'conflict', field: 'Idempotency-Key' });
  expect(await stack.lastEventSequence()).toBe(afterOther);
  // The token works, once.
  const enrolled = await enrollRequest(first.body.token as string, 'idem-1');
  expect(enrolled.status).toBe(201);
});

test('a token works once: the second use is 401 and appends nothing', async () => {
  const token = await stack.enrollmentToken(admin);
  const first = await enrollRequest(token, 'once-1');
  expect(first.status).toBe(201);
  expect(first.body.agentId).toBe('once-1');
  expect(first.body.subjects).toMatchObject({ consumer: 'agent-once-1', inboxPrefix: '_INBOX_once-1' });
  const before = await stack.lastEventSequence();
  const second = await enrollRequest(token, 'once-2');
  expect(second.status).toBe(401);
  expect(second.body).toMatchObject({ error: 'unauthorized' });
  expect(await stack.lastEventSequence()).toBe(before);
});

test('an enrollment that stopped between its appends is completed by its retry, and only by it', async () => {
  const token = await stack.enrollmentToken(admin);
  const tokenHash = hashToken(token);
  const agentId = generatedAgentId(tokenHash);
  // What a registration killed after the token's use and before the agent's enrollment leaves behind.
  const { openStore } = await import('../routes/helpers.js');
  const store = await openStore(stack);
  const history = await store.readAggregate('enrollment-token', tokenHash);
  await store.append(
    { type: 'enrollment-token', id: tokenHash },
    [{ type: 'EnrollmentTokenUsed', data: { agentId } }],
    {
      context: { actor: { kind: 'agent', id: agentId }, correlationId: 'killed-enrollment' },
      expectedSequence: history.lastSequence,
    },
  );
  // Another agent id with the used token: refused, as any use of a used token.
  expect((await enrollRequest(token, 'not-the-same')).status).toBe(401);
  // The retry (no agent id: the generated one is derived from the token) completes it.
  const retried = await enrollRequest(token);
  expect(retried.status).toBe(201);
  expect(retried.body.agentId).toBe(agentId);
  const uses = await store.readAggregate('enrollment-token', tokenHash);
  expect(uses.events.map((event) => event.type)).toEqual(['EnrollmentTokenIssued', 'EnrollmentTokenUsed']);
  expect((await store.readAggregate('agent', agentId)).events.map((event) => event.type)).toEqual([
    'AgentEnrolled',
  ]);
  // Done once, the token is spent for good.
  expect((await enrollRequest(token)).status).toBe(401);
});

test('two concurrent enrollments with the same token: exactly one agent gets in', async () => {
  const token = await stack.enrollmentToken(admin);
  const results = await Promise.all(
    ['race-1', 'race-2', 'race-3', 'race-4'].map((agentId) => enrollRequest(token, agentId)),
  );
  const statuses = results.map((result) => result.status).sort();
  expect(statuses).toEqual([201, 401, 401, 401]);
  const winner = results.find((result) => result.status === 201)!.body.agentId as string;
  // The log has exactly one use of the token and one enrolled agent among the racers.
  await stack.waitForAgentStatus(winner, 'enrolled');
  const rows = await stack.db.dataSource.query(`SELECT agent_id FROM agents WHERE agent_id LIKE 'race-%'`);
  expect(rows).toEqual([{ agent_id: winner }]);
  const uses = await stack.db.dataSource.query(
    `SELECT count(*)::int AS n FROM event_log WHERE aggregate_id = $1 AND type = 'EnrollmentTokenUsed'`,
    [hashToken(token)],
  );
  expect(uses).toEqual([{ n: 1 }]);
});

test('an expired or unknown token is 401 and appends nothing', async () => {
  const before = await stack.lastEventSequence();
  const unknown = await stack.request('POST', 'agents/enroll', {
    body: enrollBody('clenr_' + 'A'.repeat(43), 'nobody'),
  });
  expect(unknown).toMatchObject({ status: 401, body: { error: 'unauthorized' } });
  expect(await stack.lastEventSequence()).toBe(before);

  // The API's shortest lifetime is a minute; registration itself takes any future expiry.
  const token = 'clenr_' + 'B'.repeat(43);
  await stack.command('cmd.registration.issue-enrollment-token', {
    tokenHash: hashToken(token),
    expiresAt: new Date(Date.now() + 1_000).toISOString(),
  });
  await sleep(1_200);
  const afterIssue = await stack.lastEventSequence();
  const expired = await enrollRequest(token, 'late');
  expect(expired).toMatchObject({ status: 401, body: { error: 'unauthorized' } });
  expect(await stack.lastEventSequence()).toBe(afterIssue);
});

test('a taken agent id is 409 and the token stays usable', async () => {
  await stack.enroll('taken');
  const token = await stack.enrollmentToken(admin);
  const before = await stack.lastEventSequence();
  const response = await enrollRequest(token, 'taken');
  expect(response.status).toBe(409);
  expect(response.body).toMatchObject({ error: 'conflict', field: 'agentId' });
  expect(await stack.lastEventSequence()).toBe(before);
  const retry = await enrollRequest(token, 'taken-2');
  expect(retry.status).toBe(201);
});

test('without an agentId the server picks one', async () => {
  const token = await stack.enrollmentToken(admin);
  const response = await enrollRequest(token);
  expect(response.status).toBe(201);
  expect(response.body.agentId).toMatch(/^agent-[a-z2-7]{10}$/);
});

test('refresh rotates the token; a reused refresh token revokes the whole family', async () => {
  const agent = await stack.enroll('refresher');
  const first = await stack.request('POST', 'auth/refresh', { body: { refreshToken: agent.refreshToken } });
  expect(first.status).toBe(200);
  expect(first.body.refreshToken).not.toBe(agent.refreshToken);
  expect((first.body.nats as { jwt: string }).jwt).toMatch(/^eyJ/);
  const newAccess = first.body.accessToken as string;
  expect((await stack.request('GET', 'agents/refresher', { token: newAccess })).status).toBe(200);

  // The old refresh token again: reuse. The family is revoked: the new tokens stop working too.
  const reuse = await stack.request('POST', 'auth/refresh', { body: { refreshToken: agent.refreshToken } });
  expect(reuse.status).toBe(401);
  const afterReuse = await stack.request('POST', 'auth/refresh', {
    body: { refreshToken: first.body.refreshToken },
  });
  expect(afterReuse.status).toBe(401);
  expect((await stack.request('GET', 'agents/refresher', { token: newAccess })).status).toBe(401);
  expect((await stack.request('GET', 'agents/refresher', { token: agent.accessToken })).status).toBe(401);
});

test('a refresh by an agent registration no longer knows is refused and ends all its sessions', async () => {
  const agent = await stack.enroll('gone-behind');
  // Deregistered behind the API's back (as if the API stopped between the command and revoking the
  // sessions): the refresh token itself is still valid, so registration's refusal decides.
  await stack.command(registrationCommands.deregister, { agentId: 'gone-behind', reason: 'test' });
  const refresh = await stack.request('POST', 'auth/refresh', { body: { refreshToken: agent.refreshToken } });
  expect(refresh.status).toBe(401);
  const families: { revoked_reason: string | null }[] = await stack.db.dataSource.query(
    'SELECT revoked_reason FROM agent_token_families WHERE agent_id = $1',
    ['gone-behind'],
  );
  expect(families).toEqual([{ revoked_reason: 'agent is not enrolled' }]);
});

test('two concurrent refreshes with one token: one succeeds, and the reuse revokes the family', async () => {
  const agent = await stack.enroll('double-refresh');
  const results = await Promise.all(
    [1, 2].map(() => stack.request('POST', 'auth/refresh', { body: { refreshToken: agent.refreshToken } })),
  );
  expect(results.map((result) => result.status).sort()).toEqual([200, 401]);
  const winner = results.find((result) => result.status === 200)!;
  expect(
    (await stack.request('POST', 'auth/refresh', { body: { refreshToken: winner.body.refreshToken } }))
      .status,
  ).toBe(401);
});
