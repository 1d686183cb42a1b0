/**
 * Zero downtime, measured: wrk loads the app through HAProxy (by Host, over HTTPS, four keep-alive
 * connections) while new releases deploy and one rolls back. Not one request fails or answers anything
 * but 2xx; afterwards the new release answers, and the old process and its port are gone. The drain
 * waits for a request in flight on the old release, and no longer than that: HAProxy's idle pooled
 * connections to it do not hold it for the whole drain delay.
 */
import { DOMAIN } from '../e2e/stack.js';
import type { TestRepo } from '../harness/git.js';
import { portAccepts, sleep, startProcess, waitFor, type RunningProcess } from '../harness/processes.js';
import { parseWrk } from '../proxy-sync/helpers.js';
import {
  appView,
  bodyThroughFront,
  createApp,
  deployAndWait,
  deploymentLogs,
  helloRepo,
  isRoot,
  startDeploymentRig,
  type DeploymentRig,
} from './agent-e2e.js';

if (!isRoot) console.log('zero-downtime.test: skipped, the agent isolates apps by uid and needs root');
const describeRoot = isRoot ? describe : describe.skip;

let rig: DeploymentRig;
let repo: TestRepo;
const hostname = `zero.apps.${DOMAIN}`;
const ADDRESS = '127.0.0.5';

beforeAll(async () => {
  if (!isRoot) return;
  rig = await startDeploymentRig('zero-a', ADDRESS, { uidBase: 62_400, portBase: 21_300 });
  repo = await helloRepo('zero', 'zero v1');
  await createApp(rig.e2e, 'zero-a', 'zero', repo);
  const first = await deployAndWait(rig.e2e, 'apps/zero/deployments');
  if (first.view.status !== 'succeeded')
    throw new Error(`v1 did not deploy: ${JSON.stringify(first.view.failure)}`);
}, 240_000);
afterAll(async () => {
  await rig?.stop();
});

function load(host = hostname): RunningProcess {
  return startProcess('wrk', [
    '-t1',
    '-c4',
    '-d300s',
    '-H',
    `Host: ${host}`,
    `https://127.0.0.1:${rig.e2e.haproxy.ports.https}/`,
  ]);
}

async function report(wrk: RunningProcess) {
  wrk.child.kill('SIGINT');
  await waitFor('wrk to report', async () => /requests in/.test(wrk.output()) && wrk.child.exitCode !== null);
  return parseWrk(wrk.output());
}

describeRoot('under load through HAProxy', () => {
  test('the drain waits for a slow request in flight, then ends long before its delay', async () => {
    const holdHost = `hold.apps.${DOMAIN}`;
    const holdRepo = await helloRepo('hold', 'hold v1');
    await createApp(rig.e2e, 'zero-a', 'hold', holdRepo, {
      drain: { delaySeconds: 20, stopTimeoutSeconds: 5 },
    });
    expect((await deployAndWait(rig.e2e, 'apps/hold/deployments')).view.status).toBe('succeeded');
    const wrk = load(holdHost);
    try {
      await sleep(300);
      await holdRepo.commit({ 'body.txt': 'hold v2\n' }, 'v2');
      // Sent to release 1 before the deploy; it answers 3 s later, after the switch.
      const slow = bodyThroughFront(rig.e2e, holdHost, '/slow?ms=3000').then((reply) => ({
        ...reply,
        at: Date.now(),
      }));
      await sleep(100);
      const deployed = await deployAndWait(rig.e2e, 'apps/hold/deployments');
      expect(deployed.view.status).toBe('succeeded');
      const answered = await slow;
      expect({ status: answered.status, body: answered.body }).toEqual({ status: 200, body: 'hold v1' });
      const at = (phase: string) => Date.parse(deployed.view.phases.find((p) => p.phase === phase)!.at!);
      // The old release was stopped only after the slow request was answered...
      expect(at('drained')).toBeGreaterThanOrEqual(answered.at - 50);
      // ...and not at the end of the 20 s delay, though wrk kept HAProxy's connections to it pooled.
      expect(at('drained') - at('switched')).toBeLessThan(10_000);
      const logs = await deploymentLogs(rig.e2e, deployed.view.deploymentId);
      expect(logs.some((line) => /old release has no request in flight on the front/.test(line))).toBe(true);
      const counted = await report(wrk);
      expect({ non2xx: counted.non2xx, socketErrors: counted.socketErrors }).toEqual({
        non2xx: 0,
        socketErrors: 0,
      });
    } finally {
      await wrk.stop('SIGKILL');
    }
  });

  test('two deployments and a rollback drop no request', async () => {
    const wrk = load();
    try {
      await sleep(500);
      const oldPort = (await appView(rig.e2e, 'zero')).current!.port;
      await repo.commit({ 'body.txt': 'zero v2\n' }, 'v2');
      expect((await deployAndWait(rig.e2e, 'apps/zero/deployments')).view.status).toBe('succeeded');
      await repo.commit({ 'body.txt': 'zero v3\n' }, 'v3');
      expect((await deployAndWait(rig.e2e, 'apps/zero/deployments')).view.status).toBe('succeeded');
      expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'zero v3' });
      expect((await deployAndWait(rig.e2e, 'apps/zero/rollback', { release: 2 })).view.status).toBe(
        'succeeded',
      );
      expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'zero v2' });
      await sleep(500);
      expect(wrk.child.exitCode).toBeNull(); // the load ran through all of it
      const counted = await report(wrk);
      expect(counted.requests).toBeGreaterThan(200);
      expect({ non2xx: counted.non2xx, socketErrors: counted.socketErrors }).toEqual({
        non2xx: 0,
        socketErrors: 0,
      });
      // v1's process is gone with its port.
      expect(await portAccepts(oldPort, ADDRESS)).toBe(false);
    } finally {
      await wrk.stop('SIGKILL');
    }
  });
});
