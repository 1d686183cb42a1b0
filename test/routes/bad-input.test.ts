import type { NatsConnection } from '@nats-io/transport-node';
import { RouteRequestError, RouteRequests } from '../../apps/agent/src/routes.js';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { DOMAIN, enrollAll, startRoutesStack } from './helpers.js';

/**
 * Guarantee 6 for routes: malformed requests get a 4xx naming the field and append nothing. These values
 * end up in HAProxy maps, so whitespace, newlines, wildcards and anything else that could inject
 * configuration must never get through.
 */
let stack: AgentsStack;
let agent: EnrolledAgent;
let admin: string;
let routeId: string;
let nats: NatsConnection;

const ADDRESS = '198.51.100.50';
const valid = { kind: 'http', subdomain: 'app', target: { host: ADDRESS, port: 8080 } };
const APPS = `apps.${DOMAIN}`;

beforeAll(async () => {
  stack = await startRoutesStack();
  admin = stack.adminToken();
  agent = (await enrollAll(stack, [{ id: 'shop', address: ADDRESS }, { id: 'other' }])).get('shop')!;
  const created = await stack.request('POST', 'routes', { token: agent.accessToken, body: valid });
  expect(created.status).toBe(202);
  routeId = created.body.routeId as string;
  nats = await stack.connectAsAgent(agent);
});
afterAll(async () => {
  await nats?.close().catch(() => undefined);
  await stack?.stop();
});

const with_ = (change: Record<string, unknown>) => ({ ...valid, ...change });
const target = (change: Record<string, unknown>) => ({ ...valid, target: { ...valid.target, ...change } });
const without = (field: string) => Object.fromEntries(Object.entries(valid).filter(([key]) => key !== field));
const http = (hostname: unknown) => ({ kind: 'http', hostname, target: valid.target });
const sni = (hostname: unknown, extra: Record<string, unknown> = {}) => ({
  kind: 'tls-sni',
  hostname,
  target: { host: ADDRESS, port: 27017 },
  ...extra,
});

interface Case {
  name: string;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  query?: string;
  field: string;
  status?: number;
  admin?: boolean;
}

