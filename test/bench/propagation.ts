/**
 * Route propagation through proxy-sync into a real HAProxy (over the Data Plane API emulator), with
 * 10,000 routes present: the time from a change of the desired routes (RouteSource + reconcileSoon(); the
 * routes API does not exist yet) to the first successful HTTPS request through HAProxy, one route at a
 * time and as a burst of 1,000; HAProxy reloads caused by route changes; requests/s through HAProxy with
 * 1 route and with 10,000 routes (wrk, same HAProxy, same run); and the cost of persisting a map file
 * (storage PUT of the whole file vs force_sync on one runtime entry).
 */
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:https';
import { Worker } from 'node:worker_threads';
import { createLogger } from '#platform';
import { createReconciler } from '../../apps/proxy-sync/src/proxy-sync.module.js';
import type { Reconciler } from '../../apps/proxy-sync/src/reconciler.js';
import { MemoryReporter } from '../../apps/proxy-sync/src/reporting.js';
import { StaticRouteSource, type SourcedRoute } from '../../apps/proxy-sync/src/route-source.js';
import { startHaproxyStack, type HaproxyStack } from '../harness/haproxy.js';
import { startProcess, waitFor } from '../harness/processes.js';
import { httpAgent, parseWrk, proxyConfig, type Agent as Upstream } from '../proxy-sync/helpers.js';
import { percentile, progress, round, type Figures } from './report.js';

const ROUTES_PRESENT = 10_000;
const SINGLE_SAMPLES = 200;
const BURST = 1_000;
const WRK_SECONDS = 5;

const keepAlive = new Agent({ keepAlive: true, maxSockets: 32, rejectUnauthorized: false });

/** One HTTPS request through HAProxy by Host; resolves with the status (0 on a network error). */
function status(port: number, host: string): Promise<number> {
  return new Promise((resolve) => {
    const pending = request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        headers: { host },
        agent: keepAlive,
        servername: 'bench.apps.test',
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    pending.on('error', () => resolve(0));
    pending.end();
  });
}

function route(hostname: string, upstream: Upstream): SourcedRoute {
  return {
    routeId: randomUUID(),
    revision: 1,
    agentId: 'bench',
    kind: 'http',
    hostname,
    target: { host: upstream.host, port: upstream.port },
    options: { tlsToTarget: false },
  };
}

async function reloads(stack: HaproxyStack): Promise<number> {
  return (await stack.showProc()).reloads;
}

async function wrkRate(stack: HaproxyStack, host: string): Promise<number> {
  const wrk = startProcess('wrk', [
    '-t1',
    '-c16',
    `-d${WRK_SECONDS}s`,
    '-H',
    `Host: ${host}`,
    `https://127.0.0.1:${stack.ports.https}/`,
  ]);
  await waitFor('wrk', () => wrk.child.exitCode !== null, { timeoutMs: (WRK_SECONDS + 30) * 1000 });
  const figures = parseWrk(wrk.output());
  if (figures.non2xx > 0 || figures.socketErrors > 0) throw new Error(`wrk saw failures:\n${wrk.output()}`);
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(wrk.output())?.[1] ?? NaN);
  return rate;
}

/**
 * The client that waits for the first 200 runs in a worker thread: in this process the emulator and
 * proxy-sync share one event loop, and a client polling on it would measure their work as well.
 */
const POLLER = `
const { parentPort } = require('node:worker_threads');
const https = require('node:https');
const agent = new https.Agent({ keepAlive: true, maxSockets: 32, rejectUnauthorized: false });
const status = (port, host) => new Promise((resolve) => {
  const req = https.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent, servername: 'bench.apps.test' },
    (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
  req.on('error', () => resolve(0));
  req.end();
});
parentPort.on('message', async ({ id, port, hosts }) => {
  let next = 0;
  const deadline = Date.now() + 60000;
  await Promise.all(Array.from({ length: Math.min(16, hosts.length) }, async () => {
    for (let i = next++; i < hosts.length; i = next++) {
      while ((await status(port, hosts[i])) !== 200) {
        if (Date.now() > deadline) { parentPort.postMessage({ id, error: hosts[i] + ' never answered' }); return; }
      }
    }
  }));
  parentPort.postMessage({ id, doneAt: performance.timeOrigin + performance.now() });
});
`;

class Poller {
  private readonly worker = new Worker(POLLER, { eval: true });
  private next = 0;

  /** Resolves with the absolute time (ms) at which every host had answered 200 once. */
  allAnswer(port: number, hosts: string[]): Promise<number> {
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      const onMessage = (message: { id: number; doneAt?: number; error?: string }) => {
        if (message.id !== id) return;
        this.worker.off('message', onMessage);
        if (message.error) reject(new Error(message.error));
        else resolve(message.doneAt as number);
      };
      this.worker.on('message', onMessage);
      this.worker.postMessage({ id, port, hosts });
    });
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }
}

const now = () => performance.timeOrigin + performance.now();

async function until200(port: number, host: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if ((await status(port, host)) === 200) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`${host} never answered`);
}

async function settle(reconciler: Reconciler): Promise<void> {
  const outcome = await reconciler.reconcileSoon();
  if (!outcome.ok) throw outcome.error;
}

