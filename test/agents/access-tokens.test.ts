import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import jwt from 'jsonwebtoken';
import { repoRoot } from '../harness/apps.js';
import { makeTempDir, waitFor } from '../harness/processes.js';
import { AgentsStack, type EnrolledAgent } from '../harness/stack.js';

const run = promisify(execFile);
let stack: AgentsStack;
let admin: string;
let a: EnrolledAgent;
let b: EnrolledAgent;

beforeAll(async () => {
  stack = await AgentsStack.start({ projectorCommands: true });
  admin = stack.adminToken();
  a = await stack.enroll('tok-a');
  b = await stack.enroll('tok-b');
  await stack.waitForAgentStatus('tok-b', 'enrolled');
});
afterAll(async () => {
  await stack?.stop();
});

const get = (path: string, token?: string) => stack.request('GET', path, { token });

test('an agent reads itself, and gets 403 on another agent (which appends nothing on DELETE)', async () => {
  expect(await get('agents/tok-a', a.accessToken)).toMatchObject({
    status: 200,
    body: { agentId: 'tok-a', status: 'enrolled' },
  });
  expect(await get('agents/tok-b', a.accessToken)).toMatchObject({
    status: 403,
    body: { error: 'forbidden' },
  });
  expect((await get('agents/does-not-exist', a.accessToken)).status).toBe(403);
  expect((await get('agents', a.accessToken)).status).toBe(403);
  expect((await stack.request('POST', 'enrollment-tokens', { token: a.accessToken, body: {} })).status).toBe(
    403,
  );
  const before = await stack.lastEventSequence();
  expect((await stack.request('DELETE', 'agents/tok-b', { token: a.accessToken })).status).toBe(403);
  expect(await stack.lastEventSequence()).toBe(before);
});

test('an admin lists and reads every agent', async () => {
  const list = await get('agents', admin);
  expect(list.status).toBe(200);
  expect((list.body.agents as { agentId: string }[]).map((agent) => agent.agentId)).toEqual([
    'tok-a',
    'tok-b',
  ]);
  expect(await get('agents/tok-b', admin)).toMatchObject({
    status: 200,
    body: { agentId: 'tok-b', publicAddress: b.address },
  });
  expect((await get('agents/nope', admin)).status).toBe(404);
  expect(await get('agents/Not_Valid', admin)).toMatchObject({ status: 400, body: { field: 'id' } });
});

describe('tokens that must not open the API: 401', () => {
  const privateKey = () => readFileSync(stack.installation.layout.jwtPrivateKey, 'utf8');
  const publicKey = () => readFileSync(stack.installation.layout.jwtPublicKey, 'utf8');
  // B's real session: whether these open the API is decided by the signature and claims alone.
  const claims = () => ({
    kind: 'agent',
    agentId: 'tok-b',
    fam: (jwt.decode(b.accessToken) as { fam: string }).fam,
  });
  const options = {
    issuer: 'cloudlunacy',
    audience: 'cloudlunacy-api',
    subject: 'agent:tok-b',
    jwtid: 'x',
  } as const;

  const cases: [string, () => string][] = [
    ['no token', () => ''],
    ['garbage', () => 'not-a-jwt'],
    [
      'expired',
      () =>
        jwt.sign({ ...claims(), exp: Math.floor(Date.now() / 1000) - 60 }, privateKey(), {
          ...options,
          algorithm: 'ES256',
        }),
    ],
    [
      'forged (payload changed, signature kept)',
      () => {
        const [header, , signature] = a.accessToken.split('.');
        const payload = { ...(jwt.decode(a.accessToken) as object), ...claims(), sub: 'agent:tok-b' };
        return `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`;
      },
    ],
    [
      'alg none',
      () => {
        const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
        const payload = Buffer.from(
          JSON.stringify({
            ...claims(),
            sub: 'agent:tok-b',
            iss: 'cloudlunacy',
            aud: 'cloudlunacy-api',
            jti: 'x',
            iat: 1,
            exp: 4_000_000_000,
          }),
        ).toString('base64url');
        return `${header}.${payload}.`;
      },
    ],
    [
      'signed with another key',
      () => {
        const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
        return jwt.sign(claims(), other, { ...options, algorithm: 'ES256', expiresIn: 600 });
      },
    ],
    [
      'HS256 with the public key as the secret',
      () => jwt.sign(claims(), publicKey(), { ...options, algorithm: 'HS256', expiresIn: 600 }),
    ],
    [
      'an admin token of another installation',
      () => {
        const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
        return jwt.sign({ kind: 'admin', name: 'mallory' }, other, {
          ...options,
          subject: 'admin:mallory',
          jwtid: '00000000-0000-4000-8000-000000000000',
          algorithm: 'ES256',
          expiresIn: 600,
        });
      },
    ],
    [
      'wrong audience',
      () =>
        jwt.sign(claims(), privateKey(), {
          ...options,
          audience: 'other',
          algorithm: 'ES256',
          expiresIn: 600,
        }),
    ],
  ];

  test.each(cases)('%s', async (_name, token) => {
    const value = token();
    const response = await stack.request('GET', 'agents/tok-b', value ? { token: value } : {});
    expect(response).toMatchObject({ status: 401, body: { error: 'unauthorized' } });
  });

  test('the control: the same claims signed properly are accepted', async () => {
    const token = jwt.sign(claims(), privateKey(), { ...options, algorithm: 'ES256', expiresIn: 600 });
    expect((await stack.request('GET', 'agents/tok-b', { token })).status).toBe(200);
  });
});