const cases: Case[] = [
  // Host names: every one of these could split a map line or match more than it says.
  { name: 'hostname with a newline', body: http(`app\n.${APPS}`), field: 'hostname' },
  {
    name: 'hostname with an injected map line',
    body: http(`app.${APPS}\nevil.${APPS} be_x`),
    field: 'hostname',
  },
  { name: 'hostname with a space', body: http(`my app.${APPS}`), field: 'hostname' },
  { name: 'hostname with a tab', body: http(`app\t.${APPS}`), field: 'hostname' },
  { name: 'hostname with a NUL', body: http(`app\u0000.${APPS}`), field: 'hostname' },
  { name: 'hostname a wildcard', body: http(`*.${APPS}`), field: 'hostname' },
  { name: 'hostname with an empty label (..)', body: http(`app..${APPS}`), field: 'hostname' },
  { name: 'hostname in upper case', body: http(`APP.${APPS}`), field: 'hostname' },
  { name: 'hostname in mixed case', body: http(`App.Apps.Routes.Test`), field: 'hostname' },
  { name: 'hostname with only the zone in upper case', body: http(`app.APPS.${DOMAIN}`), field: 'hostname' },
  {
    name: 'hostname longer than 253',
    body: http(`${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${APPS}`),
    field: 'hostname',
  },
  { name: 'hostname with a 64-character label', body: http(`${'a'.repeat(64)}.${APPS}`), field: 'hostname' },
  { name: 'hostname with a trailing dot', body: http(`app.${APPS}.`), field: 'hostname' },
  { name: 'hostname with a leading hyphen', body: http(`-app.${APPS}`), field: 'hostname' },
  { name: 'hostname in unicode', body: http(`äpp.${APPS}`), field: 'hostname' },
  { name: 'hostname with a port', body: http(`app.${APPS}:80`), field: 'hostname' },
  { name: 'hostname outside apps', body: http(`app.${DOMAIN}`), field: 'hostname' },
  { name: 'hostname two labels deep', body: http(`a.b.${APPS}`), field: 'hostname' },
  { name: 'hostname of another domain', body: http('app.apps.evil.test'), field: 'hostname' },
  { name: 'hostname with our domain inside another', body: http(`app.${APPS}.evil.test`), field: 'hostname' },
  { name: 'hostname a number', body: http(42), field: 'hostname' },
  { name: 'hostname empty', body: http(''), field: 'hostname' },
  { name: 'subdomain with a dot', body: with_({ subdomain: 'a.b' }), field: 'subdomain' },
  { name: 'subdomain in upper case', body: with_({ subdomain: 'App' }), field: 'subdomain' },
  { name: 'subdomain a wildcard', body: with_({ subdomain: '*' }), field: 'subdomain' },
  { name: 'subdomain of 64 characters', body: with_({ subdomain: 'a'.repeat(64) }), field: 'subdomain' },
  { name: 'subdomain with a newline', body: with_({ subdomain: 'app\n' }), field: 'subdomain' },
  { name: 'subdomain with a space', body: with_({ subdomain: 'my app' }), field: 'subdomain' },
  { name: 'subdomain and hostname both', body: with_({ hostname: `app.${APPS}` }), field: 'subdomain' },
  { name: 'neither subdomain nor hostname', body: without('subdomain'), field: 'subdomain' },
  { name: 'tls-sni with a subdomain', body: { ...sni(undefined), subdomain: 'shop' }, field: 'subdomain' },
  { name: 'tls-sni in an unknown zone', body: sni(`shop.postgres.${DOMAIN}`), field: 'hostname' },
  { name: 'tls-sni three labels deep', body: sni(`a.b.shop.mongodb.${DOMAIN}`), field: 'hostname' },
  {
    name: "tls-sni in another agent's namespace",
    body: sni(`other.mongodb.${DOMAIN}`),
    field: 'hostname',
    status: 403,
  },
  {
    name: 'tls-sni with TLS to the target',
    body: sni(`shop.mongodb.${DOMAIN}`, { options: { tlsToTarget: true } }),
    field: 'options.tlsToTarget',
  },
  // Ports.
  { name: 'port 0', body: target({ port: 0 }), field: 'target.port' },
  { name: 'port 65536', body: target({ port: 65536 }), field: 'target.port' },
  { name: 'port a string', body: target({ port: '8080' }), field: 'target.port' },
  { name: 'port a fraction', body: target({ port: 80.5 }), field: 'target.port' },
  { name: 'port negative', body: target({ port: -1 }), field: 'target.port' },
  { name: 'port null', body: target({ port: null }), field: 'target.port' },
  { name: 'port missing', body: { ...valid, target: { host: ADDRESS } }, field: 'target.port' },
  // Targets.
  // The address policy refuses for everyone (400) before ownership is asked (403).
  {
    name: 'target a private address the installation does not allow',
    body: target({ host: '10.0.0.5' }),
    field: 'target.host',
  },
  { name: 'target another private address', body: target({ host: '192.168.1.1' }), field: 'target.host' },
  { name: "target the front's loopback", body: target({ host: '127.0.0.1' }), field: 'target.host' },
  { name: 'target a unique-local IPv6 address', body: target({ host: 'fd00::1' }), field: 'target.host' },
  { name: 'target the metadata service', body: target({ host: '169.254.169.254' }), field: 'target.host' },
  {
    name: 'target the front through an IPv4-mapped IPv6 address',
    body: target({ host: '::ffff:127.0.0.1' }),
    field: 'target.host',
  },
  {
    name: 'target an allowed address it does not own',
    body: target({ host: '127.0.0.250' }),
    field: 'target.host',
    status: 403,
  },
  {
    name: 'target a public address it does not own',
    body: target({ host: '203.0.113.250' }),
    field: 'target.host',
    status: 403,
  },
  { name: 'target a host name', body: target({ host: 'localhost' }), field: 'target.host' },
  { name: 'target with a newline', body: target({ host: `${ADDRESS}\n` }), field: 'target.host' },
  { name: 'target with a port', body: target({ host: `${ADDRESS}:80` }), field: 'target.host' },
  { name: 'target a network', body: target({ host: '198.51.100.0/24' }), field: 'target.host' },
  { name: 'target with a zone id', body: target({ host: 'fe80::1%eth0' }), field: 'target.host' },
  { name: 'target the unspecified address', body: target({ host: '0.0.0.0' }), field: 'target.host' },
  { name: 'target broadcast', body: target({ host: '255.255.255.255' }), field: 'target.host' },
  { name: 'target overlong', body: target({ host: '1'.repeat(300) }), field: 'target.host' },
  { name: 'target missing', body: without('target'), field: 'target' },
  { name: 'target a string', body: with_({ target: `${ADDRESS}:8080` }), field: 'target' },
  { name: 'target with an extra field', body: target({ weight: 10 }), field: 'target.weight' },
  // Kind, options, extra fields, the body itself.
  { name: 'unknown kind', body: with_({ kind: 'tcp' }), field: 'kind' },
  { name: 'kind in upper case', body: with_({ kind: 'HTTP' }), field: 'kind' },
  { name: 'kind missing', body: without('kind'), field: 'kind' },
  { name: 'an extra field', body: with_({ backend: 'be_admin' }), field: 'backend' },
  { name: 'an extra option', body: with_({ options: { sticky: true } }), field: 'options.sticky' },
  {
    name: 'tlsToTarget not a boolean',
    body: with_({ options: { tlsToTarget: 'yes' } }),
    field: 'options.tlsToTarget',
  },
  { name: 'agentId of another agent', body: with_({ agentId: 'other' }), field: 'agentId', status: 403 },
  { name: 'agentId not a DNS label', body: with_({ agentId: 'Shop' }), field: 'agentId' },
  { name: 'admin without an agentId', body: valid, field: 'agentId', admin: true },
  {
    name: 'admin for an unknown agent',
    body: with_({ agentId: 'nobody' }),
    field: 'agentId',
    status: 404,
    admin: true,
  },
  { name: 'body not JSON', raw: '{"kind": "http",', field: '(body)' },
  { name: 'body an array', body: [valid], field: '(root)' },
  {
    name: 'Idempotency-Key with a space',
    body: valid,
    headers: { 'idempotency-key': 'a b' },
    field: 'Idempotency-Key',
  },
  {
    name: 'Idempotency-Key too long',
    body: valid,
    headers: { 'idempotency-key': 'k'.repeat(129) },
    field: 'Idempotency-Key',
  },
  { name: 'wait for something else', body: valid, query: '?wait=forever', field: 'wait' },
  { name: 'wait longer than a minute', body: valid, query: '?wait=active&timeout=60001', field: 'timeout' },
];

