/**
 * Real traffic through the whole system: agents enroll through the API and ask for routes; routing
 * decides and appends; the projector fills the routes projection; proxy-sync (its own process) follows the
 * route events, reads the projection and changes HAProxy through the Data Plane API; HAProxy routes by
 * Host (HTTPS with the front certificate of the CloudLunacy CA) and by SNI (TLS passthrough to the agent,
 * which presents the certificate the CA issued to it).
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../harness/ports.js';
import { startProcess, waitFor } from '../harness/processes.js';
import { createCsr, generateRsaKeyPair } from '#pki-client';
import {
  httpAgent,
  httpsAgent,
  reloadState,
  runtimeMap,
  tlsAgent,
  tlsThrough,
  type Agent as App,
} from '../proxy-sync/helpers.js';
import { DOMAIN, E2eStack, NODE, type RealAgent } from './stack.js';

const run = promisify(execFile);

let e2e: E2eStack;
let web: RealAgent;
let db: RealAgent;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  e2e = await E2eStack.start();
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

type RouteBody = Record<string, unknown> & { routeId: string; revision: number; status: string };

/** A route requested by an agent through the API, waiting until HAProxy routes it. */
async function requestRoute(agent: RealAgent, body: Record<string, unknown>): Promise<RouteBody> {
  const created = await e2e.request('POST', 'routes?wait=active&timeout=20000', {
    token: await agent.token(),
    body,
  });
  expect(created).toMatchObject({ status: 200, body: { status: 'active', revision: 1 } });
  return created.body as RouteBody;
}

test('HTTP by Host over HTTPS verified against the CloudLunacy CA; ?wait=active answers once HAProxy routes it', async () => {
  const shop = await app(httpAgent('127.0.0.2', 'web-a'));
  const blog = await app(httpAgent('127.0.0.3', 'db-b'));
  const version = await e2e.haproxy.client().getVersion();
  const steady = await reloadState(e2e.haproxy);

  const route = await requestRoute(web, {
    kind: 'http',
    subdomain: 'shop',
    target: { host: '127.0.0.2', port: shop.port },
  });
  // 200 means HAProxy routes it now: the very next request gets through (no retry).
  expect(await e2e.https(`shop.apps.${DOMAIN}`, '/cart')).toMatchObject({
    status: 200,
    body: `web-a shop.apps.${DOMAIN} https`,
  });
  expect(route).toMatchObject({
    hostname: `shop.apps.${DOMAIN}`,
    applied: { [NODE]: { revision: 1, configVersion: version } },
    configVersion: version,
  });
  expect(route.propagationMs).toEqual(expect.any(Number));

  await requestRoute(db, { kind: 'http', subdomain: 'blog', target: { host: '127.0.0.3', port: blog.port } });
  expect((await e2e.https(`blog.apps.${DOMAIN}`)).body).toBe(`db-b blog.apps.${DOMAIN} https`);
  expect((await e2e.https(`shop.apps.${DOMAIN}`)).body).toBe(`web-a shop.apps.${DOMAIN} https`);

  // A host nobody routes: a clear 404 from HAProxy itself.
  expect(await e2e.https(`nobody.apps.${DOMAIN}`)).toMatchObject({
    status: 404,
    body: 'no route for this host',
  });

  // No route change reloaded HAProxy or wrote its configuration.
  expect(await reloadState(e2e.haproxy)).toEqual(steady);
  expect(await e2e.haproxy.client().getVersion()).toBe(version);
});

