/**
 * Guarantee 3 through the whole system: HAProxy comes back to exactly the routes projection after
 * proxy-sync is SIGKILLed inside a transaction (while routes change through the API), after a hand edit of
 * haproxy.cfg, after an HAProxy restart with a hand-edited map file, and after the Data Plane API was away;
 * each time no transaction is left open. The node reports what it applied and dropped, and its status
 * transitions, which the API shows.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { StoredEvent } from '#contracts';
import { createLogger } from '#platform';
import { DataplaneEmulator } from '../dataplane-emulator/emulator.js';
import { waitFor } from '../harness/processes.js';
import { openStore } from '../routes/helpers.js';
import { httpAgent, tlsAgent, tlsThrough, type Agent as App } from '../proxy-sync/helpers.js';
import { DOMAIN, E2eStack, NODE, type RealAgent } from './stack.js';

let e2e: E2eStack;
let web: RealAgent;
let db: RealAgent;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  e2e = await E2eStack.start({ reconcileIntervalMs: 500 });
  [web, db] = await Promise.all([e2e.startAgent('web-a', '127.0.0.2'), e2e.startAgent('db-b', '127.0.0.3')]);
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await e2e?.stop();
});

async function app<T extends App>(pending: Promise<T>): Promise<T> {
  const started = await pending;
  cleanups.push(() => started.close());
  return started;
}

async function create(agent: RealAgent, body: Record<string, unknown>, wait = true): Promise<string> {
  const answer = await e2e.request('POST', wait ? 'routes?wait=active&timeout=20000' : 'routes', {
    token: await agent.token(),
    body,
  });
  expect(answer.status).toBe(wait ? 200 : 202);
  return answer.body.routeId as string;
}

async function events(type: string): Promise<StoredEvent[]> {
  const store = await openStore(e2e.stack);
  const out: StoredEvent[] = [];
  for await (const event of store.readLog()) if (event.type === type) out.push(event);
  return out;
}

test('HAProxy converges to the routes projection after crashes, hand edits and restarts', async () => {
  const shop = await app(httpAgent('127.0.0.2', 'web-a'));
  const dbTls = await app(
    tlsAgent('127.0.0.3', 'db-b', await e2e.certificateFor('db-b', [`db-b.mongodb.${DOMAIN}`])),
  );
  const shopId = await create(web, {
    kind: 'http',
    subdomain: 'shop',
    target: { host: '127.0.0.2', port: shop.port },
  });
  await create(db, {
    kind: 'tls-sni',
    hostname: `db-b.mongodb.${DOMAIN}`,
    target: { host: '127.0.0.3', port: dbTls.port },
  });
  const client = e2e.haproxy.client();
  const serving = async () =>
    (await e2e.https(`shop.apps.${DOMAIN}`)).body === `web-a shop.apps.${DOMAIN} https` &&
    (await tlsThrough(e2e.haproxy.ports.tlsSni, `db-b.mongodb.${DOMAIN}`, e2e.ca.certificatePem)).greeting ===
      'hello from db-b';
  expect(await serving()).toBe(true);

  // 1. proxy-sync is down while routes change (one added, one it had applied removed) and the configuration
  //    breaks; restarted, it is SIGKILLed inside the repair transaction.
  const goneId = await create(web, {
    kind: 'http',
    subdomain: 'gone',
    target: { host: '127.0.0.2', port: shop.port },
  });
  await e2e.stopProxySync();
  const late = await app(httpAgent('127.0.0.3', 'db-b'));
  const lateId = await create(
    db,
    { kind: 'http', subdomain: 'late', target: { host: '127.0.0.3', port: late.port } },
    false,
  );
  expect((await e2e.request('DELETE', `routes/${goneId}`, { token: await web.token() })).status).toBe(202);
  await client.unwrap(
    client.api.DELETE('/services/haproxy/configuration/backends/{name}', {
      params: {
        path: { name: 'be_dyn_tcp' },
        query: { version: await client.getVersion(), force_reload: true },
      },
    }),
  );
  const store = e2e.haproxy.emulator.store;
  const edit = store.edit.bind(store);
  let release: (error: Error) => void = () => undefined;
  let held = false;
  store.edit = (() => {
    held = true;
    return new Promise((_resolve, reject) => (release = reject));
  }) as typeof store.edit;
  const doomed = e2e.stack.startService('proxy-sync', e2e.proxySyncEnv);
  await waitFor('proxy-sync to be inside its transaction', () => held, { timeoutMs: 30_000 }).catch(
    (error) => {
      throw new Error(`${String(error)}\n${doomed.output()}`);
    },
  );
  await e2e.stopProxySync('SIGKILL');
  store.edit = edit;
  release(new Error('the client is gone'));
  expect(await client.listTransactions('in_progress')).toHaveLength(1);

  await e2e.startProxySync();
  await e2e.converged('convergence after the kill');
  expect(await serving()).toBe(true);
  expect((await e2e.https(`late.apps.${DOMAIN}`)).body).toBe(`db-b late.apps.${DOMAIN} https`);
  expect((await e2e.https(`gone.apps.${DOMAIN}`)).status).toBe(404);
  await waitFor('the late route to be active', async () => {
    const view = await e2e.request('GET', `routes/${lateId}`);
    return view.body.status === 'active';
  });

  // 2. A hand edit of haproxy.cfg (the Data Plane API re-reads it and bumps the version).
  const before = await client.getVersion();
  const text = await readFile(e2e.haproxy.paths.config, 'utf8');
  await writeFile(
    e2e.haproxy.paths.config,
    text
      .replace(
        /\n\s*http-request set-dst-port var\(txn\.route\),word\(3,\|\)\n(\s*http-request set-header X-Forwarded-Proto)/,
        '\n$1',
      )
      .replace(
        'backend be_dyn_http\n    mode http\n',
        'backend be_dyn_http\n    mode http\n    server hand 127.0.0.1:1\n',
      ),
  );
  await waitFor(
    'the version to move past the hand edit and its repair',
    async () => (await client.getVersion()) >= before + 2,
    {
      timeoutMs: 30_000,
    },
  );
  await e2e.converged('the hand edit to be repaired');
  expect(await readFile(e2e.haproxy.paths.config, 'utf8')).not.toContain('server hand');
  expect(await serving()).toBe(true);

  // 3. HAProxy restarts with a hand-edited map file: routes missing, a stranger present.
  await writeFile(e2e.haproxy.paths.hostsMap, `stranger.apps.${DOMAIN} be_dyn_http|127.0.0.2|1\n`);
  await e2e.haproxy.restartHaproxy();
  await e2e.converged('the maps to be repaired after the restart');
  expect((await e2e.https(`stranger.apps.${DOMAIN}`)).status).toBe(404);
  expect(await serving()).toBe(true);

  // 4. The Data Plane API goes away; a route is added and one removed meanwhile; the API comes back.
  const emulatorConfig = e2e.haproxy.emulator.config;
  await e2e.haproxy.emulator.stop();
  await e2e.nodeRecord((record) => record.status === 'unreachable', 'the node to be reported unreachable');
  const away = await app(httpAgent('127.0.0.2', 'web-a'));
  const awayId = await create(
    web,
    { kind: 'http', subdomain: 'away', target: { host: '127.0.0.2', port: away.port } },
    false,
  );
  expect((await e2e.request('DELETE', `routes/${shopId}`, { token: await web.token() })).status).toBe(202);
  const restarted = await DataplaneEmulator.start(
    { ...emulatorConfig, port: e2e.haproxy.ports.dataplane },
    createLogger('emulator', { write: () => undefined }),
  );
  cleanups.push(() => restarted.stop());
  await e2e.converged('convergence after the API came back');
  expect((await e2e.https(`away.apps.${DOMAIN}`)).body).toBe(`web-a away.apps.${DOMAIN} https`);
  expect((await e2e.https(`shop.apps.${DOMAIN}`)).status).toBe(404);
  await waitFor('the route added meanwhile to be active', async () => {
    const view = await e2e.request('GET', `routes/${awayId}`);
    return view.body.status === 'active';
  });

  // What the node reported: every live route applied; both removed routes dropped (`gone` by the process
  // started after its removal, from the projection's record of what this node applied); the transitions,
  // shown by the API.
  await waitFor('the removed routes to be reported dropped', async () => {
    for (const routeId of [goneId, shopId]) {
      const view = await e2e.request('GET', `routes/${routeId}`);
      if (view.body.status !== 'removed' || Object.keys(view.body.applied as object).length > 0) return false;
    }
    return true;
  });
  const dropped = (await events('RouteDropped')).map((event) => (event.data as { routeId: string }).routeId);
  expect(dropped.sort()).toEqual([goneId, shopId].sort());
  const applied = new Set(
    (await events('RouteApplied')).map((event) => (event.data as { routeId: string }).routeId),
  );
  for (const route of await e2e.projectedRoutes()) expect(applied.has(route.routeId)).toBe(true);
  const statuses = (await events('ProxyNodeStatusChanged')).map(
    (event) => (event.data as { status: string }).status,
  );
  expect(statuses).toContain('unreachable');
  expect(statuses.at(-1)).toBe('in-sync');
  const nodes = await waitFor('the API to show the node in sync', async () => {
    const answer = await e2e.request('GET', 'proxy-nodes');
    const node = (
      answer.body.nodes as { node: string; status: string; live: { appliedVersion: number } }[]
    )[0];
    return node?.status === 'in-sync' && node.live.appliedVersion === (await client.getVersion())
      ? answer.body
      : undefined;
  });
  expect(nodes.nodes).toEqual([expect.objectContaining({ node: NODE, status: 'in-sync' })]);
  expect(await client.listTransactions('in_progress')).toEqual([]);
  await e2e.stopProxySync();
  expect(e2e.proxySync!.child.exitCode ?? e2e.proxySync!.child.signalCode).toBe(0);
});
