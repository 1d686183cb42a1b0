import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { agentLogSubject } from '#contracts';
import { createApiApp } from '../../apps/api/src/api.module.js';
import { apiConfigSchema } from '../../apps/api/src/config.js';
import { repoRoot } from '../harness/apps.js';
import { makeTempDir, waitFor } from '../harness/processes.js';
import type { AgentsStack } from '../harness/stack.js';
import { AgentProtocol, rawEventLog, REPOS, startDeploymentsStack } from './helpers.js';

/**
 * The built CLI over the HTTP API, as an admin runs it: apps created (a secret from stdin that no output
 * shows), listed and shown; deployments requested, listed, shown and cancelled; a refusal names the
 * field and its option; `--wait` prints where a deployment stands and exits non-zero when it ends
 * otherwise than succeeded (here: nobody claims it before the timeout); logs printed, followed as they
 * come until the deployment's end, and a follow ended by Ctrl-C.
 */
let stack: AgentsStack;
let token: string;
let temporary: { path: string; remove(): Promise<void> };
let tokenFile: string;
let agent: AgentProtocol;
let agentNats: NatsConnection;

const SECRET = 'postgres://app:cli-s3cret-9f2k@db/app';

beforeAll(async () => {
  stack = await startDeploymentsStack();
  token = stack.adminToken('cli-admin');
  const alpha = await stack.enroll('alpha', {}, '198.51.100.40');
  agentNats = await stack.connectAsAgent(alpha);
  agent = new AgentProtocol('alpha', agentNats);
  temporary = await makeTempDir('cli-deployments');
  tokenFile = join(temporary.path, 'admin.token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
});
afterAll(async () => {
  await agentNats?.close().catch(() => undefined);
  await stack?.stop();
  await temporary?.remove();
});

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running CLI: its output so far, and its end. */
interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  done: Promise<Ran>;
}