test('a target whose certificate is revoked is refused by HAProxy within seconds (the CRL reaches it)', async () => {
  const hostname = `vault.apps.${DOMAIN}`;
  const route = await e2e.stack.request('POST', 'routes', {
    token: await web.token(),
    body: {
      kind: 'http',
      subdomain: 'vault',
      target: { host: '127.0.0.2', port: await freePort() },
      options: { tlsToTarget: true },
    },
  });
  expect(route.status).toBe(202);
  // The agent's certificate for the host name, issued by the certificates service (so it can be revoked).
  const { privateKeyPem } = await generateRsaKeyPair(2048);
  const issued = await e2e.stack.request('POST', 'agents/web-a/certificates', {
    token: await web.token(),
    body: { csr: createCsr({ privateKey: privateKeyPem, names: [hostname] }) },
  });
  expect(issued.status).toBe(201);
  const certificate = issued.body.certificate as { serial: string; certificatePem: string; chainPem: string };
  const vault = await app(
    httpsAgent('127.0.0.2', 'web-a', {
      key: privateKeyPem,
      cert: certificate.certificatePem + certificate.chainPem,
    }),
  );
  await e2e.request('PATCH', `routes/${route.body.routeId as string}?wait=active&timeout=20000`, {
    body: { target: { host: '127.0.0.2', port: vault.port } },
  });
  const before = await waitFor('the TLS target through HAProxy', async () => {
    const reply = await e2e.https(hostname);
    return reply.status === 200 ? reply : undefined;
  });
  expect(before.body).toBe(`web-a over tls ${hostname}`);
  // HAProxy's servers name the CRL the certificates service published.
  expect(await readFile(e2e.haproxy.paths.config, 'utf8')).toMatch(/crl-file \S+cloudlunacy-crl\.pem/);

  const revoked = await e2e.request('POST', `certificates/${certificate.serial}/revoke`, {
    body: { reason: 'keyCompromise', detail: 'the key left the VPS' },
  });
  expect(revoked.status).toBe(200);
  const revokedAt = Date.now();
  await waitFor(
    'HAProxy to refuse the revoked target',
    async () => ((await e2e.https(hostname)).status === 503 ? true : undefined),
    { timeoutMs: 15_000, intervalMs: 200 },
  );
  expect(Date.now() - revokedAt).toBeLessThan(15_000);
  // The other routes kept answering.
  expect((await e2e.https(`shop.apps.${DOMAIN}`)).status).toBe(200);
});

test('a removed route stops answering once the node reports it dropped', async () => {
  const gone = await app(httpAgent('127.0.0.2', 'web-a'));
  const route = await requestRoute(web, {
    kind: 'http',
    subdomain: 'gone',
    target: { host: '127.0.0.2', port: gone.port },
  });
  expect((await e2e.https(`gone.apps.${DOMAIN}`)).status).toBe(200);
  const removed = await e2e.request('DELETE', `routes/${route.routeId}`, {
    token: await web.token(),
    body: { reason: 'shop closed' },
  });
  expect(removed).toMatchObject({ status: 202, body: { status: 'removed' } });
  // RouteDropped from the node empties `applied` of the removed route; HAProxy no longer routes it.
  await waitFor('the node to report the route dropped', async () => {
    const view = await e2e.request('GET', `routes/${route.routeId}`);
    return view.body.status === 'removed' && Object.keys(view.body.applied as object).length === 0;
  });
  expect(await e2e.https(`gone.apps.${DOMAIN}`)).toMatchObject({
    status: 404,
    body: 'no route for this host',
  });
  expect((await runtimeMap(e2e.haproxy, 'hosts')).some((line) => line.startsWith('gone.'))).toBe(false);
});

