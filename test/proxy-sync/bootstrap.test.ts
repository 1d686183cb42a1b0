/**
 * Bootstrap and repair of the configuration, and refusal of hostile routes, with proxy-sync in-process
 * over the emulator and a real HAProxy.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { withTransaction } from '#dataplane';
import { createLogger } from '#platform';
import { createReconciler } from '../../apps/proxy-sync/src/proxy-sync.module.js';
import type { Reconciler } from '../../apps/proxy-sync/src/reconciler.js';
import { MemoryReporter } from '../../apps/proxy-sync/src/reporting.js';
import { StaticRouteSource, type SourcedRoute } from '../../apps/proxy-sync/src/route-source.js';
import { startHaproxyStack } from '../harness/haproxy.js';
import { httpsGet } from '../dataplane/helpers.js';
import { httpAgent, httpRoute, proxyConfig, reloadState, runtimeMap, sniRoute } from './helpers.js';

const quiet = createLogger('proxy-sync', { write: () => undefined });
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function setup(routes: SourcedRoute[] = []) {
  const stack = await startHaproxyStack();
  cleanups.push(() => stack.stop());
  const source = new StaticRouteSource(routes);
  const reports = new MemoryReporter();
  const reconciler = createReconciler({
    config: proxyConfig(stack),
    source,
    routes: reports,
    node: reports,
    logger: quiet,
  });
  cleanups.push(() => reconciler.stop());
  return { stack, source, reports, reconciler };
}

async function pass(reconciler: Reconciler, full = false) {
  const outcome = await reconciler.reconcileSoon({ full });
  if (!outcome.ok) throw outcome.error;
  return outcome.result;
}

describe('proxy-sync bootstrap', () => {
  it('finds the base configuration already correct: no transaction, no new version, no reload', async () => {
    const { stack, reconciler } = await setup();
    const before = await readFile(stack.paths.config, 'utf8');
    const steady = await reloadState(stack);
    await reconciler.start();
    const first = await pass(reconciler, true);
    expect(first.structural).toEqual([]);
    expect(first.configVersion).toBe(1);
    const second = await pass(reconciler, true);
    expect(second.structural).toEqual([]);
    expect(await stack.client().getVersion()).toBe(1);
    expect(await readFile(stack.paths.config, 'utf8')).toBe(before);
    expect(await reloadState(stack)).toEqual(steady);
    expect(await stack.client().listTransactions()).toEqual([]);
  });

  it('repairs a broken configuration in one transaction and keeps the routes across the reload', async () => {
    const app = await httpAgent('127.0.0.2', 'app');
    cleanups.push(() => app.close());
    const route = httpRoute('app.apps.test', app);
    const { stack, reconciler } = await setup([route]);
    await reconciler.start();
    await pass(reconciler, true);
    expect((await httpsGet(stack.ports.https, 'app.apps.test')).body).toBe('app app.apps.test https');

    // Someone breaks it through the API: a backend gone, the HTTPS rules replaced.
    const client = stack.client();
    await withTransaction(
      client,
      async (tx) => {
        const query = { transaction_id: tx.id };
        await client.unwrap(
          client.api.DELETE('/services/haproxy/configuration/backends/{name}', {
            params: { path: { name: 'be_dyn_tcp' }, query },
          }),
        );
        await client.unwrap(
          client.api.PUT('/services/haproxy/configuration/frontends/{parent_name}/http_request_rules', {
            params: { path: { parent_name: 'fe_https' }, query },
            body: [{ type: 'deny', deny_status: 403 }],
          }),
        );
      },
      { forceReload: true },
    );
    expect(await client.getVersion()).toBe(2);
    expect((await httpsGet(stack.ports.https, 'app.apps.test')).status).toBe(403);
    const broken = await reloadState(stack);

    const repaired = await pass(reconciler);
    expect(repaired.structural.map((change) => `${change.action} ${change.section} ${change.name}`)).toEqual([
      'create backend be_dyn_tcp',
      'replace frontend fe_https',
    ]);
    expect(repaired.configVersion).toBe(3);
    expect((await reloadState(stack)).reloads).toBe(broken.reloads + 1);
    expect((await httpsGet(stack.ports.https, 'app.apps.test')).body).toBe('app app.apps.test https');

    const again = await pass(reconciler, true);
    expect(again.structural).toEqual([]);
    expect(await client.getVersion()).toBe(3);
    expect(await client.listTransactions()).toEqual([]);
  });
});

describe('proxy-sync refuses hostile routes', () => {
  it('never lets a hostname or target that would break a map line or haproxy.cfg reach HAProxy', async () => {
    const app = await httpAgent('127.0.0.2', 'app');
    cleanups.push(() => app.close());
    const good = httpRoute('good.apps.test', app);
    const goodSni = sniRoute('db1', 'test', app);
    const hostile: SourcedRoute[] = [
      httpRoute('evil.apps.test\nfrontend x', app),
      httpRoute('evil.apps.test be_dyn_http|127.0.0.2|1', app),
      httpRoute('evil.apps.test#x', app),
      httpRoute('evil|x.apps.test', app),
      httpRoute('%[req.hdr(x)].apps.test', app),
      httpRoute(`${'a'.repeat(70)}.apps.test`, app),
      httpRoute('évil.apps.test', app),
      httpRoute('EVIL.apps.test', app),
      httpRoute('ok1.apps.test', { host: '127.0.0.2\n', port: app.port, close: app.close }),
      httpRoute('ok2.apps.test', { host: '127.0.0.2 be_dyn_tcp', port: app.port, close: app.close }),
      httpRoute('ok3.apps.test', { host: 'evil.example.com', port: app.port, close: app.close }),
      httpRoute('ok4.apps.test', { host: '127.0.0.2|9', port: app.port, close: app.close }),
      httpRoute('ok5.apps.test', { host: '127.0.0.2', port: 70_000, close: app.close }),
      { ...sniRoute('db2', 'test', app), hostname: 'db2.mongodb.test\n* be_dyn_tcp|127.0.0.2|22' },
    ];
    const { stack, reports, reconciler } = await setup([
      good,
      goodSni,
      ...hostile,
      null as unknown as SourcedRoute,
      'route' as unknown as SourcedRoute,
    ]);
    const before = await readFile(stack.paths.config, 'utf8');
    await reconciler.start();
    const result = await pass(reconciler, true);

    expect(result.routes).toBe(2);
    expect(await runtimeMap(stack, 'hosts')).toEqual([`good.apps.test be_dyn_http|127.0.0.2|${app.port}`]);
    expect(await runtimeMap(stack, 'sni')).toEqual([`db1.mongodb.test be_dyn_tcp|127.0.0.2|${app.port}`]);
    expect(await readFile(stack.paths.hostsMap, 'utf8')).toBe(
      `good.apps.test be_dyn_http|127.0.0.2|${app.port}\n`,
    );
    expect(await readFile(stack.paths.sniMap, 'utf8')).toBe(
      `db1.mongodb.test be_dyn_tcp|127.0.0.2|${app.port}\n`,
    );
    expect(await readFile(stack.paths.config, 'utf8')).toBe(before);
    expect(reports.failedReports.map((report) => report.routeId).sort()).toEqual(
      hostile.map((route) => route.routeId).sort(),
    );
    for (const report of reports.failedReports) {
      expect(report.reason).toMatch(/^invalid (hostname|target\.host|target\.port)/);
      expect(report.reason).not.toMatch(/[\n\r]/);
    }
    expect(reports.appliedReports.map((report) => report.routeId).sort()).toEqual(
      [good.routeId, goodSni.routeId].sort(),
    );
    expect((await httpsGet(stack.ports.https, 'good.apps.test')).status).toBe(200);
    expect((await httpsGet(stack.ports.https, 'evil.apps.test')).status).toBe(404);
    // Failures are reported once per revision, not on every pass.
    await pass(reconciler, true);
    expect(reports.failedReports).toHaveLength(hostile.length);
  });
});
