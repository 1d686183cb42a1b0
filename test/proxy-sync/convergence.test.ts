/**
 * Guarantee 3 with proxy-sync as its own process (node dist/apps/proxy-sync/src/main.js), a real NATS
 * (event log, KV) and a real HAProxy behind the emulator: SIGKILL in the middle of a transaction, a hand
 * edit of haproxy.cfg, a restart of HAProxy with a hand-edited map file, the Data Plane API going away —
 * each time HAProxy comes back to exactly the routes of the source and no transaction stays open; the
 * node reports RouteApplied, its status transitions and its liveness record.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDomainRegistry, type StoredEvent } from '#contracts';
import { DataplaneClient } from '#dataplane';
import { EventStore } from '#eventstore';
import { desiredStructure, diffStructure, renderMapFile, desiredState } from '#haproxy';
import { layoutOf } from '../../apps/proxy-sync/src/config.js';
import { DataplaneGateway } from '../../apps/proxy-sync/src/gateway.js';
import type { ProxyNodeRecord } from '../../apps/proxy-sync/src/reporting.js';
import type { SourcedRoute } from '../../apps/proxy-sync/src/route-source.js';
import { DataplaneEmulator } from '../dataplane-emulator/emulator.js';
import { startApp } from '../harness/apps.js';
import { startHaproxyStack, type HaproxyStack } from '../harness/haproxy.js';
import { startNats } from '../harness/nats.js';
import { waitFor, type RunningProcess } from '../harness/processes.js';
import { httpsGet } from '../dataplane/helpers.js';
import {
  httpAgent,
  httpRoute,
  proxyConfig,
  proxyEnv,
  runtimeMap,
  sniRoute,
  tlsThrough,
  createTestCa,
  tlsAgent,
} from './helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** HAProxy holds exactly the routes (runtime and files), the layout, and no open transaction. */
async function converged(
  stack: HaproxyStack,
  routes: SourcedRoute[],
  client: DataplaneClient,
): Promise<boolean> {
  const config = proxyConfig(stack);
  const desired = desiredState(routes, layoutOf(config));
  const lines = (map: Map<string, string>) => [...map].map(([key, value]) => `${key} ${value}`).sort();
  if (JSON.stringify(await runtimeMap(stack, 'hosts')) !== JSON.stringify(lines(desired.maps.hosts)))
    return false;
  if (JSON.stringify(await runtimeMap(stack, 'sni')) !== JSON.stringify(lines(desired.maps.sni)))
    return false;
  if ((await readFile(stack.paths.hostsMap, 'utf8')) !== renderMapFile(desired.maps.hosts)) return false;
  if ((await readFile(stack.paths.sniMap, 'utf8')) !== renderMapFile(desired.maps.sni)) return false;
  const structure = await new DataplaneGateway(client).readStructure();
  if (diffStructure(desiredStructure(layoutOf(config)), structure).length > 0) return false;
  return (await client.listTransactions('in_progress')).length === 0;
}

async function events(store: EventStore, subject: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for await (const event of store.readLog({ filterSubject: subject })) out.push(event);
  return out;
}