test("one request's trail: its correlation id is returned, and names every event it caused, each with its cause", async () => {
  const trail = await app(httpAgent('127.0.0.2', 'web-a'));
  const correlationId = `trail-${Date.now()}`;
  const created = await e2e.stack.request('POST', 'routes?wait=active&timeout=20000', {
    token: await web.token(),
    headers: { 'X-Correlation-Id': correlationId },
    body: { kind: 'http', subdomain: 'trail', target: { host: '127.0.0.2', port: trail.port } },
  });
  expect(created.status).toBe(200);
  expect(created.headers['x-correlation-id']).toBe(correlationId);
  const route = created.body as RouteBody;
  const removed = await e2e.stack.request('DELETE', `routes/${route.routeId}`, {
    token: await web.token(),
    headers: { 'X-Correlation-Id': `${correlationId}-removal` },
    body: { reason: 'trail followed' },
  });
  expect(removed.status).toBe(202);

  type Entry = { type: string; eventId: string; correlationId: string; causationId: string | null };
  const eventsOf = async (id: string) =>
    ((await e2e.request('GET', `events?correlationId=${id}&after=0`)).body.events as Entry[]) ?? [];
  // The request appended the claim and the route; proxy-sync's report of it continues the same trail,
  // naming the route's event as its cause.
  const causedByCreation = await waitFor('the report of the route in the trail', async () => {
    const events = await eventsOf(correlationId);
    return events.some((event) => event.type === 'RouteApplied') ? events : undefined;
  });
  expect(causedByCreation.map((event) => event.type)).toEqual(
    expect.arrayContaining(['HostnameClaimed', 'RouteRequested', 'RouteApplied']),
  );
  expect(causedByCreation.every((event) => event.causationId !== null)).toBe(true);
  const requested = causedByCreation.find((event) => event.type === 'RouteRequested')!;
  expect(causedByCreation.find((event) => event.type === 'RouteApplied')!.causationId).toBe(
    requested.eventId,
  );

  const removal = await waitFor('the drop report in the removal trail', async () => {
    const events = await eventsOf(`${correlationId}-removal`);
    return events.some((event) => event.type === 'RouteDropped') ? events : undefined;
  });
  expect(removal.map((event) => event.type)).toEqual(
    expect.arrayContaining(['RouteRemoved', 'HostnameReleased', 'RouteDropped']),
  );
  expect(removal.every((event) => event.causationId !== null)).toBe(true);

  // Over the whole log so far: every event names a cause.
  const all = (await e2e.request('GET', 'events?limit=500')).body.events as Entry[];
  expect(all.filter((event) => event.causationId === null).map((event) => event.type)).toEqual([]);
  // A correlation id that is not short and plain is replaced, not stored.
  const odd = await e2e.stack.request('GET', 'agents/web-a', {
    token: await web.token(),
    headers: { 'X-Correlation-Id': 'has spaces and <angle brackets>' },
  });
  expect(odd.headers['x-correlation-id']).toMatch(/^[0-9a-f-]{36}$/);
});

test('?wait=active does not answer 200 while no proxy node routes the route', async () => {
  const later = await app(httpAgent('127.0.0.2', 'web-a'));
  await e2e.stopProxySync();
  const pending = await e2e.request('POST', 'routes?wait=active&timeout=1500', {
    token: await web.token(),
    body: { kind: 'http', subdomain: 'later', target: { host: '127.0.0.2', port: later.port } },
  });
  expect(pending).toMatchObject({ status: 202, body: { status: 'pending' } });
  expect((await e2e.https(`later.apps.${DOMAIN}`)).status).toBe(404);

  await e2e.startProxySync();
  await waitFor('the route to become active', async () => {
    const view = await e2e.request('GET', `routes/${pending.body.routeId as string}`);
    return view.body.status === 'active';
  });
  expect((await e2e.https(`later.apps.${DOMAIN}`)).body).toBe(`web-a later.apps.${DOMAIN} https`);
});

