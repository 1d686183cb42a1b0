/**
 * A managed Redis for real (issue 17): an admin creates a database on an agent and deploys it through the
 * API; the agent runs Debian's redis-server as the database's own uid, TLS only with the certificate it
 * holds from the CloudLunacy CA, passwords always on, bound to the VPS's address, its data in a directory
 * of its own; the agent routes its SNI name. Clients reach it through HAProxy by SNI with the password the
 * admin fetched live from the agent; without it, or by another name, they do not. Its data survives a
 * redeploy, a rotated password replaces the old one, and a renewed certificate is loaded in place.
 */
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import type { DatabaseCredentialsView } from '#contracts';
import { DOMAIN } from '../e2e/stack.js';
import { waitFor } from '../harness/processes.js';
import { repoRoot } from '../harness/apps.js';
import {
  deployAndWait,
  deploymentLogs,
  isRoot,
  procStatusUid,
  startDeploymentRig,
  type DeploymentRig,
} from './agent-e2e.js';

const run = promisify(execFile);
if (!isRoot) console.log('database.test: skipped, the agent isolates databases by uid and needs root');
const describeRoot = isRoot ? describe : describe.skip;

const AGENT = 'db-a';
const ADDRESS = '127.0.0.9';
const HOSTNAME = `cache.${AGENT}.redis.${DOMAIN}`;
/** Certificates live 120 s and are renewed with 90 s left: one renewal ~30 s after each issue. */
const VALIDITY_S = 120;
const RENEW_BEFORE_S = 90;

let rig: DeploymentRig;

beforeAll(async () => {
  if (isRoot)
    rig = await startDeploymentRig(AGENT, ADDRESS, {
      uidBase: 62_800,
      portBase: 21_600,
      deployments: { backupsKept: 2 },
      stackEnv: {
        CL_PKI_CERT_VALIDITY_S: String(VALIDITY_S),
        CL_PKI_RENEW_BEFORE_S: String(RENEW_BEFORE_S),
        CL_CERTS_RENEW_CHECK_MS: '500',
        CL_CERTS_RENEW_RETRY_S: '5',
      },
    });
}, 180_000);
afterAll(async () => {
  await rig?.stop();
});

