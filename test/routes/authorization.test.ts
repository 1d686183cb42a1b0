import type { NatsConnection } from '@nats-io/transport-node';
import { RouteRequestError, RouteRequests } from '../../apps/agent/src/routes.js';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { waitFor } from '../harness/processes.js';
import { DOMAIN, enrollAll, startRoutesStack } from './helpers.js';

/**
 * Guarantee 5, second half: an agent cannot touch another agent's routes, nor send traffic to an address
 * it does not own — over HTTP and over its own NATS prefix (with its real broker credentials).
 */
let stack: AgentsStack;
let admin: string;
let alpha: EnrolledAgent;
let bravo: EnrolledAgent;
let bravoRoute: Record<string, unknown>;
let alphaRoute: Record<string, unknown>;
let nats: NatsConnection;
const serverErrors: string[] = [];

const ALPHA_ADDRESS = '198.51.100.10';
const BRAVO_ADDRESS = '198.51.100.11';

beforeAll(async () => {
  stack = await startRoutesStack();
  admin = stack.adminToken('alice');
  const agents = await enrollAll(stack, [
    { id: 'alpha', address: ALPHA_ADDRESS },
    { id: 'bravo', address: BRAVO_ADDRESS },
  ]);
  alpha = agents.get('alpha')!;
  bravo = agents.get('bravo')!;
  const created = await stack.request('POST', 'routes', {
    token: bravo.accessToken,
    body: { kind: 'http', subdomain: 'bravo-app', target: { host: BRAVO_ADDRESS, port: 8080 } },
  });
  expect(created.status).toBe(202);
  bravoRoute = created.body;
  const mine = await stack.request('POST', 'routes', {
    token: alpha.accessToken,
    body: { kind: 'http', subdomain: 'alpha-app', target: { host: ALPHA_ADDRESS, port: 8080 } },
  });
  expect(mine.status).toBe(202);
  alphaRoute = mine.body;
  nats = await stack.connectAsAgent(alpha);
  void (async () => {
    for await (const status of nats.status()) {
      if (status.type === 'error') serverErrors.push(String(status.error?.message));
    }
  })();
});
afterAll(async () => {
  await nats?.close().catch(() => undefined);
  await stack?.stop();
});

type Attempt = [
  name: string,
  method: string,
  path: () => string,
  body: unknown,
  status: number,
  field?: string,
];

const attempts: Attempt[] = [
  ["read B's route", 'GET', () => `routes/${bravoRoute.routeId}`, undefined, 403],
  [
    "change B's route's target",
    'PATCH',
    () => `routes/${bravoRoute.routeId}`,
    { target: { host: ALPHA_ADDRESS, port: 9000 } },
    403,
  ],
  [
    "change B's route's options",
    'PATCH',
    () => `routes/${bravoRoute.routeId}`,
    { options: { tlsToTarget: true } },
    403,
  ],
  ["delete B's route", 'DELETE', () => `routes/${bravoRoute.routeId}`, undefined, 403],
  [
    'request a route for B',
    'POST',
    () => 'routes',
    { agentId: 'bravo', kind: 'http', subdomain: 'sneaky', target: { host: BRAVO_ADDRESS, port: 80 } },
    403,
    'agentId',
  ],
  ["list B's routes", 'GET', () => 'routes?agentId=bravo', undefined, 403, 'agentId'],
  [
    "route to B's address",
    'POST',
    () => 'routes',
    { kind: 'http', subdomain: 'to-bravo', target: { host: BRAVO_ADDRESS, port: 8080 } },
    403,
    'target.host',
  ],
  [
    'route to an allowed private address it does not own',
    'POST',
    () => 'routes',
    { kind: 'http', subdomain: 'to-lan', target: { host: '127.0.0.250', port: 8080 } },
    403,
    'target.host',
  ],
  [
    'move its own route to an address it does not own',
    'PATCH',
    () => `routes/${alphaRoute.routeId}`,
    { target: { host: '203.0.113.250', port: 8080 } },
    403,
    'target.host',
  ],
  ['rebuild projections', 'POST', () => 'admin/projections/all/rebuild', {}, 403],
  ['list dead letters', 'GET', () => 'admin/dead-letters', undefined, 403],
  ['read the event log', 'GET', () => 'events', undefined, 403],
];

// Every row has all six values: jest would take a missing one for a `done` callback.
test.each(attempts.map((row) => [row[0], row[1], row[2], row[3], row[4], row[5]] as const))(
  'agent A cannot %s (%s), and nothing is appended',
  async (_name, method, path, body, status, field) => {
    const before = await stack.lastEventSequence();
    const response = await stack.request(method, path(), { token: alpha.accessToken, body });
    expect(response.status).toBe(status);
    expect(response.body.error).toBe('forbidden');
    if (field) expect(response.body.field).toBe(field);
    expect(await stack.lastEventSequence()).toBe(before);
  },
);

test("B's route is untouched, and A sees only its own routes", async () => {
  const seen = await stack.request('GET', `routes/${bravoRoute.routeId}`, { token: admin });
  expect(seen.body).toMatchObject({
    routeId: bravoRoute.routeId,
    status: expect.not.stringMatching('removed'),
    revision: 1,
  });
  expect(seen.body.target).toEqual({ host: BRAVO_ADDRESS, port: 8080 });
  const list = await stack.request('GET', 'routes', { token: alpha.accessToken });
  expect(list.status).toBe(200);
  expect((list.body.routes as { agentId: string }[]).every((route) => route.agentId === 'alpha')).toBe(true);
  const unauthenticated = await stack.request('GET', 'routes');
  expect(unauthenticated.status).toBe(401);
});