test('TLS by SNI: each agent presents the certificate the CloudLunacy CA issued to it (Node, openssl, redis-cli)', async () => {
  const names = { web: `web-a.mongodb.${DOMAIN}`, db: `db-b.mongodb.${DOMAIN}` };
  const webTls = await app(tlsAgent('127.0.0.2', 'web-a', await e2e.certificateFor('web-a', [names.web])));
  const dbTls = await app(tlsAgent('127.0.0.3', 'db-b', await e2e.certificateFor('db-b', [names.db])));
  const steady = await reloadState(e2e.haproxy);
  await requestRoute(web, {
    kind: 'tls-sni',
    hostname: names.web,
    target: { host: '127.0.0.2', port: webTls.port },
  });
  await requestRoute(db, {
    kind: 'tls-sni',
    hostname: names.db,
    target: { host: '127.0.0.3', port: dbTls.port },
  });

  const port = e2e.haproxy.ports.tlsSni;
  const ca = e2e.ca.certificatePem;
  // Verified against the CA only, name checked against the servername.
  expect(await tlsThrough(port, names.web, ca)).toEqual({
    subject: names.web,
    greeting: 'hello from web-a',
    authorized: true,
  });
  expect(await tlsThrough(port, names.db, ca)).toEqual({
    subject: names.db,
    greeting: 'hello from db-b',
    authorized: true,
  });
  await expect(tlsThrough(port, `nobody.mongodb.${DOMAIN}`, ca)).rejects.toThrow();

  const sClient = startProcess('openssl', [
    's_client',
    '-connect',
    `127.0.0.1:${port}`,
    '-servername',
    names.db,
    '-CAfile',
    e2e.caFile,
    '-verify_hostname',
    names.db,
    '-verify_return_error',
    '-ign_eof',
  ]);
  cleanups.push(() => sClient.stop());
  await waitFor('openssl s_client to get the greeting', () => sClient.output().includes('hello from db-b'));
  expect(sClient.output()).toMatch(/Verify return code: 0 \(ok\)/);

  // A real database client: redis-server with TLS on the agent's address, redis-cli --tls --sni.
  const cacheName = `cache.db-b.mongodb.${DOMAIN}`;
  const pair = await e2e.certificateFor('db-b', [cacheName]);
  const certFile = join(e2e.dir.path, 'redis.crt');
  const keyFile = join(e2e.dir.path, 'redis.key');
  await writeFile(certFile, pair.cert);
  await writeFile(keyFile, pair.key, { mode: 0o600 });
  const redisPort = await freePort('127.0.0.3');
  const redis = startProcess('redis-server', [
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
    e2e.caFile,
    '--tls-auth-clients',
    'no',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    e2e.dir.path,
  ]);
  cleanups.push(() => redis.stop());
  await requestRoute(db, {
    kind: 'tls-sni',
    hostname: cacheName,
    target: { host: '127.0.0.3', port: redisPort },
  });
  const cli = (servername: string) =>
    run(
      'redis-cli',
      ['-h', '127.0.0.1', '-p', String(port), '--tls', '--sni', servername, '--cacert', e2e.caFile, 'PING'],
      { timeout: 10_000 },
    );
  const pong = await waitFor('redis to answer through HAProxy', async () => {
    const { stdout } = await cli(cacheName).catch(() => ({ stdout: '' }));
    return stdout.trim() === 'PONG' && stdout.trim();
  });
  expect(pong).toBe('PONG');
  // Another agent's name reaches that agent, not redis: no PONG.
  const other = await cli(names.web).catch((error: { stdout?: string; stderr?: string }) => ({
    stdout: `${error.stdout ?? ''}${error.stderr ?? ''}`,
  }));
  expect(other.stdout).not.toContain('PONG');
  expect(await reloadState(e2e.haproxy)).toEqual(steady);
});