export async function run(): Promise<Figures> {
  const stack = await startHaproxyStack({ reloadDelayMs: 100 });
  const upstream = await httpAgent('127.0.0.2', 'bench');
  const source = new StaticRouteSource([route('bench.apps.test', upstream)]);
  const reports = new MemoryReporter();
  const poller = new Poller();
  const reconciler = createReconciler({
    config: proxyConfig(stack, { CL_PROXY_RECONCILE_INTERVAL_MS: '3600000' }),
    source,
    routes: reports,
    node: reports,
    logger: createLogger('proxy-sync', { write: () => undefined }),
  });
  try {
    await reconciler.start();
    await settle(reconciler);
    await until200(stack.ports.https, 'bench.apps.test');

    progress('throughput with 1 route');
    const rps1 = await wrkRate(stack, 'bench.apps.test');

    progress(`adding ${ROUTES_PRESENT} routes`);
    const present = Array.from({ length: ROUTES_PRESENT - 1 }, (_, index) =>
      route(`present-${index}.apps.test`, upstream),
    );
    source.upsert(...present);
    await settle(reconciler);
    await until200(stack.ports.https, `present-${ROUTES_PRESENT - 2}.apps.test`);
    const reloadsBefore = await reloads(stack);

    progress(`throughput with ${ROUTES_PRESENT} routes`);
    const rps10k = await wrkRate(stack, 'bench.apps.test');

    progress(`${SINGLE_SAMPLES} routes one at a time`);
    const latencies: number[] = [];
    const phases: Record<string, number> = {};
    for (let index = 0; index < SINGLE_SAMPLES; index++) {
      const host = `single-${index}.apps.test`;
      source.upsert(route(host, upstream));
      const started = now();
      const answered = poller.allAnswer(stack.ports.https, [host]);
      const reconciled = reconciler.reconcileSoon().then((outcome) => {
        if (!outcome.ok) progress(`pass failed: ${String(outcome.error)}`);
        return outcome;
      });
      latencies.push((await answered) - started);
      const outcome = await reconciled;
      if (outcome.ok) {
        for (const [phase, ms] of Object.entries(outcome.result.timings)) {
          phases[phase] = (phases[phase] ?? 0) + ms / SINGLE_SAMPLES;
        }
      }
    }
    latencies.sort((a, b) => a - b);

    progress(`burst of ${BURST} routes`);
    const burst = Array.from({ length: BURST }, (_, index) => route(`burst-${index}.apps.test`, upstream));
    source.upsert(...burst);
    const burstStarted = now();
    const burstAnswered = poller.allAnswer(
      stack.ports.https,
      burst.map((entry) => entry.hostname),
    );
    const burstReconciled = reconciler.reconcileSoon();
    const burstMs = (await burstAnswered) - burstStarted;
    await burstReconciled;

    progress('removing the burst');
    source.remove(...burst.map((entry) => entry.routeId));
    await settle(reconciler);
    const routeChangeReloads = (await reloads(stack)) - reloadsBefore;

    progress('persisting a map file: storage PUT vs force_sync');
    const client = stack.client();
    const { readFile } = await import('node:fs/promises');
    const file = await readFile(stack.paths.hostsMap, 'utf8');
    const storagePut: number[] = [];
    const forceSync: number[] = [];
    for (let index = 0; index < 20; index++) {
      let started = performance.now();
      await client.unwrap(
        client.api.PUT('/services/haproxy/storage/maps/{name}', {
          params: { path: { name: 'hosts.map' }, query: { skip_reload: true } },
          body: file,
          bodySerializer: (body: string) => body,
          headers: { 'content-type': 'text/plain' },
        }),
      );
      storagePut.push(performance.now() - started);
      started = performance.now();
      await client.unwrap(
        client.api.PUT('/services/haproxy/runtime/maps/{parent_name}/entries/{id}', {
          params: { path: { parent_name: 'hosts', id: 'bench.apps.test' }, query: { force_sync: true } },
          body: { value: `be_dyn_http|${upstream.host}|${upstream.port}` },
        }),
      );
      forceSync.push(performance.now() - started);
    }
    storagePut.sort((a, b) => a - b);
    forceSync.sort((a, b) => a - b);

    return {
      measured_from: 'route source change + reconcileSoon()',
      routes_present: ROUTES_PRESENT,
      samples: SINGLE_SAMPLES,
      p50_ms: round(percentile(latencies, 50)),
      p95_ms: round(percentile(latencies, 95)),
      p99_ms: round(percentile(latencies, 99)),
      burst_1000_ms: round(burstMs),
      reloads_for_route_changes: routeChangeReloads,
      rps_1_route: Math.round(rps1),
      rps_10000_routes: Math.round(rps10k),
      rps_ratio: round(rps10k / rps1, 2),
      persist_storage_put_p50_ms: round(percentile(storagePut, 50)),
      persist_force_sync_p50_ms: round(percentile(forceSync, 50)),
      ...Object.fromEntries(
        Object.entries(phases).map(([phase, ms]) => [`single_pass_${phase}_mean_ms`, round(ms)]),
      ),
    };
  } finally {
    await poller.stop();
    keepAlive.destroy();
    await reconciler.stop();
    await upstream.close();
    await stack.stop();
  }
}
