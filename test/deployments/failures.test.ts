/**
 * Deployments that do not succeed, for real: a release that is never healthy, one that exits, one that is
 * healthy on the VPS but not through the front (reverted), a cancel while building and one while queued,
 * and a queue of requests per app with one build at a time per agent. In every case the release that
 * served before keeps serving, and nothing of the failed one is left running.
 */
import { execFileSync } from 'node:child_process';
import { probeIsolation } from '../../apps/agent/src/deployments/isolation.js';
import { DOMAIN } from '../e2e/stack.js';
import type { TestRepo } from '../harness/git.js';
import { portAccepts, sleep, waitFor } from '../harness/processes.js';
import type { DeploymentView } from '#contracts';
import {
  appView,
  bodyThroughFront,
  createApp,
  deployAndWait,
  helloRepo,
  isRoot,
  startDeploymentRig,
  type DeploymentRig,
} from './agent-e2e.js';

if (!isRoot) console.log('failures.test: skipped, the agent isolates apps by uid and needs root');
const describeRoot = isRoot ? describe : describe.skip;

let rig: DeploymentRig;
let repo: TestRepo;
const hostname = `gate.apps.${DOMAIN}`;

beforeAll(async () => {
  if (!isRoot) return;
  rig = await startDeploymentRig('fail-a', '127.0.0.3', { uidBase: 62_200, portBase: 21_100 });
  repo = await helloRepo('gate', 'gate v1');
  await createApp(rig.e2e, 'fail-a', 'gate', repo, {
    healthCheck: { path: '/healthz', timeoutSeconds: 4 },
  });
  const first = await deployAndWait(rig.e2e, 'apps/gate/deployments');
  if (first.view.status !== 'succeeded')
    throw new Error(`v1 did not deploy: ${JSON.stringify(first.view.failure)}`);
}, 240_000);
afterAll(async () => {
  await rig?.stop();
});

/** The pid serving the app now (it says so on /env). */
async function servingPid(): Promise<number> {
  const reply = await bodyThroughFront(rig.e2e, hostname, '/env');
  return (JSON.parse(reply.body) as { pid: number }).pid;
}

/** Requests through the front while `during` runs: every answer must be the serving release's. */
async function steadyWhile<T>(during: Promise<T>, body: string): Promise<T> {
  let done = false;
  const answers: string[] = [];
  const probing = (async () => {
    while (!done) {
      const reply = await bodyThroughFront(rig.e2e, hostname).catch((error: unknown) => ({
        status: 0,
        body: String(error),
      }));
      if (reply.status !== 200 || reply.body !== body) answers.push(`${reply.status} ${reply.body}`);
      await sleep(50);
    }
  })();
  try {
    return await during;
  } finally {
    done = true;
    await probing;
    expect(answers).toEqual([]);
  }
}

describeRoot('a release that fails its health gate', () => {
  test('never healthy: failed at healthy with the app’s lines; v1 serves throughout and v2 is gone', async () => {
    const before = await appView(rig.e2e, 'gate');
    const pid = await servingPid();
    await repo.commit({ unhealthy: 'yes\n' }, 'sick');
    const { status, view } = await steadyWhile(deployAndWait(rig.e2e, 'apps/gate/deployments'), 'gate v1');
    expect([status, view.failure?.phase]).toEqual([502, 'healthy']);
    expect(view.failure?.reason).toMatch(/GET \/healthz did not answer 200–399 .* \(last: status 500\)/);
    expect(view.failure?.lastLines.join('\n')).toMatch(/hello listening on/);
    expect(await servingPid()).toBe(pid);
    const after = await appView(rig.e2e, 'gate');
    expect([after.current?.releaseId, after.routeId]).toEqual([before.current?.releaseId, before.routeId]);
    const route = (await rig.e2e.request('GET', `routes/${before.routeId}`)).body as { revision: number };
    expect(route.revision).toBe(1);
    // Nothing listens on the port the failed release had.
    expect(await portAccepts(view.port!, '127.0.0.3')).toBe(false);
  });

  test('exits at once: failed at started with its exit code', async () => {
    await repo.commit({ unhealthy: null, 'exit-code': '3' }, 'exits');
    const { status, view } = await deployAndWait(rig.e2e, 'apps/gate/deployments');
    expect([status, view.failure?.phase, view.failure?.exitCode]).toEqual([502, 'started', 3]);
    expect(view.failure?.lastLines.join('\n')).toMatch(/exiting with 3 as asked/);
    expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'gate v1' });
  });

  test('healthy on the VPS but not through the front: reverted, and the route is back on v1', async () => {
    const before = await appView(rig.e2e, 'gate');
    const revision = ((await rig.e2e.request('GET', `routes/${before.routeId}`)).body as { revision: number })
      .revision;
    await repo.commit({ 'exit-code': null, 'unhealthy-via-front': 'yes\n', 'body.txt': 'gate v4\n' }, 'v4');
    const { status, view } = await deployAndWait(rig.e2e, 'apps/gate/deployments');
    expect([status, view.failure?.phase, view.failure?.reverted]).toEqual([502, 'verified', true]);
    const route = (await rig.e2e.request('GET', `routes/${before.routeId}`)).body as {
      revision: number;
      target: { port: number };
    };
    expect([route.revision, route.target.port]).toEqual([revision + 2, before.current?.port]);
    await waitFor(
      'v1 to serve again',
      async () => (await bodyThroughFront(rig.e2e, hostname)).body === 'gate v1',
      { timeoutMs: 10_000 },
    );
    expect((await appView(rig.e2e, 'gate')).current?.releaseId).toBe(before.current?.releaseId);
  });
});