test('an admin may act on any route and target any address the installation allows', async () => {
  const read = await stack.request('GET', `routes/${bravoRoute.routeId}`, { token: admin });
  expect(read.status).toBe(200);
  const forB = await stack.request('POST', 'routes', {
    token: admin,
    body: {
      agentId: 'bravo',
      kind: 'http',
      subdomain: 'bravo-lan',
      target: { host: '127.20.30.40', port: 80 },
    },
  });
  expect(forB).toMatchObject({
    status: 202,
    body: { agentId: 'bravo', target: { host: '127.20.30.40', port: 80 } },
  });
  const moved = await stack.request('PATCH', `routes/${forB.body.routeId}`, {
    token: admin,
    body: { target: { host: '2001:DB8::1', port: 81 } },
  });
  expect(moved).toMatchObject({
    status: 202,
    body: { revision: 2, target: { host: '2001:db8::1', port: 81 } },
  });
  const removed = await stack.request('DELETE', `routes/${forB.body.routeId}`, { token: admin });
  expect(removed).toMatchObject({ status: 202, body: { status: 'removed' } });
  // Still not an address that is not a host, nor the front itself, nor the cloud's metadata service.
  for (const host of ['0.0.0.0', '127.0.0.1', '::1', '169.254.169.254', '10.20.30.40']) {
    const nowhere = await stack.request('POST', 'routes', {
      token: admin,
      body: { agentId: 'bravo', kind: 'http', subdomain: 'nowhere', target: { host, port: 80 } },
    });
    expect({ host, ...nowhere }).toMatchObject({ host, status: 400, body: { field: 'target.host' } });
  }
});

test('over NATS with its own credentials, A manages its own routes with the agent helper', async () => {
  const routes = new RouteRequests(nats, 'alpha');
  const created = await routes.request(
    { kind: 'tls-sni', hostname: `alpha.mongodb.${DOMAIN}`, target: { host: ALPHA_ADDRESS, port: 27017 } },
    { idempotencyKey: 'nats-db-1' },
  );
  expect(created).toMatchObject({ outcome: 'created', route: { agentId: 'alpha', status: 'pending' } });
  const again = await routes.request(
    { kind: 'tls-sni', hostname: `alpha.mongodb.${DOMAIN}`, target: { host: ALPHA_ADDRESS, port: 27017 } },
    { idempotencyKey: 'nats-db-1' },
  );
  expect(again).toMatchObject({ outcome: 'existing', route: { routeId: created.route.routeId } });
  const routeId = created.route.routeId;
  expect((await routes.get(routeId)).hostname).toBe(`alpha.mongodb.${DOMAIN}`);
  const updated = await routes.update(routeId, { target: { host: ALPHA_ADDRESS, port: 27018 } });
  expect(updated).toMatchObject({ outcome: 'updated', route: { revision: 2, target: { port: 27018 } } });
  await waitFor('the route in the projection', async () => {
    const list = await routes.list({ kind: 'tls-sni' });
    return list.routes.some((route) => route.routeId === routeId && route.revision === 2) || undefined;
  });
  expect(await routes.remove(routeId, 'moved elsewhere')).toMatchObject({
    outcome: 'removed',
    route: { status: 'removed', statusReason: 'moved elsewhere' },
  });
  expect(serverErrors).toEqual([]);
});

test("over NATS, A cannot touch B's route nor route to B's address: same rules, nothing appended", async () => {
  const routes = new RouteRequests(nats, 'alpha');
  const before = await stack.lastEventSequence();
  const refusals: [Promise<unknown>, string, string | undefined][] = [
    [routes.get(bravoRoute.routeId as string), 'forbidden', undefined],
    [routes.update(bravoRoute.routeId as string, { options: { tlsToTarget: true } }), 'forbidden', undefined],
    [routes.remove(bravoRoute.routeId as string), 'forbidden', undefined],
    [
      routes.request({ kind: 'http', subdomain: 'x1', target: { host: BRAVO_ADDRESS, port: 80 } }),
      'forbidden',
      'target.host',
    ],
    [
      routes.request({
        agentId: 'bravo',
        kind: 'http',
        subdomain: 'x2',
        target: { host: BRAVO_ADDRESS, port: 80 },
      } as never),
      'forbidden',
      'agentId',
    ],
    [routes.list({ agentId: 'bravo' } as never), 'forbidden', 'agentId'],
  ];
  // Settle every attempt at once: a refusal that arrives before its turn must not count as unhandled.
  const outcomes = refusals.map(([attempt]) =>
    attempt.then(
      () => undefined,
      (caught: unknown) => caught,
    ),
  );
  for (const [index, [, code, field]] of refusals.entries()) {
    const error = await outcomes[index];
    expect(error).toBeInstanceOf(RouteRequestError);
    expect((error as RouteRequestError).body.error).toBe(code);
    if (field) expect((error as RouteRequestError).body.field).toBe(field);
  }
  expect(await stack.lastEventSequence()).toBe(before);
});

test("A cannot even publish a request under B's prefix: the broker refuses it", async () => {
  const before = await stack.lastEventSequence();
  const posing = new RouteRequests(nats, 'bravo');
  await expect(
    posing.remove(bravoRoute.routeId as string, undefined, { timeoutMs: 1_500 }),
  ).rejects.toThrow();
  await waitFor('the permissions violation', () =>
    serverErrors.find((error) =>
      error.includes('Permissions Violation for Publish to "agents.bravo.out.req.routes.remove"'),
    ),
  );
  expect(await stack.lastEventSequence()).toBe(before);
  const still = await stack.request('GET', `routes/${bravoRoute.routeId}`, { token: admin });
  expect(still.body.status).not.toBe('removed');
});
