/**
 * Real traffic through HAProxy reconciled by proxy-sync (in-process, over the Data Plane API emulator):
 * HTTPS by Host verified against the test CA, TLS-to-target, 404 for unknown hosts, a removed route stops
 * answering, TLS passthrough by SNI to two agents (Node's TLS client, openssl s_client, redis-cli) — and
 * none of these route changes reloads HAProxy.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '#platform';
import { createReconciler } from '../../apps/proxy-sync/src/proxy-sync.module.js';
import type { Reconciler } from '../../apps/proxy-sync/src/reconciler.js';
import { MemoryReporter } from '../../apps/proxy-sync/src/reporting.js';
import { StaticRouteSource } from '../../apps/proxy-sync/src/route-source.js';
import { startHaproxyStack, type HaproxyStack } from '../harness/haproxy.js';
import { freePort } from '../harness/ports.js';
import { startProcess, waitFor, type RunningProcess } from '../harness/processes.js';
import { httpGet } from '../dataplane/helpers.js';
import {
  createTestCa,
  getThrough,
  httpAgent,
  httpRoute,
  httpsAgent,
  proxyConfig,
  rawRequest,
  reloadState,
  runtimeMap,
  sniRoute,
  tlsAgent,
  tlsThrough,
  type TestCa,
} from './helpers.js';

const run = promisify(execFile);
const quiet = createLogger('proxy-sync', { write: () => undefined });
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function setup(): Promise<{
  stack: HaproxyStack;
  ca: TestCa;
  source: StaticRouteSource;
  reports: MemoryReporter;
  reconciler: Reconciler;
}> {
  const ca = await createTestCa();
  cleanups.push(() => ca.remove());
  const stack = await startHaproxyStack({ caPem: ca.certPem });
  cleanups.push(() => stack.stop());
  const front = await ca.issue(['*.apps.test', 'apps.test']);
  const frontFile = join(ca.dir, 'front.pem');
  await writeFile(frontFile, front.pem);
  const source = new StaticRouteSource();
  const reports = new MemoryReporter();
  const reconciler = createReconciler({
    config: proxyConfig(stack, { CL_FRONT_CERT_FILE: frontFile }),
    source,
    routes: reports,
    node: reports,
    logger: quiet,
  });
  cleanups.push(() => reconciler.stop());
  await reconciler.start();
  const first = await reconciler.reconcileSoon();
  if (!first.ok) throw first.error;
  return { stack, ca, source, reports, reconciler };
}

async function agent<T extends { close(): Promise<void> }>(pending: Promise<T>): Promise<T> {
  const started = await pending;
  cleanups.push(() => started.close());
  return started;
}

async function pass(reconciler: Reconciler) {
  const outcome = await reconciler.reconcileSoon();
  if (!outcome.ok) throw outcome.error;
  return outcome.result;
}

describe('proxy-sync: real traffic', () => {
  it('serves HTTPS by Host (front certificate of the CA), TLS to the target, 404s unknown hosts, and stops a removed route — without a reload', async () => {
    const { stack, ca, source, reports, reconciler } = await setup();
    const one = await agent(httpAgent('127.0.0.2', 'one'));
    const two = await agent(httpAgent('127.0.0.3', 'two'));
    const secure = await agent(httpsAgent('127.0.0.3', 'secure', await ca.issue(['secure.apps.test'])));
    const impostor = await agent(httpsAgent('127.0.0.2', 'impostor', await ca.issue(['other.apps.test'])));
    const version = await stack.client().getVersion();
    const steady = await reloadState(stack);

    const app = httpRoute('app.apps.test', one);
    const tlsRoute = httpRoute('secure.apps.test', secure, { options: { tlsToTarget: true } });
    const wrongName = httpRoute('wrong.apps.test', impostor, { options: { tlsToTarget: true } });
    source.set([app, tlsRoute, wrongName]);
    const added = await pass(reconciler);
    expect(added.structural).toEqual([]);
    expect(added.mapChanges).toEqual({ hosts: 3, sni: 0 });

    // Verified against the CloudLunacy test CA: the front's certificate was uploaded by proxy-sync.
    expect(await getThrough(stack.ports.https, 'app.apps.test', ca.certPem)).toEqual(
      expect.objectContaining({ status: 200, body: 'one app.apps.test https' }),
    );
    expect((await getThrough(stack.ports.https, 'APP.apps.test', ca.certPem, '/x?y=1')).body).toBe(
      'one APP.apps.test https',
    );
    expect((await getThrough(stack.ports.https, 'secure.apps.test', ca.certPem)).body).toBe(
      'secure over tls secure.apps.test',
    );
    // TLS to the target checks the target's name: a certificate for another name is refused.
    expect((await getThrough(stack.ports.https, 'wrong.apps.test', ca.certPem)).status).toBe(503);
    expect(await getThrough(stack.ports.https, 'unknown.apps.test', ca.certPem)).toEqual(
      expect.objectContaining({ status: 404, body: 'no route for this host' }),
    );
    // Plain HTTP: a redirect to HTTPS, except ACME challenges, which reach the route's target.
    const redirected = await httpGet(stack.ports.http, 'app.apps.test', '/page?q=1');
    expect(redirected.status).toBe(301);
    expect(redirected.headers.location).toBe('https://app.apps.test/page?q=1');
    const challenge = await httpGet(stack.ports.http, 'app.apps.test', '/.well-known/acme-challenge/token');
    expect(challenge).toEqual(expect.objectContaining({ status: 200, body: 'one app.apps.test ' }));

    // A new revision with another target, then removal.
    source.upsert({ ...app, revision: 2, target: { host: two.host, port: two.port } });
    await pass(reconciler);
    expect((await getThrough(stack.ports.https, 'app.apps.test', ca.certPem)).body).toBe(
      'two app.apps.test https',
    );
    source.remove(app.routeId);
    const removed = await pass(reconciler);
    expect(removed.mapChanges.hosts).toBe(1);
    expect((await getThrough(stack.ports.https, 'app.apps.test', ca.certPem)).status).toBe(404);

    expect(
      reports.appliedReports
        .filter((report) => report.routeId === app.routeId)
        .map((report) => report.revision),
    ).toEqual([1, 2]);
    expect(reports.appliedReports.every((report) => report.configVersion === version)).toBe(true);
    expect(reports.failedReports).toEqual([]);
    expect(reports.last).toEqual(
      expect.objectContaining({ status: 'in-sync', routes: 2, configVersion: version }),
    );
    // Route changes: no reload, no configuration write; the map file on disk follows.
    expect(await reloadState(stack)).toEqual(steady);
    expect(await stack.client().getVersion()).toBe(version);
    expect(await runtimeMap(stack, 'hosts')).toEqual([
      `secure.apps.test be_dyn_https|127.0.0.3|${secure.port}`,
      `wrong.apps.test be_dyn_https|127.0.0.2|${impostor.port}`,
    ]);
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(stack.paths.hostsMap, 'utf8')).split('\n').sort()).toEqual([
      '',
      `secure.apps.test be_dyn_https|127.0.0.3|${secure.port}`,
      `wrong.apps.test be_dyn_https|127.0.0.2|${impostor.port}`,
    ]);
  });

  it('reads the Host header whole: two Host headers or a list get 400, a malformed Host is not redirected', async () => {
    const { stack, ca, source, reconciler } = await setup();
    const victim = await agent(httpAgent('127.0.0.2', 'victim'));
    const owned = await agent(httpAgent('127.0.0.3', 'owned'));
    source.set([httpRoute('victim.apps.test', victim), httpRoute('owned.apps.test', owned)]);
    await pass(reconciler);
    const https = { servername: 'owned.apps.test', ca: ca.certPem };

    // The well-formed request is routed, over both ports.
    const plain = await rawRequest(stack.ports.https, ['Host: owned.apps.test'], https);
    expect(plain.status).toBe(200);
    expect(plain.raw).toContain('owned owned.apps.test https');
    // req.hdr would take the last value of a list and route this to the victim.
    for (const lines of [
      ['Host: owned.apps.test,victim.apps.test'],
      ['Host: owned.apps.test, victim.apps.test'],
      ['Host: owned.apps.test', 'Host: victim.apps.test'],
    ]) {
      const over = await rawRequest(stack.ports.https, lines, https);
      expect({ lines, status: over.status }).toEqual({ lines, status: 400 });
      expect(over.raw).not.toContain('victim');
      const plainHttp = await rawRequest(stack.ports.http, lines);
      expect({ lines, status: plainHttp.status }).toEqual({ lines, status: 400 });
      expect(plainHttp.raw).not.toMatch(/^location:/im);
    }
    // Plain HTTP redirects a well-formed Host (the port dropped) and nothing else: no Location reflects
    // a path, a user part or an address in brackets.
    const redirected = await rawRequest(stack.ports.http, ['Host: Owned.apps.test:80']);
    expect(redirected.status).toBe(301);
    expect(redirected.raw).toMatch(/^location: https:\/\/owned\.apps\.test\/\r$/im);
    for (const host of [
      'evil.example/x?',
      'user@owned.apps.test',
      '[::1]',
      'owned.apps.test:0',
      '-x.apps.test',
    ]) {
      const refused = await rawRequest(stack.ports.http, [`Host: ${host}`]);
      expect({ host, status: refused.status }).toEqual({ host, status: 400 });
      expect(refused.raw).not.toMatch(/^location:/im);
    }
  });

  it('routes TLS by SNI to each agent, which presents its own certificate (Node, openssl s_client, redis-cli)', async () => {
    const { stack, ca, source, reconciler } = await setup();
    const a1 = await agent(tlsAgent('127.0.0.2', 'a1', await ca.issue(['a1.mongodb.test'])));
    const a2 = await agent(tlsAgent('127.0.0.3', 'a2', await ca.issue(['a2.mongodb.test'])));
    const steady = await reloadState(stack);
    source.set([sniRoute('a1', 'test', a1), sniRoute('a2', 'test', a2)]);
    expect((await pass(reconciler)).mapChanges).toEqual({ hosts: 0, sni: 2 });

    expect(await tlsThrough(stack.ports.tlsSni, 'a1.mongodb.test', ca.certPem)).toEqual({
      subject: 'a1.mongodb.test',
      greeting: 'hello from a1',
      authorized: true,
    });
    expect(await tlsThrough(stack.ports.tlsSni, 'a2.mongodb.test', ca.certPem)).toEqual({
      subject: 'a2.mongodb.test',
      greeting: 'hello from a2',
      authorized: true,
    });
    await expect(tlsThrough(stack.ports.tlsSni, 'a3.mongodb.test', ca.certPem)).rejects.toThrow();

    const sClient = startProcess('openssl', [
      's_client',
      '-connect',
      `127.0.0.1:${stack.ports.tlsSni}`,
      '-servername',
      'a2.mongodb.test',
      '-CAfile',
      ca.certFile,
      '-verify_hostname',
      'a2.mongodb.test',
      '-verify_return_error',
      '-ign_eof',
    ]);
    cleanups.push(() => sClient.stop());
    await waitFor('openssl s_client to get the greeting', () => sClient.output().includes('hello from a2'));
    expect(sClient.output()).toMatch(/Verify return code: 0 \(ok\)/);
    expect(sClient.output()).toContain('CN = a2.mongodb.test');

    // A real database client: redis-server with TLS behind the SNI port, redis-cli --tls --sni.
    const redisPort = await freePort('127.0.0.3');
    const redisTls = await ca.issue(['cache.mongodb.test']);
    const certFile = join(ca.dir, 'redis.crt');
    const keyFile = join(ca.dir, 'redis.key');
    await writeFile(certFile, redisTls.cert);
    await writeFile(keyFile, redisTls.key);
    const redis: RunningProcess = startProcess('redis-server', [
      '--port',
      '0',
      '--bind',
      '127.0.0.3',
      '--tls-port',
      String(redisPort),
      '--tls-cert-file',
      certFile,
      '--tls-key-file',
      keyFile,
      '--tls-ca-cert-file',
      ca.certFile,
      '--tls-auth-clients',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      ca.dir,
    ]);
    cleanups.push(() => redis.stop());
    source.upsert(sniRoute('cache', 'test', { host: '127.0.0.3', port: redisPort, close: async () => {} }));
    await pass(reconciler);
    const cli = (servername: string) =>
      run(
        'redis-cli',
        [
          '-h',
          '127.0.0.1',
          '-p',
          String(stack.ports.tlsSni),
          '--tls',
          '--sni',
          servername,
          '--cacert',
          ca.certFile,
          'PING',
        ],
        { timeout: 10_000 },
      );
    const pong = await waitFor('redis to answer through HAProxy', async () => {
      const { stdout: answer } = await cli('cache.mongodb.test').catch(() => ({ stdout: '' }));
      return answer.trim() === 'PONG' && answer.trim();
    });
    expect(pong).toBe('PONG');
    // Another agent's name reaches that agent, whose certificate does not name the cache: refused.
    const { stdout: refused } = await cli('a1.mongodb.test').catch(
      (error: { stdout?: string; stderr?: string }) => ({
        stdout: `${error.stdout ?? ''}${error.stderr ?? ''}`,
      }),
    );
    expect(refused).not.toContain('PONG');
    expect(await reloadState(stack)).toEqual(steady);
  });
});
