import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { waitFor } from '../harness/processes.js';
import { REPOS, startDeploymentsStack } from './helpers.js';

/**
 * Apps and deployments over HTTP: bad input is a 4xx naming the field and appends nothing; an agent acts
 * on its own apps only; a deployment is accepted, listed, waited for and cancelled.
 */
let stack: AgentsStack;
let admin: string;
let alpha: EnrolledAgent;
let bravo: EnrolledAgent;

beforeAll(async () => {
  stack = await startDeploymentsStack();
  admin = stack.adminToken('alice');
  alpha = await stack.enroll('alpha', {}, '198.51.100.30');
  bravo = await stack.enroll('bravo', {}, '198.51.100.31');
});
afterAll(async () => {
  await stack?.stop();
});

const app = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  agentId: 'alpha',
  source: { type: 'git', url: `file://${REPOS}/${name}` },
  ...extra,
});

const BAD: [string, unknown, string][] = [
  ['an app name that is not a DNS label', app('Web_1'), 'name'],
  [
    'credentials in the URL',
    app('a1', { source: { type: 'git', url: 'https://u:tok@example.com/r.git' } }),
    'source.url',
  ],
  [
    'a transport git refuses to name',
    app('a2', { source: { type: 'git', url: 'ext::sh -c id' } }),
    'source.url',
  ],
  ['a file URL outside the roots', app('a3', { source: { type: 'git', url: 'file:///etc' } }), 'source.url'],
  ['plain http', app('a4', { source: { type: 'git', url: 'http://example.com/r.git' } }), 'source.url'],
  [
    'an option as a ref',
    app('a5', { source: { type: 'git', url: `file://${REPOS}/a5`, ref: '--upload-pack=x' } }),
    'source.ref',
  ],
  ['a reserved env name', app('a6', { env: [{ name: 'PATH', value: '/x' }] }), 'env[0].name'],
  ['the port variable in env', app('a7', { env: [{ name: 'PORT', value: '1' }] }), 'env[0].name'],
  [
    'a secret too short to redact',
    app('a8', { env: [{ name: 'TOKEN', value: 'zq9x', secret: true }] }),
    'env[0].value',
  ],
  ['a host name outside the apps zone', app('a9', { hostname: 'evil.example.com' }), 'hostname'],
  ['a health path that is not a path', app('b1', { healthCheck: { path: 'healthz' } }), 'healthCheck.path'],
  ['a build root leaving the source', app('b2', { build: { root: '../..' } }), 'build.root'],
  ['an unknown field', app('b3', { privileged: true }), 'privileged'],
  [
    'credentials naming no secret',
    app('b4', {
      source: {
        type: 'git',
        url: 'https://example.com/r.git',
        credentials: { secret: 'GIT_TOKEN', kind: 'https-token' },
      },
    }),
    'source.credentials.secret',
  ],
];

describe('bad input', () => {
  test.each(BAD)('%s: 400 naming the field, nothing appended', async (_name, body, field) => {
    const before = await stack.lastEventSequence();
    const response = await stack.request('POST', 'apps', { token: admin, body });
    expect([response.status, response.body.field]).toEqual([400, field]);
    expect(String(response.body.message)).not.toContain('zq9x');
    expect(await stack.lastEventSequence()).toBe(before);
  });

  test('an admin must name the agent; an unknown agent is 404', async () => {
    const unnamed = await stack.request('POST', 'apps', {
      token: admin,
      body: { ...app('c1'), agentId: undefined },
    });
    expect([unnamed.status, unnamed.body.field]).toEqual([400, 'agentId']);
    const unknown = await stack.request('POST', 'apps', {
      token: admin,
      body: { ...app('c2'), agentId: 'nobody' },
    });
    expect([unknown.status, unknown.body.field]).toEqual([404, 'agentId']);
  });
});