async function credentials(
  path = 'credentials',
  method: 'GET' | 'POST' = 'GET',
): Promise<DatabaseCredentialsView> {
  const response = await rig.e2e.request(method, `apps/cache/${path}`);
  if (response.status !== 200)
    throw new Error(`credentials: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body as unknown as DatabaseCredentialsView;
}

/** redis-cli through the front's SNI listener, as a client on the internet would connect. */
async function redisCli(
  args: string[],
  options: { sni?: string; password?: string } = {},
): Promise<{ code: number; out: string }> {
  const argv = [
    '--tls',
    '--sni',
    options.sni ?? HOSTNAME,
    '--cacert',
    rig.e2e.caFile,
    '-h',
    '127.0.0.1',
    '-p',
    String(rig.e2e.haproxy.ports.tlsSni),
    ...(options.password !== undefined ? ['--no-auth-warning', '-a', options.password] : []),
    ...args,
  ];
  try {
    const { stdout, stderr } = await run('redis-cli', argv, { timeout: 10_000 });
    return { code: 0, out: `${stdout}${stderr}`.trim() };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, out: `${failed.stdout ?? ''}${failed.stderr ?? ''}`.trim() };
  }
}

/** The serial of the certificate the database presents through the front by its name (verified). */
function presentedSerial(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tlsConnect({
      host: '127.0.0.1',
      port: rig.e2e.haproxy.ports.tlsSni,
      servername: HOSTNAME,
      ca: caPem,
    });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

/** The CLI as an admin would run it against this stack (`--json`). */
async function cliJson<T>(args: string[]): Promise<T> {
  const { stdout } = await run(
    process.execPath,
    [join(repoRoot, 'dist/apps/cli/src/main.js'), ...args, '--json'],
    {
      env: { PATH: process.env.PATH ?? '', CL_API_URL: rig.e2e.stack.baseUrl, CL_ADMIN_TOKEN: rig.e2e.admin },
      timeout: 130_000,
    },
  );
  return JSON.parse(stdout) as T;
}

let caPem = '';
let password = '';

describeRoot('a Redis database', () => {
  test('deployed through the API: PONG through HAProxy by SNI with the password, refused without it or by another name', async () => {
    caPem = await readFile(rig.e2e.caFile, 'utf8');
    const created = await rig.e2e.request('POST', 'apps', {
      body: { name: 'cache', agentId: AGENT, source: { type: 'database', engine: 'redis' } },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ hostname: HOSTNAME });
    const { status, view } = await deployAndWait(rig.e2e, 'apps/cache/deployments');
    if (status !== 200)
      throw new Error(
        `deployment: ${JSON.stringify(view)}\n${(await deploymentLogs(rig.e2e, view.deploymentId)).join('\n')}\nagent:\n${rig.agent.process.output().slice(-6000)}`,
      );
    expect(view.status).toBe('succeeded');

    const fetched = await credentials();
    password = fetched.password;
    expect(fetched).toMatchObject({
      hostname: HOSTNAME,
      port: rig.e2e.haproxy.ports.tlsSni,
      user: 'default',
    });
    expect(fetched.password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fetched.connectionString).toBe(
      `rediss://default:${fetched.password}@${HOSTNAME}:${rig.e2e.haproxy.ports.tlsSni}`,
    );

    expect(await redisCli(['PING'], { password })).toEqual({ code: 0, out: 'PONG' });
    const anonymous = await redisCli(['PING']);
    expect(anonymous.out).toMatch(/NOAUTH/);
    const wrong = await redisCli(['PING'], { password: 'not-the-password' });
    expect(wrong.out).toMatch(/WRONGPASS|invalid username-password/);
    // Another name has no route: HAProxy closes the connection before any TLS.
    const elsewhere = await redisCli(['PING'], { sni: `other.${AGENT}.redis.${DOMAIN}`, password });
    expect(elsewhere.out).not.toMatch(/PONG/);
    // Clients get no administration: the database cannot be pointed at other files.
    expect((await redisCli(['CONFIG', 'SET', 'dir', '/tmp'], { password })).out).toMatch(/NOPERM/);
    // Nor open connections out of the VPS, nor load crafted payloads.
    expect((await redisCli(['MIGRATE', '127.0.0.1', '1', 'k', '0', '1000'], { password })).out).toMatch(
      /NOPERM/,
    );

    // The certificate the client sees through the front carries the database's name (checked by tls).
    expect(await presentedSerial()).toMatch(/^[0-9A-F]+$/);

    // Its own uid, bound to the VPS's address only, and no password in the log.
    const { stdout } = await run('ss', ['-Hltnp']);
    const listener = stdout.split('\n').find((line) => line.includes('redis-server'));
    expect(listener).toContain(`${ADDRESS}:`);
    const pid = Number(/pid=(\d+)/.exec(listener!)![1]);
    expect(await procStatusUid(pid)).toBeGreaterThanOrEqual(62_800);
    const lines = await deploymentLogs(rig.e2e, view.deploymentId);
    expect(lines.join('\n')).not.toContain(password);
  }, 120_000);

  test('an agent without a container engine reports so, and container apps are refused for it', async () => {
    const view = await waitFor(
      'the agent to report its runtimes',
      async () => {
        const agent = (await rig.e2e.request('GET', `agents/${AGENT}`)).body as { runtimes?: string[] };
        return agent.runtimes ? agent : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    expect(view.runtimes).toEqual(['process']);
    const refused = await rig.e2e.request('POST', 'apps', {
      body: { name: 'boxed', agentId: AGENT, source: { type: 'upload' }, runtime: 'container' },
    });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({
      field: 'runtime',
      message: expect.stringContaining('no container engine'),
    });
  }, 30_000);

  test('its data survives a redeploy', async () => {
    expect((await redisCli(['SET', 'greeting', 'kept'], { password })).out).toBe('OK');
    const { status, view } = await deployAndWait(rig.e2e, 'apps/cache/deployments');
    if (status !== 200) throw new Error(`redeploy: ${JSON.stringify(view)}`);
    // Clients reconnect after the switch; the data is the same.
    const answer = await waitFor(
      'the database to answer after the redeploy',
      async () => {
        const reply = await redisCli(['GET', 'greeting'], { password });
        return reply.code === 0 && reply.out !== '' ? reply.out : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    expect(answer).toBe('kept');
  }, 120_000);

  test('a rotated password replaces the old one at once', async () => {
    const rotated = await credentials('credentials/rotate', 'POST');
    expect(rotated.password).not.toBe(password);
    expect((await redisCli(['PING'], { password })).out).toMatch(/WRONGPASS|invalid username-password/);
    expect(await redisCli(['GET', 'greeting'], { password: rotated.password })).toEqual({
      code: 0,
      out: 'kept',
    });
    // Read again, the agent gives the new one.
    expect((await credentials()).password).toBe(rotated.password);
    password = rotated.password;
  }, 60_000);

  test("backed up on its VPS with the CLI, then restored: the data is the backup's again", async () => {
    expect((await redisCli(['SET', 'greeting', 'backed-up'], { password })).out).toBe('OK');
    const backup = await cliJson<{ backupId: string; status: string; bytes: number; sha256: string }>([
      'databases',
      'backup',
      'cache',
    ]);
    expect(backup).toMatchObject({ status: 'done', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(backup.bytes).toBeGreaterThan(0);
    // The file stays on the VPS, readable by root only, out of the database's reach.
    const file = join(rig.agentDir, 'apps', 'cache', 'backups', `${backup.backupId}.rdb`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(rig.agentDir, 'apps', 'cache', 'backups'))).uid).toBe(0);
    const listed = await cliJson<{ backups: { backupId: string }[] }>(['databases', 'backups', 'cache']);
    expect(listed.backups.map((entry) => entry.backupId)).toContain(backup.backupId);

    expect((await redisCli(['SET', 'greeting', 'changed-since'], { password })).out).toBe('OK');
    const restored = await cliJson<{ backupId: string }>(['databases', 'restore', 'cache', backup.backupId]);
    expect(restored.backupId).toBe(backup.backupId);
    const answer = await waitFor(
      'the database to serve the restored data',
      async () => {
        const reply = await redisCli(['GET', 'greeting'], { password });
        return reply.code === 0 && reply.out !== '' ? reply.out : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(answer).toBe('backed-up');
    // Two more: the oldest beyond the two kept is removed, file and record.
    for (let made = 0; made < 2; made++) await cliJson(['databases', 'backup', 'cache']);
    const kept = await cliJson<{ backups: { backupId: string }[] }>(['databases', 'backups', 'cache']);
    expect(kept.backups).toHaveLength(2);
    expect(kept.backups.map((entry) => entry.backupId)).not.toContain(backup.backupId);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
    // A backup id that is not one is refused by the API before anything runs.
    const bad = await rig.e2e.request('POST', 'apps/cache/backups/..%2Fetc/restore');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ field: 'backupId' });
  }, 120_000);

  test('a renewed certificate is loaded in place: a connected client stays, new clients connect', async () => {
    const before = await presentedSerial();
    // A client that stays connected across the renewal.
    const held = tlsConnect({
      host: '127.0.0.1',
      port: rig.e2e.haproxy.ports.tlsSni,
      servername: HOSTNAME,
      ca: caPem,
    });
    await new Promise<void>((resolve, reject) => {
      held.once('secureConnect', () => resolve());
      held.once('error', reject);
    });
    const ask = (command: string) =>
      new Promise<string>((resolve) => {
        held.once('data', (data) => resolve(data.toString()));
        held.write(command);
      });
    expect(await ask(`AUTH default ${password}\r\n`)).toBe('+OK\r\n');
    const after = await waitFor(
      'the database to present a renewed certificate',
      async () => {
        const serial = await presentedSerial().catch(() => undefined);
        return serial !== undefined && serial !== before ? serial : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    expect(after).not.toBe(before);
    expect(await ask('PING\r\n')).toBe('+PONG\r\n');
    held.destroy();
    expect(await redisCli(['GET', 'greeting'], { password })).toEqual({ code: 0, out: 'backed-up' });
  }, 120_000);
});
