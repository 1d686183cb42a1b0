import { startRoutesStack } from '../routes/helpers.js';
import { agentKeys, type AgentsStack } from '../harness/stack.js';

/**
 * Issue 13.2: an agent cannot point the front at the front itself, at the cloud's metadata service, at a
 * network it was not allowed, or at another agent's address. Its address is the one it enrolls from
 * (unless an admin approves another with the token), it passes the installation's address policy, and
 * one agent's address is not another's unless an admin approves sharing it. Route targets pass the same
 * policy, for admins too. Real registration, routing, API and nats-server; every refusal appends nothing.
 */
let stack: AgentsStack;
let admin: string;

/** Never a host the front may send traffic to, whatever the installation allows. */
const NEVER = [
  '127.0.0.1',
  '0.0.0.0',
  '::',
  '::1',
  '::ffff:127.0.0.1',
  '169.254.169.254',
  'fe80::1',
  '224.0.0.1',
  '255.255.255.255',
  // Private, and not in this installation's CL_ALLOWED_PRIVATE_ADDRESSES.
  '10.0.0.1',
];

beforeAll(async () => {
  stack = await startRoutesStack();
  admin = stack.adminToken('alice');
});
afterAll(async () => {
  await stack?.stop();
});

function enroll(
  token: string,
  agentId: string,
  from: string,
  extra: { publicAddress?: string; headers?: Record<string, string> } = {},
) {
  return stack.request('POST', 'agents/enroll', {
    from,
    ...(extra.headers ? { headers: extra.headers } : {}),
    body: {
      token,
      agentId,
      natsPublicKey: agentKeys().publicKey,
      ...(extra.publicAddress ? { publicAddress: extra.publicAddress } : {}),
    },
  });
}

test.each(NEVER)(
  'enrolling as %s is refused naming publicAddress, and the token stays usable',
  async (address) => {
    const token = await stack.enrollmentToken(admin);
    const before = await stack.lastEventSequence();
    const refused = await enroll(token, 'never', '127.0.0.50', { publicAddress: address });
    expect(refused).toMatchObject({ status: 400, body: { error: 'invalid', field: 'publicAddress' } });
    expect(await stack.lastEventSequence()).toBe(before);
    const agentId = `ok-${Math.random().toString(36).slice(2, 8)}`;
    expect((await enroll(token, agentId, stack.nextAgentAddress())).status).toBe(201);
  },
);

test.each(NEVER)('a token cannot approve %s', async (address) => {
  const before = await stack.lastEventSequence();
  const refused = await stack.request('POST', 'enrollment-tokens', {
    token: admin,
    body: { approvedAddresses: ['198.51.100.99', address] },
  });
  expect(refused).toMatchObject({ status: 400, body: { field: 'approvedAddresses.1' } });
  expect(await stack.lastEventSequence()).toBe(before);
});

test('an agent on the front itself (enrolling from 127.0.0.1) is refused', async () => {
  const token = await stack.enrollmentToken(admin);
  const before = await stack.lastEventSequence();
  const refused = await enroll(token, 'on-the-front', '127.0.0.1');
  expect(refused).toMatchObject({ status: 400, body: { field: 'publicAddress' } });
  expect(refused.body.message).toMatch(/loopback|front/);
  expect(await stack.lastEventSequence()).toBe(before);
});

test('without publicAddress the agent is enrolled with the address it came from', async () => {
  const from = stack.nextAgentAddress();
  const enrolled = await enroll(await stack.enrollmentToken(admin), 'implicit', from);
  expect(enrolled.status).toBe(201);
  await stack.waitForAgentStatus('implicit', 'enrolled');
  expect((await stack.agentRow('implicit'))?.public_address).toBe(from);
});

test('another address than the one it came from is 403, unless the token approves it', async () => {
  const claimed = '203.0.113.44';
  const token = await stack.enrollmentToken(admin);
  const before = await stack.lastEventSequence();
  const refused = await enroll(token, 'elsewhere', stack.nextAgentAddress(), { publicAddress: claimed });
  expect(refused).toMatchObject({ status: 403, body: { error: 'forbidden', field: 'publicAddress' } });
  expect(refused.body.message).toMatch(/approvedAddresses/);
  expect(await stack.lastEventSequence()).toBe(before);

  // X-Forwarded-For is not believed from a peer that is not a trusted proxy (none are, here).
  const forwarded = await enroll(token, 'elsewhere', stack.nextAgentAddress(), {
    publicAddress: claimed,
    headers: { 'x-forwarded-for': claimed },
  });
  expect(forwarded.status).toBe(403);

  const approvedToken = await stack.enrollmentToken(admin, undefined, [claimed]);
  const approved = await enroll(approvedToken, 'behind-nat', stack.nextAgentAddress(), {
    publicAddress: claimed,
  });
  expect(approved.status).toBe(201);
  await stack.waitForAgentStatus('behind-nat', 'enrolled');
  expect((await stack.agentRow('behind-nat'))?.public_address).toBe(claimed);
});

test("another agent's address is 409 naming it; shared only when approved, and free again after it left", async () => {
  const address = stack.nextAgentAddress();
  expect((await enroll(await stack.enrollmentToken(admin), 'first-holder', address)).status).toBe(201);

  const token = await stack.enrollmentToken(admin);
  const before = await stack.lastEventSequence();
  const taken = await enroll(token, 'second-holder', address);
  expect(taken).toMatchObject({ status: 409, body: { error: 'conflict', field: 'publicAddress' } });
  expect(taken.body.message).toContain('first-holder');
  expect(await stack.lastEventSequence()).toBe(before);
  // The token was not used up by the refusal.
  expect((await enroll(token, 'second-holder', stack.nextAgentAddress())).status).toBe(201);

  const sharing = await enroll(
    await stack.enrollmentToken(admin, undefined, [address]),
    'approved-sharer',
    address,
  );
  expect(sharing.status).toBe(201);

  // Once its holders are deregistered, the address can be had again.
  for (const agentId of ['first-holder', 'approved-sharer']) {
    expect((await stack.request('DELETE', `agents/${agentId}`, { token: admin })).status).toBe(200);
  }
  expect((await enroll(await stack.enrollmentToken(admin), 'next-holder', address)).status).toBe(201);
});

test.each(NEVER)('%s is refused as a route target, for an agent and for an admin', async (host) => {
  const agent = await stack.enroll(`target-${NEVER.indexOf(host)}`);
  const before = await stack.lastEventSequence();
  for (const [token, agentId] of [
    [agent.accessToken, undefined],
    [admin, agent.agentId],
  ] as const) {
    const refused = await stack.request('POST', 'routes', {
      token,
      body: {
        ...(agentId ? { agentId } : {}),
        kind: 'http',
        subdomain: `to-${NEVER.indexOf(host)}`,
        target: { host, port: 8080 },
      },
    });
    expect({ host, status: refused.status, field: refused.body.field }).toEqual({
      host,
      status: 400,
      field: 'target.host',
    });
  }
  expect(await stack.lastEventSequence()).toBe(before);
});
