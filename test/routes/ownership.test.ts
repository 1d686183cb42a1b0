import type { StoredEvent } from '#contracts';
import type { EventStore } from '#eventstore';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { waitFor } from '../harness/processes.js';
import { DOMAIN, enrollAll, openStore, projectorCaughtUp, startRoutesStack } from './helpers.js';

/** Guarantee 5, first half: one host name has one owner; a released one can be owned again. */
let stack: AgentsStack;
let store: EventStore;
let admin: string;
let agents: Map<string, EnrolledAgent>;

const SHARED_ADDRESS = '203.0.113.30';
const racers = Array.from({ length: 50 }, (_, index) => `racer-${index}`);

beforeAll(async () => {
  // The default grace period (60 s): no stale-claim takeover can happen during the race.
  stack = await startRoutesStack({ env: { CL_ROUTING_CLAIM_GRACE_MS: '60000' } });
  store = await openStore(stack);
  admin = stack.adminToken('alice');
  agents = await enrollAll(
    stack,
    // One address for all (approved for sharing): what these tests race for is names, not addresses.
    [...racers, 'web', 'web-1', 'leaving', 'keeper'].map((id) => ({ id, address: SHARED_ADDRESS })),
    10,
  );
}, 120_000);
afterAll(async () => {
  await stack?.stop();
});

const token = (agentId: string) => agents.get(agentId)!.accessToken;
const http = (subdomain: string, port = 8080) => ({
  kind: 'http',
  subdomain,
  target: { host: SHARED_ADDRESS, port },
});

async function eventsSince(sequence: number): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for await (const event of store.readLog({ fromSequence: sequence + 1 })) events.push(event);
  return events;
}

test('50 agents race for one host name: one route, 49 clear 409s, one HostnameClaimed', async () => {
  const before = await stack.lastEventSequence();
  const results = await Promise.all(
    racers.map((agentId) =>
      stack.request('POST', 'routes', { token: token(agentId), body: http('contested') }),
    ),
  );
  const statuses = results.map((result) => result.status);
  expect(statuses.filter((status) => status === 202)).toHaveLength(1);
  expect(statuses.filter((status) => status === 409)).toHaveLength(49);
  for (const loser of results.filter((result) => result.status === 409)) {
    expect(loser.body).toMatchObject({ error: 'conflict', field: 'hostname' });
    expect(loser.body.message).toMatch(/contested\.apps\.routes\.test/);
  }
  const winner = results.find((result) => result.status === 202)!.body;
  expect(winner).toMatchObject({ hostname: `contested.apps.${DOMAIN}`, status: 'pending', revision: 1 });

  const appended = await eventsSince(before);
  expect(appended.map((event) => event.type).sort()).toEqual(['HostnameClaimed', 'RouteRequested']);
  expect(appended.find((event) => event.type === 'HostnameClaimed')!.data).toEqual({
    hostname: `contested.apps.${DOMAIN}`,
    routeId: winner.routeId,
    agentId: winner.agentId,
  });

  await projectorCaughtUp(stack);
  const rows = await stack.db.dataSource.query('SELECT route_id, agent_id FROM routes WHERE hostname = $1', [
    `contested.apps.${DOMAIN}`,
  ]);
  expect(rows).toEqual([{ route_id: winner.routeId, agent_id: winner.agentId }]);
  const owners = await stack.db.dataSource.query('SELECT route_id FROM hostnames WHERE hostname = $1', [
    `contested.apps.${DOMAIN}`,
  ]);
  expect(owners).toEqual([{ route_id: winner.routeId }]);
});

test('a released host name can be claimed again, by another agent', async () => {
  const name = `reuse.apps.${DOMAIN}`;
  const first = await stack.request('POST', 'routes', { token: token('racer-1'), body: http('reuse') });
  expect(first.status).toBe(202);
  const taken = await stack.request('POST', 'routes', { token: token('racer-2'), body: http('reuse') });
  expect(taken).toMatchObject({ status: 409, body: { field: 'hostname' } });
  const removed = await stack.request('DELETE', `routes/${first.body.routeId}`, { token: token('racer-1') });
  expect(removed).toMatchObject({ status: 202, body: { status: 'removed' } });
  const second = await stack.request('POST', 'routes', { token: token('racer-2'), body: http('reuse') });
  expect(second).toMatchObject({ status: 202, body: { agentId: 'racer-2', hostname: name } });
  const history = await store.readAggregate('hostname', name);
  expect(history.events.map((event) => [event.type, (event.data as { routeId: string }).routeId])).toEqual([
    ['HostnameClaimed', first.body.routeId],
    ['HostnameReleased', first.body.routeId],
    ['HostnameClaimed', second.body.routeId],
  ]);
});

test('a retried request (same Idempotency-Key) gives the same route and appends nothing', async () => {
  const headers = { 'idempotency-key': 'create-shop-1' };
  const first = await stack.request('POST', 'routes', {
    token: token('racer-3'),
    body: http('shop'),
    headers,
  });
  expect(first.status).toBe(202);
  const after = await stack.lastEventSequence();
  const retry = await stack.request('POST', 'routes', {
    token: token('racer-3'),
    body: http('shop'),
    headers,
  });
  expect(retry).toMatchObject({ status: 202, body: { routeId: first.body.routeId } });
  expect(await stack.lastEventSequence()).toBe(after);
  // The same key for a different request is refused, and appends nothing.
  const other = await stack.request('POST', 'routes', {
    token: token('racer-3'),
    body: http('shop-2'),
    headers,
  });
  expect(other).toMatchObject({ status: 409, body: { error: 'conflict', field: 'Idempotency-Key' } });
  expect(await stack.lastEventSequence()).toBe(after);
  // Another agent's key of the same text is its own command.
  const elsewhere = await stack.request('POST', 'routes', {
    token: token('racer-4'),
    body: http('shop-4'),
    headers,
  });
  expect(elsewhere.status).toBe(202);
  expect(elsewhere.body.routeId).not.toBe(first.body.routeId);
});

