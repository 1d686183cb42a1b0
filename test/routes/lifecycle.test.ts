import { randomUUID } from 'node:crypto';
import type { EventStore } from '#eventstore';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { sleep, waitFor } from '../harness/processes.js';
import {
  DOMAIN,
  enrollAll,
  openStore,
  projectorCaughtUp,
  reportApplied,
  reportFailed,
  startRoutesStack,
} from './helpers.js';

/**
 * A route's lifecycle as the projection shows it (`pending → active | failed | removed`), with the proxy
 * nodes' reports appended as proxy-sync appends them; `?wait=active`; stale claims; the event log API.
 */
let stack: AgentsStack;
let store: EventStore;
let admin: string;
let agent: EnrolledAgent;
let other: EnrolledAgent;

const ADDRESS = '198.51.100.70';
const target = { host: ADDRESS, port: 8080 };

beforeAll(async () => {
  // A short grace period, so a stale claim can be taken over within the test.
  stack = await startRoutesStack({
    env: {
      CL_ROUTING_CLAIM_GRACE_MS: '1500',
      CL_ROUTING_PROJECTION_WAIT_MS: '1500',
      CL_ROUTING_SWEEP_MS: '300',
    },
  });
  store = await openStore(stack);
  admin = stack.adminToken('alice');
  const agents = await enrollAll(stack, [
    { id: 'life', address: ADDRESS },
    { id: 'other', address: ADDRESS },
    { id: 'gone' },
    { id: 'late' },
  ]);
  agent = agents.get('life')!;
  other = agents.get('other')!;
});
afterAll(async () => {
  await stack?.stop();
});

async function row(routeId: string, revision: number, status: string) {
  return waitFor(`route ${routeId} ${status} at revision ${revision}`, async () => {
    const response = await stack.request('GET', `routes/${routeId}`, { token: admin });
    return response.body.revision === revision && response.body.status === status ? response.body : undefined;
  });
}

test('pending → active for its revision; an update makes it pending; failed unless another node has it', async () => {
  const created = await stack.request('POST', 'routes', {
    token: agent.accessToken,
    body: { kind: 'http', subdomain: 'cycle', target, options: { tlsToTarget: true } },
  });
  expect(created).toMatchObject({
    status: 202,
    body: { status: 'pending', revision: 1, options: { tlsToTarget: true } },
  });
  const routeId = created.body.routeId as string;
  // Readable at once, even before the projector has it (the routing service reads the log).
  const early = await stack.request('GET', `routes/${routeId}`, { token: agent.accessToken });
  expect(early).toMatchObject({ status: 200, body: { routeId, status: 'pending' } });

  await reportApplied(store, routeId, 1, 'front-1', 42.4);
  const active = await row(routeId, 1, 'active');
  expect(active).toMatchObject({
    propagationMs: 42,
    configVersion: 11,
    applied: { 'front-1': { revision: 1 } },
  });

  const patched = await stack.request('PATCH', `routes/${routeId}`, {
    token: agent.accessToken,
    body: { target: { host: ADDRESS, port: 9090 } },
  });
  expect(patched).toMatchObject({
    status: 202,
    body: { revision: 2, status: 'pending', target: { port: 9090 } },
  });
  await row(routeId, 2, 'pending');
  // A late report about revision 1 changes the node's entry, not the status.
  await reportApplied(store, routeId, 1, 'front-2');
  await reportFailed(store, routeId, 1, 'front-1');
  await projectorCaughtUp(stack);
  expect((await stack.request('GET', `routes/${routeId}`, { token: admin })).body).toMatchObject({
    status: 'pending',
    applied: { 'front-2': { revision: 1 } },
  });
  await reportApplied(store, routeId, 2, 'front-1');
  await row(routeId, 2, 'active');
  await reportFailed(store, routeId, 2, 'front-2', 'map update refused');
  await projectorCaughtUp(stack);
  expect((await stack.request('GET', `routes/${routeId}`, { token: admin })).body).toMatchObject({
    status: 'active',
    statusReason: 'proxy node front-2 failed: map update refused',
  });
  // The same values again: nothing new.
  const before = await stack.lastEventSequence();
  const same = await stack.request('PATCH', `routes/${routeId}`, {
    token: agent.accessToken,
    body: { target: { host: ADDRESS, port: 9090 }, options: { tlsToTarget: true } },
  });
  expect(same).toMatchObject({ status: 202, body: { revision: 2 } });
  expect(await stack.lastEventSequence()).toBe(before);

  await stack.request('PATCH', `routes/${routeId}`, {
    token: agent.accessToken,
    body: { options: { tlsToTarget: false } },
  });
  await reportFailed(store, routeId, 3, 'front-1', 'backend rejected');
  const failed = await row(routeId, 3, 'failed');
  expect(failed.statusReason).toBe('backend rejected');

  const removed = await stack.request('DELETE', `routes/${routeId}`, {
    token: agent.accessToken,
    body: { reason: 'app retired' },
  });
  expect(removed).toMatchObject({ status: 202, body: { status: 'removed', statusReason: 'app retired' } });
  const gone = await stack.request('PATCH', `routes/${routeId}`, {
    token: agent.accessToken,
    body: { options: {} },
  });
  expect(gone).toMatchObject({ status: 410, body: { error: 'gone' } });
  const again = await stack.request('DELETE', `routes/${routeId}`, { token: agent.accessToken });
  expect(again).toMatchObject({ status: 202, body: { status: 'removed' } });
  await row(routeId, 3, 'removed');
  const unknown = await stack.request('GET', `routes/${randomUUID()}`, { token: admin });
  expect(unknown.status).toBe(404);
});