/** `node dist/apps/cli/src/main.js …` with the API's URL and (unless told otherwise) the token in env. */
function start(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Running {
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
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Ran>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  child.stdin!.end(options.stdin ?? '');
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

function cli(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  return start(args, options).done;
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

describe('logs', () => {
  let deploymentId: string;
  let batchSeq = 0;

  /** Publishes one batch as the agent, and waits until the relay stored it. */
  async function publish(id: string, lines: string[]): Promise<void> {
    const stored = async () => {
      const reply = await stack.request('GET', `deployments/${id}/logs?tail=5000`, { token });
      return (reply.body.lines as unknown[]).length;
    };
    const before = await stored();
    agentNats.publish(
      agentLogSubject('alpha', id),
      JSON.stringify({
        boot: 'b1',
        seq: batchSeq++,
        lines: lines.map((x) => ({ t: new Date().toISOString(), s: 'out', x })),
      }),
    );
    await agentNats.flush();
    await waitFor('the batch to be stored', async () => (await stored()) >= before + lines.length);
  }

  /**
   * A deployment of `logged` (an app of alpha's), claimed by alpha, its lease renewed (the tests' leases
   * last 2 s) until it is reported failed.
   */
  async function claimedDeployment(): Promise<{ deploymentId: string; fail: () => Promise<void> }> {
    const requested = await stack.request('POST', 'apps/logged/deployments', { token, body: {} });
    expect(requested.status).toBe(202);
    const id = requested.body.deploymentId as string;
    const { leaseId } = await agent.claim(id);
    const renewal = setInterval(() => void agent.renew(id, leaseId).catch(() => undefined), 500);
    const fail = async () => {
      clearInterval(renewal);
      await agent.report(id, leaseId, {
        phase: 'failed',
        failedPhase: 'fetched',
        reason: 'git fetch failed',
        exitCode: 128,
        signal: null,
        lastLines: [],
        reverted: false,
      });
    };
    return { deploymentId: id, fail };
  }

  beforeAll(async () => {
    const created = await stack.request('POST', 'apps', {
      token,
      body: { name: 'logged', agentId: 'alpha', source: { type: 'git', url: `file://${REPOS}/logged` } },
    });
    expect(created.status).toBe(201);
    const stored = await claimedDeployment();
    deploymentId = stored.deploymentId;
    await publish(deploymentId, ['one', 'two']);
    // Tabs and a bidirectional override pass the relay (it strips control characters): the CLI does not print them.
    await publish(deploymentId, ['three\tcolumns \u202eevil']);
    await stored.fail();
  });

  test('--tail: the last lines as `<time> <stream> <text>`, cleaned; --json: one JSON line each', async () => {
    const tailed = await cli(['deployments', 'logs', deploymentId, '--tail', '2']);
    expect([tailed.code, tailed.stderr]).toEqual([0, '']);
    const lines = tailed.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+ out {3}two$/);
    expect(lines[1]).toMatch(/ out {3}three columns evil$/);

    const machine = await cli(['deployments', 'logs', deploymentId, '--json']);
    expect(machine.code).toBe(0);
    const parsed = machine.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { seq: number; t: string; s: string; x: string });
    expect(parsed.map((line) => line.x)).toEqual(['one', 'two', 'three\tcolumns \u202eevil']);
    expect(parsed.every((line) => line.s === 'out' && line.seq > 0)).toBe(true);
  });

  test('a bad --tail is refused: a whole number by the CLI, the bound by the API (naming --tail)', async () => {
    const word = await cli(['deployments', 'logs', deploymentId, '--tail', 'ten']);
    expect(word.code).toBe(2);
    expect(word.stderr).toContain('--tail: must be a whole number');
    const many = await cli(['deployments', 'logs', deploymentId, '--tail', '6000']);
    expect(many.code).toBe(1);
    expect(many.stderr).toContain('(field tail, --tail) [400 invalid]');
    const none = await cli(['apps', 'logs', 'logged']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^error: app logged serves no release yet.*\[404 not_found\]$/m);
  });

  test('-f prints lines as they come, and exits 0 at the end of the deployment', async () => {
    const running = await claimedDeployment();
    await publish(running.deploymentId, ['before', 'built']);
    const following = start(['deployments', 'logs', running.deploymentId, '-f', '--tail', '1']);
    await waitFor('the tail', async () => following.stdout().includes(' out   built'));
    await publish(running.deploymentId, ['live']);
    await waitFor('the live line', async () => following.stdout().includes(' out   live'));
    expect(following.child.exitCode).toBeNull();

    await running.fail();
    // The stream ends at its next heartbeat (15 s) once the deployment finished.
    const ran = await following.done;
    expect(ran.code).toBe(0);
    expect(
      ran.stdout
        .trimEnd()
        .split('\n')
        .map((line) => line.replace(/^\S+ out {3}/, '')),
    ).toEqual(['built', 'live']);
    expect(ran.stderr).toBe(`end of the output of deployment ${running.deploymentId} (failed)\n`);
  }, 45_000);

  test('-f resumes after a dropped connection (the API restarted) without repeating or missing a line', async () => {
    const running = await claimedDeployment();
    const following = start(['deployments', 'logs', running.deploymentId, '-f', '--json']);
    await publish(running.deploymentId, ['before']);
    await waitFor('the first line', async () => following.stdout().includes('"x":"before"'));

    // The API stops (its streams closed without `end`); a line comes meanwhile; then it is back.
    await stack.api!.close();
    agentNats.publish(
      agentLogSubject('alpha', running.deploymentId),
      JSON.stringify({
        boot: 'b1',
        seq: batchSeq++,
        lines: [{ t: new Date().toISOString(), s: 'out', x: 'during' }],
      }),
    );
    await agentNats.flush();
    stack.api = await createApiApp(apiConfigSchema.parse(stack.envOf('api')), stack.logger);
    await stack.api.listen(Number(new URL(stack.baseUrl).port), '127.0.0.1');
    await publish(running.deploymentId, ['after']);
    await waitFor('the line after', async () => following.stdout().includes('"x":"after"'));

    following.child.kill('SIGINT');
    const ran = await following.done;
    await running.fail();
    expect(ran.code).toBe(0);
    const seen = ran.stdout
      .trimEnd()
      .split('\n')
      .map((line) => (JSON.parse(line) as { x: string }).x);
    expect(seen).toEqual(['before', 'during', 'after']);
  }, 45_000);

  test('Ctrl-C ends a follow cleanly', async () => {
    const running = await claimedDeployment();
    const following = start(['deployments', 'logs', running.deploymentId, '--follow', '--json']);
    await publish(running.deploymentId, ['live']);
    await waitFor('the line', async () => following.stdout().includes('"x":"live"'));
    following.child.kill('SIGINT');
    const ran = await following.done;
    await running.fail();
    expect([ran.code, ran.stderr]).toEqual([0, '']);
    expect(JSON.parse(ran.stdout.trim())).toMatchObject({ s: 'out', x: 'live' });
  });
});
