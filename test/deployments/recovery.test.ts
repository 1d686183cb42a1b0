/**
 * What survives what: the agent killed in the middle of a build (the front abandons the deployment when the
 * lease runs out, the serving release keeps serving while the agent is dead, and the restarted agent kills
 * the orphaned build, adopts the serving process and deploys again), and a serving release that crashes
 * (restarted by the agent, with a line in its log saying so).
 */
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeploymentView } from '#contracts';
import { DOMAIN } from '../e2e/stack.js';
import type { TestRepo } from '../harness/git.js';
import { sleep, waitFor } from '../harness/processes.js';
import {
  bodyThroughFront,
  createApp,
  deployAndWait,
  deploymentLogs,
  helloRepo,
  isRoot,
  startDeploymentRig,
  type DeploymentRig,
} from './agent-e2e.js';

if (!isRoot) console.log('recovery.test: skipped, the agent isolates apps by uid and needs root');
const describeRoot = isRoot ? describe : describe.skip;

let rig: DeploymentRig;
let repo: TestRepo;
let v1: DeploymentView;
const hostname = `keep.apps.${DOMAIN}`;

beforeAll(async () => {
  if (!isRoot) return;
  rig = await startDeploymentRig('keep-a', '127.0.0.4', { uidBase: 62_300, portBase: 21_200 });
  repo = await helloRepo('keep', 'keep v1');
  await createApp(rig.e2e, 'keep-a', 'keep', repo, { env: [{ name: 'GREETING', value: 'plain hello' }] });
  ({ view: v1 } = await deployAndWait(rig.e2e, 'apps/keep/deployments'));
  if (v1.status !== 'succeeded') throw new Error(`v1 did not deploy: ${JSON.stringify(v1.failure)}`);
}, 240_000);
afterAll(async () => {
  await rig?.stop();
});

async function servingPid(): Promise<number> {
  return (JSON.parse((await bodyThroughFront(rig.e2e, hostname, '/env')).body) as { pid: number }).pid;
}

const view = async (id: string) =>
  (await rig.e2e.request('GET', `deployments/${id}`)).body as unknown as DeploymentView;

/** The pids of `sleep <seconds>` processes on the machine (the slow build's). */
function sleeps(seconds: number): string {
  try {
    return execFileSync('pgrep', ['-f', `^sleep ${seconds}$`])
      .toString()
      .trim();
  } catch {
    return '';
  }
}

describeRoot('the agent killed mid-deployment', () => {
  test('the deployment is abandoned, the serving release serves on, and the restarted agent recovers', async () => {
    const pid = await servingPid();
    await repo.commit(
      {
        'cloudlunacy.json': JSON.stringify({ build: ['sleep 47'], start: 'node server.js' }),
        'body.txt': 'keep v2\n',
      },
      'slow',
    );
    const accepted = await rig.e2e.request('POST', 'apps/keep/deployments', { body: {} });
    const deploymentId = (accepted.body as unknown as DeploymentView).deploymentId;
    await waitFor('the slow build to run', async () => sleeps(47) !== '', { timeoutMs: 30_000 });

    rig.agent.process.child.kill('SIGKILL');
    await waitFor('the agent to be dead', async () => rig.agent.process.child.signalCode === 'SIGKILL', {
      timeoutMs: 5_000,
    });
    const abandoned = await waitFor(
      'the front to abandon the deployment',
      async () => {
        expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'keep v1' });
        const current = await view(deploymentId);
        return current.status === 'abandoned' ? current : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(abandoned.failure).toMatchObject({ phase: 'built' });
    // Still serving while the agent is away, by the same process.
    for (let i = 0; i < 5; i++) {
      expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'keep v1' });
      await sleep(100);
    }
    expect(await servingPid()).toBe(pid);
    expect(sleeps(47)).not.toBe('');

    await rig.e2e.restartAgent(rig.agent);
    await waitFor('the orphaned build to be killed', async () => sleeps(47) === '', { timeoutMs: 30_000 });
    expect(await servingPid()).toBe(pid);

    await repo.commit({ 'cloudlunacy.json': null }, 'fast again');
    const { status, view: next } = await deployAndWait(rig.e2e, 'apps/keep/deployments');
    expect([status, next.status]).toEqual([200, 'succeeded']);
    expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'keep v2' });
  });
});

describeRoot('a serving release that crashes', () => {
  test('is started again by the agent, and its log says so', async () => {
    const pid = await servingPid();
    const current = (await rig.e2e.request('GET', 'apps/keep')).body as unknown as {
      current: { releaseId: string };
    };
    process.kill(pid, 'SIGKILL');
    const again = await waitFor(
      'the release to serve again',
      async () => {
        const reply = await bodyThroughFront(rig.e2e, hostname, '/env').catch(() => null);
        if (reply?.status !== 200) return undefined;
        const next = (JSON.parse(reply.body) as { pid: number }).pid;
        return next !== pid ? next : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(again).not.toBe(pid);
    expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'keep v2' });
    // The app's process was killed; npm, which started it, then exits with 128 + 9.
    let lines: string[] = [];
    await waitFor(
      'the restart to be in the log',
      async () => {
        lines = await deploymentLogs(rig.e2e, current.current.releaseId);
        return (
          lines.some((line) =>
            /^release \d+ (was killed by SIGKILL|exited with code 137); restarting in 1 s$/.test(line),
          ) && lines.some((line) => /is healthy again/.test(line))
        );
      },
      { timeoutMs: 15_000 },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${lines.slice(-30).join('\n')}`);
    });
  });
});

describeRoot('a crashed release whose saved environment is gone', () => {
  test('is started with its plain values again (and its secrets asked for)', async () => {
    const pid = await servingPid();
    const current = (await rig.e2e.request('GET', 'apps/keep')).body as unknown as {
      current: { releaseId: string };
    };
    await rm(join(rig.agentDir, 'state', 'deployments', 'env', `${current.current.releaseId}.json`));
    process.kill(pid, 'SIGKILL');
    const identity = await waitFor(
      'the release to serve again',
      async () => {
        const reply = await bodyThroughFront(rig.e2e, hostname, '/env').catch(() => null);
        if (reply?.status !== 200) return undefined;
        const next = JSON.parse(reply.body) as { pid: number; greeting: string | null };
        return next.pid !== pid ? next : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(identity.greeting).toBe('plain hello');
  });
});
