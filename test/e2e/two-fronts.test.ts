/**
 * Issue 14: two real fronts (each its own HAProxy, Data Plane API and proxy-sync process). `active` means
 * routed by every proxy node that is not stale, with each node's state in the answer; a node whose
 * proxy-sync stopped reporting becomes `stale` (an event on the transition), and is waited for by no one
 * until it reports again.
 */
import { httpAgent, type Agent as App } from '../proxy-sync/helpers.js';
import { waitFor } from '../harness/processes.js';
import { DOMAIN, E2eStack, NODE, SECOND_NODE, type RealAgent } from './stack.js';

const STALE_AFTER_MS = 4_000;
let e2e: E2eStack;
let web: RealAgent;
let shop: App;

beforeAll(async () => {
  e2e = await E2eStack.start({
    // Each proxy-sync passes every second, so its record is fresh; routing checks twice a second.
    reconcileIntervalMs: 1_000,
    env: { CL_PROXY_STALE_AFTER_MS: String(STALE_AFTER_MS), CL_PROXY_STALE_CHECK_MS: '500' },
  });
  await e2e.startSecondFront();
  web = await e2e.startAgent('web-a', '127.0.0.2');
  shop = await httpAgent('127.0.0.2', 'web-a');
}, 180_000);

afterAll(async () => {
  await shop?.close();
  await e2e?.stop();
});

interface NodeState {
  node: string;
  state: string;
}

async function create(subdomain: string, timeoutMs: number) {
  return e2e.stack.request('POST', `routes?wait=active&timeout=${timeoutMs}`, {
    token: await web.token(),
    body: { kind: 'http', subdomain, target: { host: '127.0.0.2', port: shop.port } },
  });
}

const statesOf = (body: Record<string, unknown>) =>
  Object.fromEntries((body.nodes as NodeState[]).map((node) => [node.node, node.state]));

test('active means routed by both fronts, each named in the answer', async () => {
  const created = await create('both', 20_000);
  expect(created).toMatchObject({ status: 200, body: { status: 'active' } });
  expect(statesOf(created.body)).toEqual({ [NODE]: 'applied', [SECOND_NODE]: 'applied' });
  expect((await e2e.https(`both.apps.${DOMAIN}`)).status).toBe(200);
  expect((await e2e.httpsSecond(`both.apps.${DOMAIN}`)).status).toBe(200);
});

test('a front that stopped is waited for until it is stale; then active needs only the other', async () => {
  await e2e.stopSecondProxySync('SIGKILL');
  const stoppedAt = Date.now();

  // Not stale yet: one node routing it is not enough.
  const early = await create('early', 1_000);
  if (Date.now() - stoppedAt < STALE_AFTER_MS) {
    expect(early.status).toBe(202);
    expect(early.body.status).toBe('pending');
    expect(statesOf(early.body)).toEqual({ [NODE]: 'applied', [SECOND_NODE]: 'pending' });
  }

  // Stale: one ProxyNodeStatusChanged records it, and the dashboard's list shows it.
  const nodes = await waitFor(
    'the second front to be stale',
    async () => {
      const answer = await e2e.request('GET', 'proxy-nodes');
      const second = (answer.body.nodes as { node: string; status: string }[]).find(
        (node) => node.node === SECOND_NODE,
      );
      return second?.status === 'stale' ? answer.body.nodes : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  expect(nodes).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ node: NODE, status: 'in-sync' }),
      expect.objectContaining({ node: SECOND_NODE, status: 'stale' }),
    ]),
  );
  const transitions = (
    await e2e.request('GET', `events?type=ProxyNodeStatusChanged&aggregateId=${SECOND_NODE}`)
  ).body.events as { actor: { id: string } }[];
  expect(transitions[0]!.actor).toEqual({ kind: 'service', id: 'routing' });

  // The route asked for before is active now, and a new one is active at once: the stale node is named.
  const before = await e2e.request('GET', `routes/${early.body.routeId as string}`);
  expect(before.body.status).toBe('active');
  const later = await create('later', 20_000);
  expect(later).toMatchObject({ status: 200, body: { status: 'active' } });
  expect(statesOf(later.body)).toEqual({ [NODE]: 'applied', [SECOND_NODE]: 'stale' });
  expect((await e2e.https(`later.apps.${DOMAIN}`)).status).toBe(200);
});

test('started again, the stale front reports in-sync itself and routes what it missed', async () => {
  await e2e.startSecondProxySync();
  await waitFor(
    'the second front in sync in the log',
    async () => {
      const answer = await e2e.request('GET', 'proxy-nodes');
      const second = (answer.body.nodes as { node: string; status: string }[]).find(
        (node) => node.node === SECOND_NODE,
      );
      return second?.status === 'in-sync' ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const later = await waitFor('the missed route applied on both', async () => {
    const routes = (await e2e.request('GET', 'routes')).body.routes as { hostname: string }[];
    const route = routes.find((item) => item.hostname === `later.apps.${DOMAIN}`) as
      (Record<string, unknown> & { nodes: NodeState[] }) | undefined;
    return route && route.nodes.every((node) => node.state === 'applied') ? route : undefined;
  });
  expect(later.status).toBe('active');
  expect((await e2e.httpsSecond(`later.apps.${DOMAIN}`)).status).toBe(200);
});