describe('the CLI (built, as an admin runs it)', () => {
  const cli = (args: string[]) =>
    run(process.execPath, [join(repoRoot, 'dist/apps/cli/src/main.js'), ...args], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', ...stack.env },
    });

  test('init makes every secret once, 0600, and never overwrites', async () => {
    const temporary = await makeTempDir('init');
    try {
      const dir = join(temporary.path, 'secrets');
      const first = JSON.parse((await cli(['init', '--secrets', dir])).stdout);
      expect(first.generated).toEqual(first.generators);
      const key = readFileSync(join(dir, 'auth/jwt-signing-key.pem'), 'utf8');
      for (const file of [
        'auth/jwt-signing-key.pem',
        'nats/operator.nk',
        'nats/account-signing.nk',
        'nats/installation-admin.creds',
        'nats/registration.creds',
        'nats/cli-read.creds',
        'nats/auth.conf',
      ]) {
        expect(statSync(join(dir, file)).mode & 0o777).toBe(0o600);
      }
      const second = JSON.parse((await cli(['init', '--secrets', dir])).stdout);
      expect(second.generated).toEqual([]);
      expect(readFileSync(join(dir, 'auth/jwt-signing-key.pem'), 'utf8')).toBe(key);
    } finally {
      await temporary.remove();
    }
  });

  test('admin token create prints a token that works, is recorded with its admin, and revoke ends it', async () => {
    const created = await cli(['admin', 'token', 'create', '--name', 'carol', '--ttl', '600']);
    const token = created.stdout.trim();
    const { tokenId } = JSON.parse(created.stderr.trim().split('\n').pop()!);
    const issued = await stack.request('POST', 'enrollment-tokens', { token, body: {} });
    expect(issued.status).toBe(201);
    const actors = await waitFor('the projector', async () => {
      const rows = await stack.db.dataSource.query(
        `SELECT type, actor_kind, actor_id FROM event_log WHERE type IN ('AdminTokenIssued', 'EnrollmentTokenIssued') AND actor_id = 'carol' ORDER BY sequence`,
      );
      return rows.length === 2 ? rows : undefined;
    });
    expect(actors).toEqual([
      { type: 'AdminTokenIssued', actor_kind: 'admin', actor_id: 'carol' },
      { type: 'EnrollmentTokenIssued', actor_kind: 'admin', actor_id: 'carol' },
    ]);
    const revoked = JSON.parse((await cli(['admin', 'token', 'revoke', '--id', tokenId])).stdout);
    expect(revoked).toEqual({ tokenId, outcome: 'revoked', visibleToApi: true });
    expect((await stack.request('GET', 'agents', { token })).status).toBe(401);
  });

  test('a read command prints only its output on stdout (as cli-read), so it pipes into jq', async () => {
    const status = await cli(['projections', 'status']);
    expect(() => JSON.parse(status.stdout)).not.toThrow();
    expect(status.stdout).not.toMatch(/NatsStatus|"level"/);
  });

  test('admin token create refuses a bad name', async () => {
    await expect(cli(['admin', 'token', 'create', '--name', 'Bad Name'])).rejects.toMatchObject({ code: 2 });
  });
});