test('the table is large enough', () => {
  expect(cases.length).toBeGreaterThanOrEqual(40);
});

test.each(cases.map((entry) => [entry.name, entry] as const))(
  'POST /routes: %s → 4xx naming the field, nothing appended',
  async (_name, entry) => {
    const before = await stack.lastEventSequence();
    const response = await stack.request('POST', `routes${entry.query ?? ''}`, {
      token: entry.admin ? admin : agent.accessToken,
      body: entry.raw === undefined ? entry.body : undefined,
      rawBody: entry.raw,
      headers: entry.headers,
    });
    expect({ status: response.status, field: response.body.field }).toEqual({
      status: entry.status ?? 400,
      field: entry.field,
    });
    expect(typeof response.body.message).toBe('string');
    expect(await stack.lastEventSequence()).toBe(before);
  },
);

const changes: [name: string, path: () => string, method: string, body: unknown, field: string][] = [
  ['PATCH with nothing to change', () => `routes/${routeId}`, 'PATCH', {}, 'target'],
  [
    'PATCH to port 0',
    () => `routes/${routeId}`,
    'PATCH',
    { target: { host: ADDRESS, port: 0 } },
    'target.port',
  ],
  ['PATCH the host name', () => `routes/${routeId}`, 'PATCH', { hostname: `x.${APPS}` }, 'hostname'],
  [
    'PATCH a bad target host',
    () => `routes/${routeId}`,
    'PATCH',
    { target: { host: 'a b', port: 80 } },
    'target.host',
  ],
  ['PATCH a route id that is not a UUID', () => 'routes/..%2Fadmin', 'PATCH', { options: {} }, 'id'],
  [
    'DELETE with a reason holding a newline',
    () => `routes/${routeId}`,
    'DELETE',
    { reason: 'a\nb' },
    'reason',
  ],
  ['GET a route id that is not a UUID', () => 'routes/1%0A2', 'GET', undefined, 'id'],
  ['GET with an unknown filter', () => 'routes?owner=x', 'GET', undefined, 'owner'],
  ['GET with a bad status', () => 'routes?status=gone', 'GET', undefined, 'status'],
  ['GET with limit 0', () => 'routes?limit=0', 'GET', undefined, 'limit'],
];