describe('proxy-sync converges after crashes, hand edits and restarts', () => {
  it('comes back to exactly the route source each time, with no transaction left open', async () => {
    const nats = await startNats();
    cleanups.push(() => nats.destroy());
    const ca = await createTestCa();
    cleanups.push(() => ca.remove());
    const stack = await startHaproxyStack();
    cleanups.push(() => stack.stop());
    const client = stack.client();
    const web = await httpAgent('127.0.0.2', 'web');
    const db = await tlsAgent('127.0.0.3', 'db1', await ca.issue(['db1.mongodb.test']));
    cleanups.push(
      () => web.close(),
      () => db.close(),
    );
    const routes = [httpRoute('web.apps.test', web), sniRoute('db1', 'test', db)];
    const dir = await mkdtemp(join(tmpdir(), 'cl-proxy-sync-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const routesFile = join(dir, 'routes.json');
    await writeFile(routesFile, JSON.stringify(routes));
    const env = proxyEnv(stack, {
      CL_NATS_URL: nats.url,
      CL_PROXY_ROUTES_FILE: routesFile,
      CL_PROXY_RECONCILE_INTERVAL_MS: '300',
      CL_PROXY_TRIGGER_SUBJECT: '',
    });
    let child: RunningProcess | undefined;
    cleanups.push(() => child?.stop('SIGKILL') ?? Promise.resolve());
    const serving = async () =>
      (await httpsGet(stack.ports.https, 'web.apps.test')).body === 'web web.apps.test https' &&
      (await tlsThrough(stack.ports.tlsSni, 'db1.mongodb.test', ca.certPem)).greeting === 'hello from db1';

    // 1. A structural repair is needed; proxy-sync is SIGKILLed while its transaction is open.
    await client.unwrap(
      client.api.DELETE('/services/haproxy/configuration/backends/{name}', {
        params: { path: { name: 'be_dyn_tcp' }, query: { version: 1, force_reload: true } },
      }),
    );
    const store = stack.emulator.store;
    const edit = store.edit.bind(store);
    let release: (error: Error) => void = () => undefined;
    let held = false;
    store.edit = (() => {
      held = true;
      return new Promise((_resolve, reject) => (release = reject));
    }) as typeof store.edit;
    child = startApp('proxy-sync', env);
    await waitFor('proxy-sync to be inside its transaction', () => held, { timeoutMs: 20_000 });
    await child.stop('SIGKILL');
    store.edit = edit;
    release(new Error('the client is gone'));
    expect(await client.listTransactions('in_progress')).toHaveLength(1);

    child = startApp('proxy-sync', env);
    await waitFor('convergence after the kill', () => converged(stack, routes, client), {
      timeoutMs: 30_000,
    });
    expect(await serving()).toBe(true);

    // 2. A hand edit of haproxy.cfg (dataplaneapi re-reads it and bumps the version).
    const before = await client.getVersion();
    const text = await readFile(stack.paths.config, 'utf8');
    await writeFile(
      stack.paths.config,
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
      'the hand edit to be repaired',
      async () => {
        const version = await client.getVersion();
        return version >= before + 2 && (await converged(stack, routes, client));
      },
      { timeoutMs: 30_000 },
    );
    const repairedText = await readFile(stack.paths.config, 'utf8');
    expect(repairedText).not.toContain('server hand');
    expect(await serving()).toBe(true);

    // 3. HAProxy restarts with a hand-edited map file: a route missing, a stranger present.
    await writeFile(stack.paths.hostsMap, 'stranger.apps.test be_dyn_http|127.0.0.2|1\n');
    await stack.restartHaproxy();
    await waitFor('the maps to be repaired after the restart', () => converged(stack, routes, client), {
      timeoutMs: 30_000,
    });
    expect((await httpsGet(stack.ports.https, 'stranger.apps.test')).status).toBe(404);
    expect(await serving()).toBe(true);

    // 4. The Data Plane API goes away and comes back; meanwhile a route is added.
    const emulatorConfig = stack.emulator.config;
    await stack.emulator.stop();
    const extra = httpRoute('late.apps.test', web);
    await writeFile(routesFile, JSON.stringify([...routes, extra]));
    const nc = await nats.connect();
    cleanups.push(() => nc.close());
    const kv = await new Kvm(nc).open('proxy-nodes');
    await waitFor(
      'the node to be reported unreachable',
      async () => {
        const entry = await kv.get('front-test');
        return entry?.json<ProxyNodeRecord>().status === 'unreachable';
      },
      { timeoutMs: 30_000 },
    );
    const restarted = await DataplaneEmulator.start(
      { ...emulatorConfig, port: stack.ports.dataplane },
      (await import('#platform')).createLogger('emulator', { write: () => undefined }),
    );
    cleanups.push(() => restarted.stop());
    const all = [...routes, extra];
    await waitFor('convergence after the API came back', () => converged(stack, all, client), {
      timeoutMs: 30_000,
    });
    expect((await httpsGet(stack.ports.https, 'late.apps.test')).body).toBe('web late.apps.test https');

    // What the node reported: RouteApplied per route and revision, transitions, the liveness record.
    const eventStore = new EventStore(jetstream(nc), await jetstreamManager(nc), {
      registry: createDomainRegistry(),
    });
    const applied = (await events(eventStore, 'events.route.*')).filter(
      (event) => event.type === 'RouteApplied',
    );
    expect(new Set(applied.map((event) => (event.data as { routeId: string }).routeId))).toEqual(
      new Set(all.map((route) => route.routeId)),
    );
    for (const event of applied) {
      expect(event.data).toEqual(
        expect.objectContaining({ revision: 1, node: 'front-test', configVersion: expect.any(Number) }),
      );
      expect((event.data as { propagationMs: number }).propagationMs).toBeGreaterThanOrEqual(0);
    }
    const statuses = (await events(eventStore, 'events.proxy-node.*')).map(
      (event) => (event.data as { status: string }).status,
    );
    expect(statuses).toContain('unreachable');
    expect(statuses.at(-1)).toBe('in-sync');
    await waitFor('the liveness record to show the current version', async () => {
      const record = (await kv.get('front-test'))?.json<ProxyNodeRecord>();
      return (
        record?.status === 'in-sync' &&
        record.configVersion === (await client.getVersion()) &&
        record.routes === 3
      );
    });
    expect(await client.listTransactions('in_progress')).toEqual([]);
    await child.stop('SIGTERM');
    expect(child.child.exitCode ?? child.child.signalCode).toBe(0);
  });
});