/** Plays a proxy node: reports the route applied (or failed) once the routes projection has it. */
function proxyWillReport(subdomain: string, outcome: 'applied' | 'failed'): Promise<void> {
  return waitFor(`route ${subdomain} in the projection`, async () => {
    const list = await stack.request('GET', `routes?hostname=${subdomain}.apps.${DOMAIN}`, { token: admin });
    const route = (list.body.routes as { routeId: string; revision: number }[] | undefined)?.[0];
    if (!route) return undefined;
    if (outcome === 'applied') await reportApplied(store, route.routeId, route.revision, 'front-1', 7);
    else await reportFailed(store, route.routeId, route.revision, 'front-1', 'haproxy -c refused it');
    return true;
  }).then(() => undefined);
}

test('?wait=active answers 200 once a proxy node applied the route', async () => {
  const proxy = proxyWillReport('waited', 'applied');
  const response = await stack.request('POST', 'routes?wait=active&timeout=15000', {
    token: agent.accessToken,
    body: { kind: 'http', subdomain: 'waited', target },
  });
  await proxy;
  expect(response).toMatchObject({ status: 200, body: { status: 'active', revision: 1, propagationMs: 7 } });
});

test('?wait=active answers 502 with the route when the proxy failed it', async () => {
  const proxy = proxyWillReport('refused', 'failed');
  const response = await stack.request('POST', 'routes?wait=active&timeout=15000', {
    token: agent.accessToken,
    body: { kind: 'http', subdomain: 'refused', target },
  });
  await proxy;
  expect(response.status).toBe(502);
  expect(response.body).toMatchObject({
    error: 'unavailable',
    route: { status: 'failed', statusReason: 'haproxy -c refused it' },
  });
  expect(response.body.message).toMatch(/haproxy -c refused it/);
});

test('?wait=active answers 202 with the current status when time is up', async () => {
  const started = Date.now();
  const response = await stack.request('POST', 'routes?wait=active&timeout=400', {
    token: agent.accessToken,
    body: { kind: 'http', subdomain: 'nobody-applies', target },
  });
  expect(response).toMatchObject({ status: 202, body: { status: 'pending' } });
  expect(Date.now() - started).toBeGreaterThanOrEqual(400);
});

