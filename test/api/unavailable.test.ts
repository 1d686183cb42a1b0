import { startRoutesStack } from '../routes/helpers.js';
import { waitFor } from '../harness/processes.js';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';

/**
 * Issue 14: a command that cannot be delivered is a 503 with Retry-After that names what is missing
 * (the service, or the broker), appends nothing, and works again once the part is back.
 */
let stack: AgentsStack;
let admin: string;
let agent: EnrolledAgent;

beforeAll(async () => {
  stack = await startRoutesStack();
  admin = stack.adminToken('alice');
  agent = await stack.enroll('waiting');
});
afterAll(async () => {
  await stack?.stop();
});

const route = (subdomain: string) => ({
  kind: 'http',
  subdomain,
  target: { host: agent.address, port: 8080 },
});

async function expectUnavailable(
  response: { status: number; body: Record<string, unknown>; headers?: unknown },
  part: RegExp,
) {
  expect(response.status).toBe(503);
  expect(response.body.error).toBe('unavailable');
  expect(response.body.message).toMatch(part);
}

async function post(path: string, token: string, body: unknown) {
  const response = await fetch(`${stack.baseUrl}/api/v1/${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: (await response.json()) as Record<string, unknown>,
  };
}

test('routing stopped: POST /routes is 503 naming routing, with Retry-After, and appends nothing', async () => {
  await stack.stopRouting();
  try {
    const before = await stack.lastEventSequence();
    const refused = await post('routes', agent.accessToken, route('while-down'));
    await expectUnavailable(refused, /routing service is not running/);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(await stack.lastEventSequence()).toBe(before);
  } finally {
    await stack.startRouting();
  }
  const accepted = await post('routes', agent.accessToken, route('while-down'));
  expect(accepted.status).toBe(202);
});

test('registration stopped: issuing an enrollment token is 503 naming registration', async () => {
  await stack.stopRegistration();
  try {
    const refused = await post('enrollment-tokens', admin, {});
    await expectUnavailable(refused, /registration service is not running/);
    expect(refused.retryAfter).not.toBeNull();
  } finally {
    await stack.startRegistration();
  }
  expect((await post('enrollment-tokens', admin, {})).status).toBe(201);
});

test('the broker stopped: commands are 503 naming the broker, and work again when it is back', async () => {
  await stack.nats.stop();
  try {
    const refused = await post('routes', agent.accessToken, route('broker-down'));
    await expectUnavailable(refused, /message broker \(NATS\) is not reachable/);
    expect(refused.retryAfter).not.toBeNull();
  } finally {
    await stack.nats.start();
  }
  // The API and the services reconnect by themselves.
  const accepted = await waitFor(
    'a command to go through again',
    async () => {
      const response = await post('routes', agent.accessToken, route('broker-down'));
      return response.status === 202 ? response : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  expect(accepted.body.hostname).toMatch(/^broker-down\./);
});