describe('apps and deployments', () => {
  test('an agent creates an app for itself, not for another agent, and sees only its own', async () => {
    const own = await stack.request('POST', 'apps', {
      token: alpha.accessToken,
      body: { name: 'alpha-web', source: { type: 'git', url: `file://${REPOS}/alpha-web` } },
    });
    expect([own.status, own.body.agentId, own.body.hostname]).toEqual([
      201,
      'alpha',
      'alpha-web.apps.deploy.test',
    ]);
    const foreign = await stack.request('POST', 'apps', {
      token: bravo.accessToken,
      body: app('bravo-steals'),
    });
    expect(foreign.status).toBe(403);
    const taken = await stack.request('POST', 'apps', { token: admin, body: app('alpha-web') });
    expect([taken.status, taken.body.field]).toEqual([409, 'name']);
    const peek = await stack.request('GET', 'apps/alpha-web', { token: bravo.accessToken });
    const missing = await stack.request('GET', 'apps/no-such-app', { token: bravo.accessToken });
    expect([peek.status, missing.status]).toEqual([403, 403]);
    const deploy = await stack.request('POST', 'apps/alpha-web/deployments', {
      token: bravo.accessToken,
      body: {},
    });
    expect(deploy.status).toBe(403);
  });

  test('a deployment is accepted (202, Location), listed, waited for, and cancelled before its claim', async () => {
    const accepted = await stack.request('POST', 'apps/alpha-web/deployments?wait=succeeded&timeout=500', {
      token: admin,
      body: { ref: 'main' },
    });
    // Nobody claims it in half a second: 202 with where it stands.
    expect(accepted.status).toBe(202);
    expect(accepted.headers.location).toBe(`/api/v1/deployments/${String(accepted.body.deploymentId)}`);
    expect(accepted.body).toMatchObject({ status: 'requested', number: 1, appName: 'alpha-web' });
    const listed = await stack.request('GET', 'apps/alpha-web/deployments', { token: alpha.accessToken });
    expect(listed.status).toBe(200);
    expect((listed.body.deployments as { deploymentId: string }[]).map((d) => d.deploymentId)).toContain(
      accepted.body.deploymentId,
    );
    const cancelled = await stack.request(
      'POST',
      `deployments/${String(accepted.body.deploymentId)}/cancel`,
      {
        token: admin,
        body: { reason: 'changed my mind' },
      },
    );
    expect([cancelled.status, cancelled.body.status]).toEqual([202, 'cancelled']);
    const again = await stack.request('POST', `deployments/${String(accepted.body.deploymentId)}/cancel`, {
      token: admin,
      body: {},
    });
    expect(again.status).toBe(409);
  });

  test('a rollback with nothing kept is a 409 naming the release', async () => {
    const response = await stack.request('POST', 'apps/alpha-web/rollback', { token: admin, body: {} });
    expect([response.status, response.body.field]).toEqual([409, 'release']);
  });

  test('secrets: set by name with a version, never shown; too short refused', async () => {
    const set = await stack.request('PUT', 'apps/alpha-web/secrets/DATABASE_URL', {
      token: admin,
      body: { value: 'postgres://app:pw-123456@db/app' },
    });
    expect([set.status, set.body.name, set.body.version]).toEqual([200, 'DATABASE_URL', 1]);
    const again = await stack.request('PUT', 'apps/alpha-web/secrets/DATABASE_URL', {
      token: admin,
      body: { value: 'postgres://app:pw-654321@db/app' },
    });
    expect(again.body.version).toBe(2);
    const short = await stack.request('PUT', 'apps/alpha-web/secrets/DATABASE_URL', {
      token: admin,
      body: { value: 'pw' },
    });
    expect([short.status, short.body.field]).toEqual([400, 'value']);
    let shown = await stack.request('GET', 'apps/alpha-web', { token: admin });
    await waitFor('the projection to show version 2', async () => {
      shown = await stack.request('GET', 'apps/alpha-web', { token: admin });
      return (shown.body.secrets as { version: number }[])[0]?.version === 2;
    });
    expect(JSON.stringify(shown.body)).not.toContain('pw-654321');
    expect(shown.body.secrets).toEqual([expect.objectContaining({ name: 'DATABASE_URL', version: 2 })]);
  });
});