test('a claim whose route never appeared blocks the name for the grace period only', async () => {
  const name = `orphan.apps.${DOMAIN}`;
  const orphan = randomUUID();
  await store.append(
    { type: 'hostname', id: name },
    [{ type: 'HostnameClaimed', data: { hostname: name, routeId: orphan, agentId: 'life' } }],
    { context: { actor: { kind: 'agent', id: 'life' }, correlationId: 'crashed' }, expectedSequence: 0 },
  );
  const claimedAt = Date.now();
  const early = await stack.request('POST', 'routes', {
    token: other.accessToken,
    body: { kind: 'http', subdomain: 'orphan', target },
  });
  expect(early).toMatchObject({ status: 409, body: { field: 'hostname' } });
  expect(early.body.message).toMatch(/being claimed/);
  await sleep(Math.max(0, claimedAt + 1_600 - Date.now()));
  const late = await stack.request('POST', 'routes', {
    token: other.accessToken,
    body: { kind: 'http', subdomain: 'orphan', target },
  });
  expect(late).toMatchObject({ status: 202, body: { agentId: 'other', hostname: name } });
  const history = await store.readAggregate('hostname', name);
  expect(history.events.map((event) => [event.type, (event.data as { routeId: string }).routeId])).toEqual([
    ['HostnameClaimed', orphan],
    ['HostnameReleased', orphan],
    ['HostnameClaimed', late.body.routeId],
  ]);
});

test('the event log API pages through the index with filters and returns each event from the log', async () => {
  await projectorCaughtUp(stack);
  const end = await stack.lastEventSequence();
  const newest = await stack.request('GET', 'events?limit=5', { token: admin });
  expect(newest.status).toBe(200);
  const page = newest.body.events as {
    sequence: number;
    type: string;
    actor: { kind: string; id: string };
  }[];
  expect(page.map((entry) => entry.sequence)).toEqual([end, end - 1, end - 2, end - 3, end - 4]);
  expect(newest.body.next).toEqual({ before: end - 4 });
  const older = await stack.request('GET', `events?limit=5&before=${end - 4}`, { token: admin });
  expect((older.body.events as { sequence: number }[])[0]!.sequence).toBe(end - 5);

  const claims = await stack.request('GET', 'events?type=HostnameClaimed&aggregateType=hostname&limit=500', {
    token: admin,
  });
  const claimEvents = claims.body.events as { type: string; aggregate: { type: string; id: string } }[];
  expect(claimEvents.length).toBeGreaterThan(3);
  expect(
    claimEvents.every((entry) => entry.type === 'HostnameClaimed' && entry.aggregate.type === 'hostname'),
  ).toBe(true);
  const byAgent = await stack.request('GET', 'events?actorKind=agent&actorId=other&after=0', {
    token: admin,
  });
  const forward = byAgent.body.events as { sequence: number; actor: { id: string } }[];
  expect(forward.length).toBeGreaterThan(0);
  expect(forward.every((entry) => entry.actor.id === 'other')).toBe(true);
  expect(forward.map((entry) => entry.sequence)).toEqual(
    [...forward.map((entry) => entry.sequence)].sort((a, b) => a - b),
  );
  const future = await stack.request(
    'GET',
    `events?from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`,
    {
      token: admin,
    },
  );
  expect(future.body.events).toEqual([]);

  const one = await stack.request('GET', `events/${page[0]!.sequence}`, { token: admin });
  expect(one).toMatchObject({
    status: 200,
    body: { sequence: end, type: page[0]!.type, actor: page[0]!.actor },
  });
  expect(one.body.data).toBeDefined();
  expect((await stack.request('GET', `events/${end + 1000}`, { token: admin })).status).toBe(404);
  expect((await stack.request('GET', 'events/0', { token: admin })).body).toMatchObject({
    field: 'sequence',
  });
  expect((await stack.request('GET', 'events?type=bad%0Atype', { token: admin })).body).toMatchObject({
    field: 'type',
  });
});

