/**
 * The emulator in front of a real HAProxy, proven with real traffic: committed configuration is served,
 * a configuration that haproxy -c refuses is not, and route-level changes (map entries, servers,
 * certificates) take effect with no reload (the worker in `show proc` does not change).
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { DataplaneClient, DataplaneError, withTransaction } from '#dataplane';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { selfSignedPem, startHaproxyStack, type HaproxyStack } from '../harness/haproxy.js';
import { waitFor } from '../harness/processes.js';
import { httpGet, httpsGet, peerCertificate, startUpstream, type Upstream } from './helpers.js';
import { validationRecorder, type ValidationRecorder } from './validation.js';

let stack: HaproxyStack | undefined;
let recorder: ValidationRecorder;
let client: DataplaneClient;
const cleanups: (() => Promise<void>)[] = [];

async function start(reloadDelayMs = 100): Promise<HaproxyStack> {
  stack = await startHaproxyStack({ reloadDelayMs });
  recorder = validationRecorder();
  client = stack.client({ middleware: [recorder.middleware] });
  return stack;
}

async function upstream(name: string): Promise<Upstream> {
  const server = await startUpstream(name);
  cleanups.push(() => server.close());
  return server;
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => undefined);
  await stack?.stop();
  stack = undefined;
});

/** The worker pids and the master's reload counter: unchanged means "no reload happened". */
async function workerState(): Promise<{ reloads: number; workers: number[] }> {
  const proc = await stack!.showProc();
  return { reloads: proc.reloads, workers: proc.workers.map((worker) => worker.pid).sort() };
}

/** A backend with servers, created in one transaction and applied with a forced reload. */
async function createBackend(name: string, mode: 'http' | 'tcp', servers: { name: string; port: number }[]) {
  await withTransaction(
    client,
    async (tx) => {
      await client.unwrap(
        client.api.POST('/services/haproxy/configuration/backends', {
          params: { query: { transaction_id: tx.id } },
          body: { name, mode, balance: { algorithm: 'roundrobin' } },
        }),
      );
      for (const server of servers) {
        await client.unwrap(
          client.api.POST('/services/haproxy/configuration/backends/{parent_name}/servers', {
            params: { path: { parent_name: name }, query: { transaction_id: tx.id } },
            body: { name: server.name, address: '127.0.0.1', port: server.port },
          }),
        );
      }
    },
    { forceReload: true },
  );
}