test('a request that stopped after its claim completes when retried, without claiming twice', async () => {
  // The first attempt claimed the name and stopped (a crash) before RouteRequested: the claim is in the log.
  const { routeIdFor } = await import('../../apps/routing/src/domain/ids.js');
  const routeId = routeIdFor({ kind: 'agent', id: 'racer-5' }, 'racer-5', 'half-done-1');
  const name = `half.apps.${DOMAIN}`;
  await store.append(
    { type: 'hostname', id: name },
    [{ type: 'HostnameClaimed', data: { hostname: name, routeId, agentId: 'racer-5' } }],
    { context: { actor: { kind: 'agent', id: 'racer-5' }, correlationId: 'crashed' }, expectedSequence: 0 },
  );
  // Meanwhile nobody else can have it.
  const other = await stack.request('POST', 'routes', { token: token('racer-6'), body: http('half') });
  expect(other).toMatchObject({ status: 409, body: { field: 'hostname' } });
  const before = await stack.lastEventSequence();
  const retry = await stack.request('POST', 'routes', {
    token: token('racer-5'),
    body: http('half'),
    headers: { 'idempotency-key': 'half-done-1' },
  });
  expect(retry).toMatchObject({ status: 202, body: { routeId, hostname: name } });
  expect((await eventsSince(before)).map((event) => event.type)).toEqual(['RouteRequested']);
});

test("tls-sni names: an agent's own namespace only, so <agentId>.mongodb.<domain> is never another's", async () => {
  const sni = (hostname: string) => ({
    kind: 'tls-sni',
    hostname,
    target: { host: SHARED_ADDRESS, port: 27017 },
  });
  const before = await stack.lastEventSequence();
  // `web` is a prefix of `web-1`, but a namespace is a whole label.
  const hijack = await stack.request('POST', 'routes', {
    token: token('web'),
    body: sni(`web-1.mongodb.${DOMAIN}`),
  });
  expect(hijack).toMatchObject({ status: 403, body: { error: 'forbidden', field: 'hostname' } });
  const byAdmin = await stack.request('POST', 'routes', {
    token: admin,
    body: { ...sni(`web-1.mongodb.${DOMAIN}`), agentId: 'web' },
  });
  expect(byAdmin).toMatchObject({ status: 409, body: { field: 'hostname' } });
  expect(await stack.lastEventSequence()).toBe(before);

  expect(
    (await stack.request('POST', 'routes', { token: token('web'), body: sni(`web.mongodb.${DOMAIN}`) }))
      .status,
  ).toBe(202);
  const named = await stack.request('POST', 'routes', {
    token: token('web'),
    body: sni(`cache.web.redis.${DOMAIN}`),
  });
  expect(named).toMatchObject({
    status: 202,
    body: { kind: 'tls-sni', hostname: `cache.web.redis.${DOMAIN}` },
  });
  const own = await stack.request('POST', 'routes', {
    token: token('web-1'),
    body: sni(`web-1.mongodb.${DOMAIN}`),
  });
  expect(own.status).toBe(202);
  // An admin may give an agent a name outside every agent's namespace.
  const shared = await stack.request('POST', 'routes', {
    token: admin,
    body: {
      ...sni(`shared-db.mongodb.${DOMAIN}`),
      agentId: 'web',
      target: { host: '198.51.100.20', port: 27017 },
    },
  });
  expect(shared).toMatchObject({ status: 202, body: { agentId: 'web', target: { host: '198.51.100.20' } } });
});

test('removing an agent removes its routes and frees its host names', async () => {
  const mine = [
    await stack.request('POST', 'routes', { token: token('leaving'), body: http('leaving-app') }),
    await stack.request('POST', 'routes', {
      token: token('leaving'),
      body: {
        kind: 'tls-sni',
        hostname: `leaving.mongodb.${DOMAIN}`,
        target: { host: SHARED_ADDRESS, port: 27017 },
      },
    }),
  ];
  expect(mine.map((response) => response.status)).toEqual([202, 202]);
  const gone = await stack.request('DELETE', 'agents/leaving', {
    token: admin,
    body: { reason: 'decommissioned' },
  });
  expect(gone.status).toBe(200);
  await waitFor('the routes of the deregistered agent to be removed', async () => {
    const rows: { status: string; status_reason: string }[] = await stack.db.dataSource.query(
      'SELECT status, status_reason FROM routes WHERE agent_id = $1',
      ['leaving'],
    );
    return rows.length === 2 && rows.every((row) => row.status === 'removed') ? rows : undefined;
  });
  const removal = (await store.readAggregate('route', mine[0]!.body.routeId as string)).events.at(-1)!;
  expect(removal).toMatchObject({ type: 'RouteRemoved', actor: { kind: 'system', id: 'routing' } });
  expect(removal.data).toMatchObject({ reason: 'agent deregistered' });
  await projectorCaughtUp(stack);
  const names = await stack.db.dataSource.query('SELECT hostname FROM hostnames WHERE agent_id = $1', [
    'leaving',
  ]);
  expect(names).toEqual([]);
  const reuse = await stack.request('POST', 'routes', { token: token('keeper'), body: http('leaving-app') });
  expect(reuse.status).toBe(202);
});