test('hostile host names and targets never reach HAProxy: refused by the API, and refused by proxy-sync if they get into the projection', async () => {
  const before = await e2e.stack.lastEventSequence();
  const config = await readFile(e2e.haproxy.paths.config, 'utf8');
  const maps = { hosts: await runtimeMap(e2e.haproxy, 'hosts'), sni: await runtimeMap(e2e.haproxy, 'sni') };
  const target = { host: '127.0.0.2', port: 8080 };
  const hostile: [Record<string, unknown>, string][] = [
    [{ kind: 'http', subdomain: 'evil\nbackend x', target }, 'subdomain'],
    [{ kind: 'http', subdomain: 'a b', target }, 'subdomain'],
    [{ kind: 'http', subdomain: 'x#y', target }, 'subdomain'],
    [{ kind: 'http', subdomain: 'x|be_dyn_tcp', target }, 'subdomain'],
    [{ kind: 'http', hostname: `evil.apps.${DOMAIN}\n`, target }, 'hostname'],
    [{ kind: 'http', hostname: `a%[req.hdr(host)].apps.${DOMAIN}`, target }, 'hostname'],
    [{ kind: 'http', hostname: `ünï.apps.${DOMAIN}`, target }, 'hostname'],
    [{ kind: 'tls-sni', hostname: `web-a.mongodb.${DOMAIN} be_dyn_http|1.2.3.4|1`, target }, 'hostname'],
    [
      { kind: 'http', subdomain: 'ok1', target: { host: '127.0.0.2\nserver x 1.2.3.4:1', port: 8080 } },
      'target.host',
    ],
    [{ kind: 'http', subdomain: 'ok2', target: { host: '127.0.0.2 127.0.0.3', port: 8080 } }, 'target.host'],
    [{ kind: 'http', subdomain: 'ok3', target: { host: 'evil.example.com', port: 8080 } }, 'target.host'],
    [{ kind: 'http', subdomain: 'ok4', target: { host: '127.0.0.2', port: 0 } }, 'target.port'],
    [{ kind: 'http', subdomain: 'ok5', target: { host: '127.0.0.2', port: '80 x' } }, 'target.port'],
  ];
  for (const [body, field] of hostile) {
    for (const token of [e2e.admin, await web.token()]) {
      const answer = await e2e.request('POST', 'routes?wait=active', {
        token,
        body: token === e2e.admin ? { ...body, agentId: 'web-a' } : body,
      });
      expect({ body, status: answer.status, field: answer.body.field }).toEqual({ body, status: 400, field });
    }
  }
  expect(await e2e.stack.lastEventSequence()).toBe(before);

  // Defence in depth: a row nothing validated (a bug, a tampered database) is refused by proxy-sync.
  const evilId = '6f1d3c52-0d6b-4c1e-9d7e-0c3f4a5b6c7d';
  const [{ position }]: { position: string }[] = await e2e.stack.db.dataSource.query(
    `SELECT last_sequence AS position FROM projection_checkpoints WHERE projection = 'routes'`,
  );
  await e2e.stack.db.dataSource.query(
    `INSERT INTO routes (route_id, agent_id, kind, hostname, target_host, target_port, options, revision, status,
       applied, requested_at, updated_at, last_sequence)
     VALUES ($1, 'web-a', 'http', $2, '127.0.0.2', 8080, '{}', 1, 'pending', '{}', now(), now(), $3)`,
    [evilId, `evil.apps.${DOMAIN}\nbackend be_x\n  server x 1.2.3.4:1`, Number(position) + 1_000_000],
  );
  // Any change wakes proxy-sync, which reads the new rows: a legitimate route goes through, the other is refused.
  const fine = await app(httpAgent('127.0.0.2', 'web-a'));
  await requestRoute(web, {
    kind: 'http',
    subdomain: 'fine',
    target: { host: '127.0.0.2', port: fine.port },
  });
  const refused = await waitFor('the hostile row to be reported failed', async () => {
    const view = await e2e.request('GET', `routes/${evilId}`);
    return view.body.status === 'failed' ? view.body : undefined;
  });
  expect(refused.statusReason).toMatch(/hostname/);
  expect(await readFile(e2e.haproxy.paths.config, 'utf8')).toBe(config);
  for (const name of ['hosts', 'sni'] as const) {
    const now = await runtimeMap(e2e.haproxy, name);
    expect(now.filter((line) => !maps[name].includes(line) && !line.startsWith('fine.'))).toEqual([]);
    const file = await readFile(
      name === 'hosts' ? e2e.haproxy.paths.hostsMap : e2e.haproxy.paths.sniMap,
      'utf8',
    );
    expect(file).not.toMatch(/evil|be_x|1\.2\.3\.4/);
  }
  expect((await e2e.https(`fine.apps.${DOMAIN}`)).status).toBe(200);
  await e2e.stack.db.dataSource.query('DELETE FROM routes WHERE route_id = $1', [evilId]);
});

test('GET /proxy-nodes shows the node: its status transition and its live record', async () => {
  const version = await e2e.haproxy.client().getVersion();
  const proc = await e2e.haproxy.showProc();
  const answer = await e2e.request('GET', 'proxy-nodes');
  expect(answer.status).toBe(200);
  expect(answer.body.nodes).toEqual([
    expect.objectContaining({
      node: NODE,
      status: 'in-sync',
      changedAt: expect.any(String),
      live: expect.objectContaining({
        status: 'in-sync',
        appliedVersion: version,
        workerPid: proc.workers[0]!.pid,
        lastSyncAt: expect.any(String),
      }),
    }),
  ]);
  expect((await e2e.request('GET', 'proxy-nodes', { token: await web.token() })).status).toBe(403);
  expect((await e2e.request('GET', 'proxy-nodes', { token: '' })).status).toBe(401);
});
