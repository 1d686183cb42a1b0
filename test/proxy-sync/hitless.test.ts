/**
 * Guarantee 4: while wrk loads an existing route through HAProxy, 500 other routes are added and then
 * removed. Not one request of the existing route fails, and HAProxy is never reloaded.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createLogger } from '#platform';
import { createReconciler } from '../../apps/proxy-sync/src/proxy-sync.module.js';
import type { Reconciler } from '../../apps/proxy-sync/src/reconciler.js';
import { MemoryReporter } from '../../apps/proxy-sync/src/reporting.js';
import { StaticRouteSource } from '../../apps/proxy-sync/src/route-source.js';
import { startHaproxyStack } from '../harness/haproxy.js';
import { sleep, startProcess, waitFor } from '../harness/processes.js';
import { httpsGet } from '../dataplane/helpers.js';
import { httpAgent, httpRoute, parseWrk, proxyConfig, reloadState, runtimeMap } from './helpers.js';

const quiet = createLogger('proxy-sync', { write: () => undefined });
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function pass(reconciler: Reconciler) {
  const outcome = await reconciler.reconcileSoon();
  if (!outcome.ok) throw outcome.error;
  return outcome.result;
}

describe('hitless route changes', () => {
  it('adds and removes 500 routes under load: zero failed requests on the existing route, zero reloads', async () => {
    const stack = await startHaproxyStack();
    cleanups.push(() => stack.stop());
    const steadyApp = await httpAgent('127.0.0.2', 'steady');
    const churnApp = await httpAgent('127.0.0.3', 'churn');
    cleanups.push(
      () => steadyApp.close(),
      () => churnApp.close(),
    );
    const source = new StaticRouteSource([httpRoute('steady.apps.test', steadyApp)]);
    const reports = new MemoryReporter();
    const reconciler = createReconciler({
      config: proxyConfig(stack),
      source,
      routes: reports,
      node: reports,
      logger: quiet,
    });
    cleanups.push(() => reconciler.stop());
    await reconciler.start();
    await pass(reconciler);
    expect((await httpsGet(stack.ports.https, 'steady.apps.test')).status).toBe(200);
    const steady = await reloadState(stack);
    const version = await stack.client().getVersion();

    // Load on the existing route until the churn is over (wrk reports when interrupted).
    const wrk = startProcess('wrk', [
      '-t1',
      '-c4',
      '-d120s',
      '-H',
      'Host: steady.apps.test',
      `https://127.0.0.1:${stack.ports.https}/`,
    ]);
    cleanups.push(() => wrk.stop('SIGKILL'));
    await sleep(300);

    const churn = Array.from({ length: 500 }, (_, index) => httpRoute(`churn-${index}.apps.test`, churnApp));
    for (let index = 0; index < churn.length; index += 10) {
      source.upsert(...churn.slice(index, index + 10));
      await pass(reconciler);
    }
    expect((await runtimeMap(stack, 'hosts')).length).toBe(501);
    expect((await httpsGet(stack.ports.https, 'churn-499.apps.test')).body).toBe(
      'churn churn-499.apps.test https',
    );
    for (let index = 0; index < churn.length; index += 10) {
      source.remove(...churn.slice(index, index + 10).map((route) => route.routeId));
      await pass(reconciler);
    }
    expect(await runtimeMap(stack, 'hosts')).toEqual([
      `steady.apps.test be_dyn_http|127.0.0.2|${steadyApp.port}`,
    ]);
    expect((await httpsGet(stack.ports.https, 'churn-0.apps.test')).status).toBe(404);
    expect(wrk.child.exitCode).toBeNull(); // still loading: the churn happened under load

    wrk.child.kill('SIGINT');
    await waitFor('wrk to report', () => /requests in/.test(wrk.output()) && wrk.child.exitCode !== null);
    const load = parseWrk(wrk.output());
    expect(load.requests).toBeGreaterThan(100);
    expect({ non2xx: load.non2xx, socketErrors: load.socketErrors }).toEqual({ non2xx: 0, socketErrors: 0 });
    expect(await reloadState(stack)).toEqual(steady);
    expect(await stack.client().getVersion()).toBe(version);
    expect(reports.appliedReports).toHaveLength(501);
  });
});