describeRoot('cancel and the queue', () => {
  test('a deployment cancelled while it builds ends within seconds; nothing of the build runs on', async () => {
    await repo.commit(
      {
        'unhealthy-via-front': null,
        'cloudlunacy.json': JSON.stringify({ build: ['sleep 30'], start: 'node server.js' }),
      },
      'slow build',
    );
    const accepted = await rig.e2e.request('POST', 'apps/gate/deployments', { body: {} });
    const deploymentId = (accepted.body as unknown as DeploymentView).deploymentId;
    await waitFor(
      'the build to start',
      async () =>
        ((await rig.e2e.request('GET', `deployments/${deploymentId}`)).body as unknown as DeploymentView)
          .status === 'fetched',
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const sleeping = async () =>
      (await import('node:child_process')).execFileSync('pgrep', ['-f', '^sleep 30$']).toString().trim();
    await waitFor('sleep 30 to run', async () => (await sleeping().catch(() => '')) !== '', {
      timeoutMs: 10_000,
    });
    const started = Date.now();
    const cancel = await rig.e2e.request('POST', `deployments/${deploymentId}/cancel`, { body: {} });
    expect(cancel.status).toBe(202);
    const ended = await waitFor(
      'the cancel to finish',
      async () => {
        const view = (await rig.e2e.request('GET', `deployments/${deploymentId}`))
          .body as unknown as DeploymentView;
        return view.status === 'cancelled' ? view : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    expect(Date.now() - started).toBeLessThan(15_000);
    // Where it stopped, and why: the view names the phase it was in.
    expect(ended.failure).toMatchObject({
      phase: 'built',
      reason: expect.stringMatching(/cancelled by admin/),
    });
    expect(await sleeping().catch(() => '')).toBe('');
    expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'gate v1' });
  });

  test('two at once: one runs, one waits; a third supersedes the waiting one; they finish in order', async () => {
    await repo.commit(
      {
        'cloudlunacy.json': JSON.stringify({ build: ['sleep 2'], start: 'node server.js' }),
        'body.txt': 'gate v5\n',
      },
      'v5',
    );
    const post = async () =>
      (await rig.e2e.request('POST', 'apps/gate/deployments', { body: {} }))
        .body as unknown as DeploymentView;
    const first = await post();
    const second = await post();
    const third = await post();
    const view = async (id: string) =>
      (await rig.e2e.request('GET', `deployments/${id}`)).body as unknown as DeploymentView;
    // The apps projection follows the log: under load it may show the second as queued for a moment.
    const app = await waitFor(
      'the apps projection to show the third as queued',
      async () => {
        const current = await appView(rig.e2e, 'gate');
        return current.queuedDeploymentId === third.deploymentId ? current : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    ).catch(() => appView(rig.e2e, 'gate'));
    expect([app.activeDeploymentId, app.queuedDeploymentId]).toEqual([
      first.deploymentId,
      third.deploymentId,
    ]);
    expect(await view(second.deploymentId)).toMatchObject({ status: 'cancelled' });
    const done = async (id: string) =>
      waitFor(
        `deployment ${id} to end`,
        async () => {
          const current = await view(id);
          return ['succeeded', 'failed', 'cancelled', 'abandoned'].includes(current.status)
            ? current
            : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 200 },
      );
    const firstDone = await done(first.deploymentId);
    const thirdDone = await done(third.deploymentId);
    expect([firstDone.status, thirdDone.status]).toEqual(['succeeded', 'succeeded']);
    const claimedThird = thirdDone.phases.find((phase) => phase.phase === 'claimed')!.at!;
    expect(Date.parse(claimedThird)).toBeGreaterThanOrEqual(Date.parse(firstDone.finishedAt!));
    expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'gate v5' });
  });

  test('a build cannot leave a process behind, not even one that left its process group', async () => {
    const { cgroup } = await probeIsolation();
    if (!cgroup) {
      console.log('failures.test: no cgroups here; a daemon leaving the process group is not caught');
      return;
    }
    await repo.commit(
      {
        'cloudlunacy.json': JSON.stringify({
          build: ['setsid sleep 53 > /dev/null 2>&1 < /dev/null &'],
          start: 'node server.js',
        }),
        'body.txt': 'gate v6\n',
      },
      'a daemon in the build',
    );
    const { view } = await deployAndWait(rig.e2e, 'apps/gate/deployments');
    expect(view.status).toBe('succeeded');
    expect(execFileSync('sh', ['-c', 'pgrep -f "^sleep 53$" || true']).toString().trim()).toBe('');
  });

  test('two apps on one agent build one at a time', async () => {
    const other = await helloRepo('gate-b', 'gate-b v1');
    await other.commit({
      'cloudlunacy.json': JSON.stringify({ build: ['sleep 2'], start: 'node server.js' }),
    });
    await createApp(rig.e2e, 'fail-a', 'gate-b', other);
    const [a, b] = await Promise.all([
      deployAndWait(rig.e2e, 'apps/gate/deployments'),
      deployAndWait(rig.e2e, 'apps/gate-b/deployments'),
    ]);
    expect([a.view.status, b.view.status]).toEqual(['succeeded', 'succeeded']);
    const interval = (view: DeploymentView) => {
      const at = (phase: string) => Date.parse(view.phases.find((p) => p.phase === phase)!.at!);
      return [at('claimed'), at('built')] as const;
    };
    const [aStart, aEnd] = interval(a.view);
    const [bStart, bEnd] = interval(b.view);
    expect(aEnd <= bStart || bEnd <= aStart).toBe(true);
  });
});