test.each(changes)(
  '%s → 400 naming the field, nothing appended',
  async (_name, path, method, body, field) => {
    const before = await stack.lastEventSequence();
    const response = await stack.request(method, path(), { token: agent.accessToken, body });
    expect({ status: response.status, field: response.body.field }).toEqual({ status: 400, field });
    expect(await stack.lastEventSequence()).toBe(before);
  },
);

test('the same rules over NATS: malformed agent requests are refused naming the field, nothing appended', async () => {
  const routes = new RouteRequests(nats, 'shop');
  const before = await stack.lastEventSequence();
  const refusals: [Promise<unknown>, string][] = [
    [routes.request({ kind: 'http', subdomain: 'a\nb', target: valid.target }), 'subdomain'],
    [routes.request({ kind: 'http', subdomain: 'ok', target: { host: ADDRESS, port: 0 } }), 'target.port'],
    [routes.request({ kind: 'http', hostname: `*.${APPS}`, target: valid.target }), 'hostname'],
    [
      routes.request({ kind: 'http', subdomain: 'ok', target: { host: '10.1.1.1', port: 80 } }),
      'target.host',
    ],
    [routes.request({ ...valid, extra: 1 } as never), 'extra'],
    [routes.request(valid as never, { idempotencyKey: 'with space' }), 'Idempotency-Key'],
    [routes.update('not-a-uuid', { options: {} }), 'routeId'],
  ];
  // Settle them all at once: a refusal that arrives before its turn must not count as unhandled.
  const outcomes = await Promise.allSettled(refusals.map(([attempt]) => attempt));
  for (const [index, outcome] of outcomes.entries()) {
    expect(outcome.status).toBe('rejected');
    const error = (outcome as PromiseRejectedResult).reason as unknown;
    expect(error).toBeInstanceOf(RouteRequestError);
    expect((error as RouteRequestError).body.field).toBe(refusals[index]![1]);
  }
  const raw = async (command: string, data: string) =>
    (await nats.request(`agents.shop.out.req.routes.${command}`, data, { timeout: 5_000 })).json<{
      ok: boolean;
      error: { field: string };
    }>();
  expect(await raw('request', '{not json')).toMatchObject({ ok: false, error: { field: '(body)' } });
  expect(await raw('drop-all', '{}')).toMatchObject({
    ok: false,
    error: { error: 'not_found', field: '(subject)' },
  });
  expect(await stack.lastEventSequence()).toBe(before);
});
