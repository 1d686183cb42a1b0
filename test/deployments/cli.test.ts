import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../harness/apps.js';
import { makeTempDir, waitFor } from '../harness/processes.js';
import type { AgentsStack } from '../harness/stack.js';
import { AgentProtocol, rawEventLog, REPOS, startDeploymentsStack } from './helpers.js';

/**
 * The built CLI over the HTTP API, as an admin runs it: apps created (a secret from stdin that no output
 * shows), listed and shown; deployments requested, listed, shown and cancelled; a refusal names the
 * field and its option; `--wait` prints where a deployment stands and exits non-zero when it ends
 * otherwise than succeeded (here: nobody claims it before the timeout).
 */
let stack: AgentsStack;
let token: string;
let temporary: { path: string; remove(): Promise<void> };
let tokenFile: string;
let agent: AgentProtocol;
let closeAgent: () => Promise<void>;

const SECRET = 'postgres://app:cli-s3cret-9f2k@db/app';

beforeAll(async () => {
  stack = await startDeploymentsStack();
  token = stack.adminToken('cli-admin');
  const alpha = await stack.enroll('alpha', {}, '198.51.100.40');
  const connection = await stack.connectAsAgent(alpha);
  agent = new AgentProtocol('alpha', connection);
  closeAgent = () => connection.close();
  temporary = await makeTempDir('cli-deployments');
  tokenFile = join(temporary.path, 'admin.token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
});
afterAll(async () => {
  await closeAgent?.().catch(() => undefined);
  await stack?.stop();
  await temporary?.remove();
});

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node dist/apps/cli/src/main.js …` with the API's URL and (unless told otherwise) the token in env. */
function cli(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist/apps/cli/src/main.js'), ...args], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        CL_API_URL: stack.baseUrl,
        CL_ADMIN_TOKEN: token,
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

const json = <T = Record<string, unknown>>(ran: Ran): T => {
  if (ran.code !== 0) throw new Error(`cli failed (${ran.code}): ${ran.stderr}${ran.stdout}`);
  return JSON.parse(ran.stdout) as T;
};

describe('apps', () => {
  test('create: the secret from stdin goes in, and no output shows it', async () => {
    const created = await cli(
      [
        'apps',
        'create',
        'web',
        '--agent',
        'alpha',
        '--git',
        `file://${REPOS}/web`,
        '--ref',
        'main',
        '--env',
        'MODE=production',
        '--secret',
        'DATABASE_URL',
        '--health-path',
        '/healthz',
        '--keep',
        '2',
        '--token-file',
        tokenFile,
      ],
      { stdin: `${SECRET}\n`, env: { CL_ADMIN_TOKEN: '' } },
    );
    expect([created.code, created.stderr]).toEqual([0, '']);
    expect(created.stdout).toContain('app web');
    expect(created.stdout).toContain('web.apps.deploy.test');
    expect(created.stdout).toContain('DATABASE_URL v1');
    expect(created.stdout + created.stderr).not.toContain('cli-s3cret-9f2k');
    const shown = json<{ config: { healthCheck: { path: string }; releasesKept: number } }>(
      await cli(['apps', 'show', 'web', '--json']),
    );
    expect([shown.config.healthCheck.path, shown.config.releasesKept]).toEqual(['/healthz', 2]);
    expect(JSON.stringify(shown)).not.toContain('cli-s3cret-9f2k');
    expect(await rawEventLog(stack)).not.toContain('cli-s3cret-9f2k');
  });

  test('list and show, for people and for machines', async () => {
    await waitFor('the app in the list', async () => {
      const listed = json<{ apps: { appName: string }[] }>(
        await cli(['apps', 'list', '--agent', 'alpha', '--json']),
      );
      return listed.apps.some((app) => app.appName === 'web');
    });
    const human = await cli(['apps', 'list']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^web\s+alpha\s+web\.apps\.deploy\.test/m);
    const shown = await cli(['apps', 'show', 'web']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('MODE');
    expect(shown.stdout).toContain(`file://${REPOS}/web @ main`);
    expect(shown.stdout).not.toContain('cli-s3cret-9f2k');
  });

  test('secrets set (value from stdin) and rm', async () => {
    const set = await cli(['apps', 'secrets', 'set', 'web', 'API_KEY', '--json'], {
      stdin: 'api-key-value-0001\n',
    });
    expect(json(set)).toMatchObject({ name: 'API_KEY', version: 1 });
    expect(set.stdout).not.toContain('api-key-value-0001');
    const removed = await cli(['apps', 'secrets', 'rm', 'web', 'API_KEY']);
    expect([removed.code, removed.stdout.trim()]).toEqual([0, 'secret API_KEY of web removed']);
  });

  test('a bad git URL: a non-zero exit naming the field and its option, nothing appended', async () => {
    const before = await stack.lastEventSequence();
    const refused = await cli([
      'apps',
      'create',
      'bad',
      '--agent',
      'alpha',
      '--git',
      'http://example.com/r.git',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('field source.url, --git');
    expect(refused.stdout).toBe('');
    expect(await stack.lastEventSequence()).toBe(before);
  });

  test('a missing token is a usage error, before anything is sent', async () => {
    const refused = await cli(['apps', 'list'], { env: { CL_ADMIN_TOKEN: '' } });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('CL_ADMIN_TOKEN');
  });
});

describe('deployments', () => {
  let deploymentId: string;

  test('create without --wait: accepted, waiting for a claim', async () => {
    const created = json<{ deploymentId: string; status: string; number: number }>(
      await cli(['deployments', 'create', 'web', '--json']),
    );
    expect([created.status, created.number]).toEqual(['requested', 1]);
    deploymentId = created.deploymentId;
  });

  test('list and show', async () => {
    await waitFor('the deployment in the list', async () => {
      const listed = json<{ deployments: { deploymentId: string }[] }>(
        await cli(['deployments', 'list', 'web', '--json']),
      );
      return listed.deployments.some((deployment) => deployment.deploymentId === deploymentId);
    });
    const human = await cli(['deployments', 'list', 'web']);
    expect(human.stdout).toMatch(new RegExp(`^${deploymentId} #1 +deploy +requested`, 'm'));
    const shown = await cli(['deployments', 'show', deploymentId]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`deployment ${deploymentId}`);
    expect(shown.stdout).toMatch(/status +requested \(deadline /);
    expect(shown.stdout).toMatch(/… claimed +current/);
  });

  test('cancel: cancelled before its claim', async () => {
    const cancelled = json<{ status: string }>(
      await cli(['deployments', 'cancel', deploymentId, '--reason', 'changed my mind', '--json']),
    );
    expect(cancelled.status).toBe('cancelled');
    const again = await cli(['deployments', 'cancel', deploymentId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: .*\[409 /m);
  });

  test('create --wait with a short timeout prints where it stands and exits non-zero', async () => {
    const waited = await cli(['deployments', 'create', 'web', '--wait', '--timeout', '1.5']);
    expect(waited.code).toBe(1);
    expect(waited.stdout).toMatch(/^deployment [0-9a-f-]{36} of web$/m);
    expect(waited.stdout).toMatch(/✓ requested/);
    expect(waited.stdout).toMatch(/^still requested, working towards claimed \(deadline /m);
    // One Idempotency-Key for the run: its rounds of ?wait= named one deployment, not several.
    const listed = json<{ deployments: { number: number }[] }>(
      await cli(['deployments', 'list', 'web', '--json']),
    );
    expect(listed.deployments.filter((deployment) => deployment.number === 2)).toHaveLength(1);
    expect(Math.max(...listed.deployments.map((deployment) => deployment.number))).toBe(2);
  });

  test('create --wait: a deployment that fails is exit code 1 with its phase, reason and last lines', async () => {
    const created = await stack.request('POST', 'apps', {
      token,
      body: { name: 'api', agentId: 'alpha', source: { type: 'git', url: `file://${REPOS}/api` } },
    });
    expect(created.status).toBe(201);
    const waiting = cli(['deployments', 'create', 'api', '--wait', '--timeout', '60']);
    let requested = '';
    await waitFor('the deployment the CLI asked for', async () => {
      const listed = await stack.request('GET', 'apps/api/deployments', { token });
      const found = (listed.body.deployments as { deploymentId: string }[] | undefined)?.[0];
      requested = found?.deploymentId ?? '';
      return requested !== '';
    });
    const claimed = await agent.claim(requested);
    await agent.report(requested, claimed.leaseId, {
      phase: 'failed',
      failedPhase: 'fetched',
      reason: 'git fetch exited with code 128',
      exitCode: 128,
      signal: null,
      lastLines: ['fatal: repository not found'],
      reverted: false,
    });
    const waited = await waiting;
    expect(waited.code).toBe(1);
    expect(waited.stdout).toMatch(/✓ claimed/);
    expect(waited.stdout).toMatch(/^deployment failed$/m);
    expect(waited.stdout).toContain('failed at fetched: git fetch exited with code 128 (exit code 128)');
    expect(waited.stdout).toMatch(/last lines:\n {4}fatal: repository not found/);
  });
});