test('a route that lands after another route took over its stale claim is removed again, and its request gets 409', async () => {
  const { routeIdFor } = await import('../../apps/routing/src/domain/ids.js');
  const name = `slow.apps.${DOMAIN}`;
  const key = 'slow-request-1';
  const slowRoute = routeIdFor({ kind: 'agent', id: 'life' }, 'life', key);
  const slowContext = {
    actor: { kind: 'agent' as const, id: 'life' },
    correlationId: 'slow',
    causationId: key,
  };
  // A request claimed the name, then its process stalled between its two appends...
  await store.append(
    { type: 'hostname', id: name },
    [{ type: 'HostnameClaimed', data: { hostname: name, routeId: slowRoute, agentId: 'life' } }],
    { context: slowContext, expectedSequence: 0, commandId: `hostname-claimed:${slowRoute}` },
  );
  await sleep(1_600);
  // ...long enough for another request to take the stale claim over...
  const taker = await stack.request('POST', 'routes', {
    token: other.accessToken,
    body: { kind: 'http', subdomain: 'slow', target },
  });
  expect(taker.status).toBe(202);
  // ...and then its RouteRequested landed after all.
  await store.append(
    { type: 'route', id: slowRoute },
    [
      {
        type: 'RouteRequested',
        data: {
          routeId: slowRoute,
          agentId: 'life',
          kind: 'http',
          hostname: name,
          target,
          options: { tlsToTarget: false },
        },
      },
    ],
    { context: slowContext, expectedSequence: 0, commandId: `route-requested:${slowRoute}` },
  );
  // When the request goes on (or is retried with its key) it finds the name lost: its route goes, 409.
  const resumed = await stack.request('POST', 'routes', {
    token: agent.accessToken,
    body: { kind: 'http', subdomain: 'slow', target },
    headers: { 'idempotency-key': key },
  });
  expect(resumed).toMatchObject({ status: 409, body: { field: 'hostname' } });
  const history = await store.readAggregate('route', slowRoute);
  expect(history.events.map((event) => [event.type, event.actor.kind])).toEqual([
    ['RouteRequested', 'agent'],
    ['RouteRemoved', 'system'],
  ]);
  expect((await store.readAggregate('hostname', name)).events.at(-1)!.data).toMatchObject({
    routeId: taker.body.routeId,
  });
});

test('a route that landed after its agent was deregistered is swept away', async () => {
  expect((await stack.request('DELETE', 'agents/late', { token: admin })).status).toBe(200);
  await stack.waitForAgentStatus('late', 'deregistered');
  // A request that passed its checks before the deregistration appended after it, then stopped for good.
  const routeId = randomUUID();
  const name = `late.apps.${DOMAIN}`;
  const context = { actor: { kind: 'agent' as const, id: 'late' }, correlationId: 'late' };
  await store.append(
    { type: 'hostname', id: name },
    [{ type: 'HostnameClaimed', data: { hostname: name, routeId, agentId: 'late' } }],
    { context, expectedSequence: 0 },
  );
  await store.append(
    { type: 'route', id: routeId },
    [
      {
        type: 'RouteRequested',
        data: {
          routeId,
          agentId: 'late',
          kind: 'http',
          hostname: name,
          target: { host: '127.0.0.1', port: 80 },
          options: { tlsToTarget: false },
        },
      },
    ],
    { context, expectedSequence: 0 },
  );
  const removed = await row(routeId, 1, 'removed');
  expect(removed.statusReason).toBe('agent deregistered');
  await projectorCaughtUp(stack);
  expect(await stack.db.dataSource.query('SELECT * FROM hostnames WHERE hostname = $1', [name])).toEqual([]);
});

test("a consumer's dead letter retried while the cause remains stays open, with the handler's real error", async () => {
  // Without the projector, routing cannot find a deregistered agent's routes: its handler fails.
  await stack.projector!.close();
  expect((await stack.request('DELETE', 'agents/gone', { token: admin })).status).toBe(200);
  const deregistration = (await store.readAggregate('agent', 'gone')).events.at(-1)!;
  expect(deregistration.type).toBe('AgentDeregistered');
  const [{ id }] = await stack.db.dataSource.query(
    `INSERT INTO dead_letters (consumer, stream, sequence, subject, event_type, event_id, deliveries, error, payload)
     VALUES ('routing', 'EVENTS', $1, $2, 'AgentDeregistered', $3, 5, 'first failure', '{}')
     ON CONFLICT (consumer, sequence) DO UPDATE SET status = 'open' RETURNING id::text AS id`,
    [deregistration.sequence, deregistration.subject, deregistration.id],
  );
  const retried = await stack.request('POST', `admin/dead-letters/${id}/retry`, { token: admin });
  expect(retried).toMatchObject({ status: 200, body: { outcome: 'failed', deadLetter: { status: 'open' } } });
  expect(retried.body.error).toMatch(/routes projection has not reached sequence \d+/);
  expect((retried.body.deadLetter as { error: string }).error).toBe(retried.body.error);
});