describe('Data Plane API emulator over a real HAProxy', () => {
  it('serves a committed configuration, and keeps serving the old one when haproxy -c refuses a change', async () => {
    const { ports, paths } = await start();
    const app = await upstream('hello from app');
    // An unknown host: HAProxy's own 404. Plain HTTP is redirected to HTTPS.
    expect(await httpsGet(ports.https, 'direct.apps.test')).toEqual(
      expect.objectContaining({ status: 404, body: 'no route for this host' }),
    );
    expect((await httpGet(ports.http, 'direct.apps.test')).headers.location).toBe(
      'https://direct.apps.test/',
    );
    // Known to hosts.map (persisted, so it survives the reload below), sent to the fallback backend.
    await client.unwrap(
      client.api.POST('/services/haproxy/runtime/maps/{parent_name}/entries', {
        params: { path: { parent_name: 'hosts' }, query: { force_sync: true } },
        body: { key: 'direct.apps.test', value: 'be_no_route|127.0.0.1|1' },
      }),
    );
    expect((await httpsGet(ports.https, 'direct.apps.test')).status).toBe(503);

    const outcome = await withTransaction(client, async (tx) => {
      const query = { transaction_id: tx.id };
      await client.unwrap(
        client.api.POST('/services/haproxy/configuration/backends', {
          params: { query },
          body: { name: 'be_direct', mode: 'http', balance: { algorithm: 'roundrobin' } },
        }),
      );
      await client.unwrap(
        client.api.POST('/services/haproxy/configuration/backends/{parent_name}/servers', {
          params: { path: { parent_name: 'be_direct' }, query },
          body: { name: 'app', address: '127.0.0.1', port: app.port },
        }),
      );
      await client.unwrap(
        client.api.POST(
          '/services/haproxy/configuration/frontends/{parent_name}/backend_switching_rules/{index}',
          {
            params: { path: { parent_name: 'fe_https', index: 0 }, query },
            body: {
              name: 'be_direct',
              cond: 'if',
              cond_test: '{ req.hdr(host),lower,word(1,:) -m str direct.apps.test }',
            },
          },
        ),
      );
    });
    expect(outcome.status).toBe(202);
    const before = await workerState();
    await waitFor(
      'the reload to apply the commit',
      async () => (await client.getReload(outcome.reloadId!)).status === 'succeeded',
    );
    const after = await workerState();
    expect(after.reloads).toBe(before.reloads + 1);
    const served = await httpsGet(ports.https, 'direct.apps.test');
    expect(served).toEqual(expect.objectContaining({ status: 200, body: 'hello from app' }));

    // A change HAProxy refuses: 400, haproxy.cfg untouched, no reload, the old configuration still serves.
    const onDisk = await readFile(paths.config, 'utf8');
    const refused = await withTransaction(client, async (tx) => {
      await client.unwrap(
        client.api.PUT(
          '/services/haproxy/configuration/frontends/{parent_name}/backend_switching_rules/{index}',
          {
            params: { path: { parent_name: 'fe_https', index: 0 }, query: { transaction_id: tx.id } },
            body: { name: 'be_direct', cond: 'if', cond_test: 'no_such_acl' },
          },
        ),
      );
    }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DataplaneError);
    expect((refused as DataplaneError).status).toBe(400);
    expect((refused as DataplaneError).message).toContain('no_such_acl');
    expect(await readFile(paths.config, 'utf8')).toBe(onDisk);
    expect(await client.listTransactions('in_progress')).toEqual([]);
    expect(await workerState()).toEqual(after);
    expect(await httpsGet(ports.https, 'direct.apps.test')).toEqual(
      expect.objectContaining({ status: 200, body: 'hello from app' }),
    );
    expect(recorder.problems).toEqual([]);
  });

  it('reports a reload that HAProxy refuses, restores the last-known-good file and keeps the old worker', async () => {
    const { ports, paths } = await start(500);
    const lastKnownGood = await readFile(paths.config, 'utf8');
    expect(await readFile(`${paths.config}.lkg`, 'utf8')).toBe(lastKnownGood);
    const steady = await workerState();
    // Valid when checked (the certificate exists), gone when HAProxy reloads.
    const extra = `${paths.dir}/extra.pem`;
    await writeFile(extra, await selfSignedPem('extra.test'));
    const added = await client.unwrap(
      client.api.POST('/services/haproxy/configuration/frontends/{parent_name}/binds', {
        params: { path: { parent_name: 'fe_https' }, query: { version: 1 } },
        body: {
          name: 'extra',
          address: '127.0.0.1',
          port: ports.dataplane + 1,
          ssl: true,
          ssl_certificate: extra,
        },
      }),
    );
    expect(added.status).toBe(202);
    expect(await readFile(paths.config, 'utf8')).toContain(`crt ${extra}`);
    await rm(extra);
    await waitFor(
      'the reload to fail',
      async () => (await client.getReload(added.reloadId!)).status === 'failed',
    );
    const reloads = await client.getReloads();
    expect(reloads).toEqual([expect.objectContaining({ id: added.reloadId, status: 'failed' })]);
    expect(reloads[0].response).toMatch(/failed: 1/);
    expect(await readFile(paths.config, 'utf8')).toBe(lastKnownGood);
    expect((await workerState()).workers).toEqual(steady.workers);
    expect((await httpsGet(ports.https, 'any.apps.test')).status).toBe(404);
    expect(recorder.problems).toEqual([]);
  });

  it('routes host names through the runtime map API with no reload, and persists the map file', async () => {
    const { ports, paths } = await start();
    const one = await upstream('app one');
    const two = await upstream('app two');
    await createBackend('be_one', 'http', [{ name: 'web', port: one.port }]);
    await createBackend('be_two', 'http', [{ name: 'web', port: two.port }]);
    const steady = await workerState();
    const version = await client.getVersion();

    expect((await httpsGet(ports.https, 'one.apps.test')).status).toBe(404);
    const added = await client.unwrap(
      client.api.POST('/services/haproxy/runtime/maps/{parent_name}/entries', {
        params: { path: { parent_name: 'hosts' } },
        body: { key: 'one.apps.test', value: 'be_one' },
      }),
    );
    expect(added.status).toBe(201);
    expect(await httpsGet(ports.https, 'one.apps.test')).toEqual(
      expect.objectContaining({ status: 200, body: 'app one' }),
    );
    // Host with a port and upper case: the base configuration's lower + word(1,:) handle it.
    expect((await httpsGet(ports.https, 'ONE.apps.test:8443')).body).toBe('app one');
    const duplicate = await client
      .unwrap(
        client.api.POST('/services/haproxy/runtime/maps/{parent_name}/entries', {
          params: { path: { parent_name: 'hosts' } },
          body: { key: 'one.apps.test', value: 'be_two' },
        }),
      )
      .catch((error: unknown) => error as DataplaneError);
    expect((duplicate as DataplaneError).status).toBe(409);

    const changed = await client.unwrap(
      client.api.PUT('/services/haproxy/runtime/maps/{parent_name}/entries/{id}', {
        params: { path: { parent_name: 'hosts', id: 'one.apps.test' }, query: { force_sync: true } },
        body: { value: 'be_two' },
      }),
    );
    expect(changed.data).toEqual({ id: 'one.apps.test', key: 'one.apps.test', value: 'be_two' });
    expect((await httpsGet(ports.https, 'one.apps.test')).body).toBe('app two');
    expect(await readFile(paths.hostsMap, 'utf8')).toBe('one.apps.test be_two\n');

    // Many entries at once, then the file written through storage (skip_reload: 204, no reload).
    await client.unwrap(
      client.api.PUT('/services/haproxy/runtime/maps/{name}', {
        params: { path: { name: 'hosts' } },
        body: [
          { key: 'a.apps.test', value: 'be_one' },
          { key: 'b.apps.test', value: 'be_two' },
        ],
      }),
    );
    const entries = await client.unwrap(
      client.api.GET('/services/haproxy/runtime/maps/{parent_name}/entries', {
        params: { path: { parent_name: 'hosts' } },
      }),
    );
    expect(entries.data.map((entry) => `${entry.key}=${entry.value}`).sort()).toEqual([
      'a.apps.test=be_one',
      'b.apps.test=be_two',
      'one.apps.test=be_two',
    ]);
    const file = 'one.apps.test be_two\na.apps.test be_one\nb.apps.test be_two\n';
    const stored = await client.unwrap(
      client.api.PUT('/services/haproxy/storage/maps/{name}', {
        params: { path: { name: 'hosts.map' }, query: { skip_reload: true } },
        body: file,
        bodySerializer: (body: string) => body,
        headers: { 'content-type': 'text/plain' },
      }),
    );
    expect(stored.status).toBe(204);
    expect(await readFile(paths.hostsMap, 'utf8')).toBe(file);
    const raw = await client.unwrap(
      client.api.GET('/services/haproxy/storage/maps/{name}', {
        params: { path: { name: 'hosts.map' } },
        parseAs: 'text',
      }),
    );
    expect(raw.data).toBe(file);
    expect((await httpsGet(ports.https, 'b.apps.test')).body).toBe('app two');

    const removed = await client.unwrap(
      client.api.DELETE('/services/haproxy/runtime/maps/{parent_name}/entries/{id}', {
        params: { path: { parent_name: 'hosts', id: 'b.apps.test' } },
      }),
    );
    expect(removed.status).toBe(204);
    expect((await httpsGet(ports.https, 'b.apps.test')).status).toBe(404);
    const maps = await client.unwrap(client.api.GET('/services/haproxy/runtime/maps'));
    expect(maps.data.map((map) => map.storage_name).sort()).toEqual(['hosts.map', 'sni.map']);

    // None of this reloaded HAProxy or changed the configuration version.
    expect(await workerState()).toEqual(steady);
    expect(await client.getVersion()).toBe(version);
    expect(recorder.problems).toEqual([]);
  });

  it('handles servers like dataplaneapi: runtime add (201), set server (200) with no reload; delete reloads', async () => {
    const { ports, paths } = await start();
    const one = await upstream('server one');
    const two = await upstream('server two');
    await createBackend('be_app', 'http', []);
    await client.unwrap(
      client.api.POST('/services/haproxy/runtime/maps/{parent_name}/entries', {
        params: { path: { parent_name: 'hosts' } },
        body: { key: 'app.apps.test', value: 'be_app' },
      }),
    );
    const steady = await workerState();
    const version = await client.getVersion();

    // HAProxy 2.6 starts servers added at runtime in maintenance: 201, no reload, but no traffic yet.
    const created = await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends/{parent_name}/servers', {
        params: { path: { parent_name: 'be_app' }, query: { version } },
        body: { name: 's1', address: '127.0.0.1', port: one.port },
      }),
    );
    expect(created.status).toBe(201);
    expect(created.reloadId).toBeUndefined();
    expect(created.configurationVersion).toBe(version + 1);
    expect(await readFile(paths.config, 'utf8')).toContain(`server s1 127.0.0.1:${one.port}\n`);
    const runtimeServer = (name: string) =>
      client.unwrap(
        client.api.GET('/services/haproxy/runtime/backends/{parent_name}/servers/{name}', {
          params: { path: { parent_name: 'be_app', name } },
        }),
      );
    expect((await runtimeServer('s1')).data).toEqual(
      expect.objectContaining({ admin_state: 'maint', port: one.port }),
    );
    expect((await httpsGet(ports.https, 'app.apps.test')).status).toBe(503);
    // Ready through the runtime server endpoint (set server … state ready): traffic flows, no reload.
    const ready = await client.unwrap(
      client.api.PUT('/services/haproxy/runtime/backends/{parent_name}/servers/{name}', {
        params: { path: { parent_name: 'be_app', name: 's1' } },
        body: { admin_state: 'ready' },
      }),
    );
    expect(ready.data).toEqual(
      expect.objectContaining({ name: 's1', admin_state: 'ready', operational_state: 'up' }),
    );
    expect(await httpsGet(ports.https, 'app.apps.test')).toEqual(
      expect.objectContaining({ status: 200, body: 'server one' }),
    );

    // maintenance "disabled" makes dataplaneapi add the `enabled` keyword (HAProxy < 3.0). On 2.6.12 that
    // server shows as ready but the load balancer never counts it: it gets no traffic until a reload.
    await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends/{parent_name}/servers', {
        params: { path: { parent_name: 'be_app' }, query: { version: version + 1 } },
        body: { name: 's2', address: '127.0.0.1', port: two.port, maintenance: 'disabled' },
      }),
    );
    expect((await runtimeServer('s2')).data).toEqual(
      expect.objectContaining({ admin_state: 'ready', port: two.port }),
    );
    for (let index = 0; index < 4; index++) {
      expect((await httpsGet(ports.https, 'app.apps.test')).body).toBe('server one');
    }

    // Only the port changes: set server, 200, no reload; traffic moves at once.
    const moved = await client.unwrap(
      client.api.PUT('/services/haproxy/configuration/backends/{parent_name}/servers/{name}', {
        params: { path: { parent_name: 'be_app', name: 's1' }, query: { version: version + 2 } },
        body: { name: 's1', address: '127.0.0.1', port: two.port },
      }),
    );
    expect(moved.status).toBe(200);
    expect(moved.reloadId).toBeUndefined();
    expect(await httpsGet(ports.https, 'app.apps.test')).toEqual(
      expect.objectContaining({ body: 'server two' }),
    );

    // Runtime server endpoints: drain and ready again, weight.
    const state = await client.unwrap(
      client.api.PUT('/services/haproxy/runtime/backends/{parent_name}/servers/{name}', {
        params: { path: { parent_name: 'be_app', name: 's1' } },
        body: { admin_state: 'drain', weight: 5 },
      }),
    );
    expect(state.data).toEqual(expect.objectContaining({ admin_state: 'drain', weight: 5 }));
    await client.unwrap(
      client.api.PUT('/services/haproxy/runtime/backends/{parent_name}/servers/{name}', {
        params: { path: { parent_name: 'be_app', name: 's1' } },
        body: { admin_state: 'ready' },
      }),
    );
    const all = await client.unwrap(
      client.api.GET('/services/haproxy/runtime/backends/{parent_name}/servers', {
        params: { path: { parent_name: 'be_app' } },
      }),
    );
    expect(all.data.map((server) => `${server.name}:${server.admin_state}`)).toEqual([
      's1:ready',
      's2:ready',
    ]);
    expect(await workerState()).toEqual(steady);

    // A change beyond the runtime fields (check) needs a reload: 202 with a Reload-ID.
    const checked = await client.unwrap(
      client.api.PUT('/services/haproxy/configuration/backends/{parent_name}/servers/{name}', {
        params: { path: { parent_name: 'be_app', name: 's1' }, query: { version: version + 3 } },
        body: { name: 's1', address: '127.0.0.1', port: two.port, check: 'enabled' },
      }),
    );
    expect(checked.status).toBe(202);
    expect(checked.reloadId).toMatch(/^\d{4}-\d{2}-\d{2}-\d+$/);
    // Deleting a server is a configuration change with a reload (dataplaneapi has no runtime shortcut for it).
    const deleted = await client.unwrap(
      client.api.DELETE('/services/haproxy/configuration/backends/{parent_name}/servers/{name}', {
        params: { path: { parent_name: 'be_app', name: 's2' }, query: { version: version + 4 } },
      }),
    );
    expect(deleted.status).toBe(202);
    // Both commits usually share one reload window; on a loaded machine the first reload may already have
    // run, and the delete then gets the next id. Either way each commit leads to a reload.
    const [day, index] = [checked.reloadId!.slice(0, 11), Number(checked.reloadId!.slice(11))];
    expect([checked.reloadId, `${day}${index + 1}`]).toContain(deleted.reloadId);
    await waitFor(
      'the reload',
      async () => (await client.getReload(deleted.reloadId!)).status === 'succeeded',
    );
    const reloaded = await workerState();
    expect(reloaded.reloads).toBe(steady.reloads + (deleted.reloadId === checked.reloadId ? 1 : 2));
    expect(reloaded.workers).not.toEqual(steady.workers);
    expect(await readFile(paths.config, 'utf8')).not.toContain('server s2 ');
    // After the reload the map entry added at runtime is gone (never persisted): no route.
    expect((await httpsGet(ports.https, 'app.apps.test')).status).toBe(404);
    expect(recorder.problems).toEqual([]);
  });

  it('routes TLS by SNI to a passthrough backend that presents its own certificate', async () => {
    const { ports } = await start();
    const pem = await selfSignedPem('db1.mongodb.test');
    const tlsServer: TlsServer = createTlsServer({ cert: pem, key: pem }, (socket) =>
      socket.end('hello over tls'),
    );
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', () => resolve()));
    cleanups.push(() => new Promise<void>((resolve) => tlsServer.close(() => resolve())));
    await createBackend('be_db1', 'tcp', [{ name: 'db', port: (tlsServer.address() as AddressInfo).port }]);
    const steady = await workerState();

    await expect(peerCertificate(ports.tlsSni, 'db1.mongodb.test')).rejects.toThrow();
    await client.unwrap(
      client.api.POST('/services/haproxy/runtime/maps/{parent_name}/entries', {
        params: { path: { parent_name: 'sni' } },
        body: { key: 'db1.mongodb.test', value: 'be_db1' },
      }),
    );
    const presented = await peerCertificate(ports.tlsSni, 'db1.mongodb.test');
    expect(presented.subject).toBe('db1.mongodb.test');
    await expect(peerCertificate(ports.tlsSni, 'other.mongodb.test')).rejects.toThrow();
    expect(await workerState()).toEqual(steady);
    expect(recorder.problems).toEqual([]);
  });

  it('uploads the front certificate to storage and replaces it at runtime without a reload', async () => {
    const { ports, paths } = await start();
    const first = await selfSignedPem('*.apps.test', ['*.apps.test']);
    const form = new FormData();
    form.append('file_upload', new Blob([first], { type: 'text/plain' }), 'apps.test.pem');
    // A new file in the bind's directory is picked up by a reload: upload it with force_reload.
    const created = await client.unwrap(
      client.api.POST('/services/haproxy/storage/ssl_certificates', {
        params: { query: { force_reload: true } },
        body: form as never,
        bodySerializer: ((body: unknown) => body) as never,
      }),
    );
    expect(created.status).toBe(201);
    expect(created.data).toEqual(
      expect.objectContaining({ storage_name: 'apps.test.pem', domains: '*.apps.test' }),
    );
    const served = await peerCertificate(ports.https, 'x.apps.test');
    expect(served.subject).toBe('*.apps.test');
    const steady = await workerState();

    const second = await selfSignedPem('*.apps.test', ['*.apps.test', 'apps.test']);
    const replaced = await client.unwrap(
      client.api.PUT('/services/haproxy/storage/ssl_certificates/{name}', {
        params: { path: { name: 'apps.test.pem' } },
        body: second,
        bodySerializer: (body: string) => body,
        headers: { 'content-type': 'text/plain' },
      }),
    );
    expect(replaced.status).toBe(200);
    expect(replaced.data.domains).toBe('*.apps.test apps.test');
    const now = await peerCertificate(ports.https, 'x.apps.test');
    expect(now.fingerprint256).not.toBe(served.fingerprint256);
    expect(await workerState()).toEqual(steady);
    expect(await readFile(`${paths.sslDir}/apps.test.pem`, 'utf8')).toBe(second);

    const listed = await client.unwrap(client.api.GET('/services/haproxy/storage/ssl_certificates'));
    expect(listed.data.map((entry) => entry.storage_name)).toEqual(['00-default.pem', 'apps.test.pem']);
    const duplicate = await client
      .unwrap(
        client.api.POST('/services/haproxy/storage/ssl_certificates', {
          params: { query: { skip_reload: true } },
          body: form as never,
          bodySerializer: ((body: unknown) => body) as never,
        }),
      )
      .catch((error: unknown) => error as DataplaneError);
    expect((duplicate as DataplaneError).status).toBe(409);
    expect(recorder.problems).toEqual([]);
  });

  it('counts the requests in flight to each target in st_targets, and only while they are in flight', async () => {
    const { ports } = await start();
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const slow = createHttpServer((_request, response) => {
      void held.then(() => response.end('slow'));
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', () => resolve()));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          slow.closeAllConnections();
          slow.close(() => resolve());
        }),
    );
    const port = (slow.address() as AddressInfo).port;
    await client.unwrap(
      client.api.POST('/services/haproxy/runtime/maps/{parent_name}/entries', {
        params: { path: { parent_name: 'hosts' } },
        body: { key: 'slow.apps.test', value: `be_dyn_http|127.0.0.1|${port}` },
      }),
    );
    const key = `127.0.0.1|${port}`;
    const inFlight = Promise.all([
      httpsGet(ports.https, 'slow.apps.test'),
      httpsGet(ports.https, 'slow.apps.test'),
    ]);
    await waitFor(
      'two streams to the slow target',
      async () => (await client.getStickTableEntries('st_targets', key))[0]?.conn_cur === 2,
      { timeoutMs: 5_000 },
    );
    const [entry] = await client.getStickTableEntries('st_targets', key);
    expect(entry).toEqual(expect.objectContaining({ key, use: true, conn_cur: 2 }));
    expect(await client.getStickTableEntries('st_targets', '127.0.0.1|1')).toEqual([]);
    release();
    expect((await inFlight).map((answer) => answer.body)).toEqual(['slow', 'slow']);
    const [after] = await client.getStickTableEntries('st_targets', key);
    expect(after).toEqual(expect.objectContaining({ key, use: false, conn_cur: 0 }));
    const missing = await client
      .getStickTableEntries('no_such_table')
      .catch((error: unknown) => error as DataplaneError);
    expect((missing as DataplaneError).status).toBe(404);
    expect(recorder.problems).toEqual([]);
  });
});
