/**
 * `npm run bench -- deploy`: the whole system (test/e2e/stack.ts) with one real agent running the hello
 * app (no build step). Each run measures, in the same run, (a) the baseline: the same app started by hand
 * (`node server.js` on a free port) until its first 200, and (b) a deployment of a new commit from the
 * POST to `succeeded`, with wrk loading the app through HAProxy all along. Then a rollback, from the POST
 * to the first answer of the old body through HAProxy. The mean time per phase explains the overhead.
 */
import { mkdtemp, cp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeploymentView } from '#contracts';
import { DOMAIN } from '../e2e/stack.js';
import { freePort } from '../harness/ports.js';
import { sleep, startProcess, waitFor, type RunningProcess } from '../harness/processes.js';
import { requestReply } from '../harness/http.js';
import { parseWrk } from '../proxy-sync/helpers.js';
import {
  bodyThroughFront,
  createApp,
  deployAndWait,
  helloRepo,
  HELLO_FIXTURE,
  startDeploymentRig,
} from '../deployments/agent-e2e.js';
import { percentile, progress, round, type Figures } from './report.js';

const RUNS = Number(process.env.CL_BENCH_DEPLOY_RUNS ?? 10);
const TARGETS = { overhead_p50_s: 2, rollback_s: 3, failed_requests_during_switch: 0 };

/** The app started by hand, as a person would without CloudLunacy: time to its first 200. */
async function baseline(dir: string): Promise<number> {
  const port = await freePort();
  const started = Date.now();
  const app = startProcess('node', ['server.js'], {
    cwd: dir,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1' },
  });
  try {
    await waitFor(
      'the hand-started app to answer',
      async () =>
        (await requestReply({ port, path: '/', host: '127.0.0.1' }, 1_000).catch(() => ({ status: 0 })))
          .status === 200,
      { timeoutMs: 30_000, intervalMs: 10 },
    );
    return (Date.now() - started) / 1000;
  } finally {
    await app.stop();
  }
}

export async function run(): Promise<Figures> {
  if (process.getuid?.() !== 0)
    throw new Error('the deploy benchmark runs the agent as root (uid isolation)');
  progress('deploy: starting the stack and an agent');
  const rig = await startDeploymentRig('bench-a', '127.0.0.7', { uidBase: 62_600, portBase: 21_500 });
  const handDir = await mkdtemp(join(tmpdir(), 'bench-hand-'));
  let wrk: RunningProcess | undefined;
  try {
    await cp(HELLO_FIXTURE, handDir, { recursive: true });
    const hostname = `bench.apps.${DOMAIN}`;
    const repo = await helloRepo('bench', 'bench 0');
    await createApp(rig.e2e, 'bench-a', 'bench', repo);
    const first = await deployAndWait(rig.e2e, 'apps/bench/deployments');
    if (first.view.status !== 'succeeded')
      throw new Error(`the first deployment failed: ${JSON.stringify(first.view.failure)}`);

    wrk = startProcess('wrk', [
      '-t1',
      '-c4',
      '-d3600s',
      '-H',
      `Host: ${hostname}`,
      `https://127.0.0.1:${rig.e2e.haproxy.ports.https}/`,
    ]);
    await sleep(500);
    const deploys: number[] = [];
    const baselines: number[] = [];
    const phases = new Map<string, number[]>();
    for (let index = 1; index <= RUNS; index++) {
      await writeFile(join(handDir, 'body.txt'), `hand ${index}\n`);
      baselines.push(await baseline(handDir));
      await repo.commit({ 'body.txt': `bench ${index}\n` }, `run ${index}`);
      const started = Date.now();
      const { view } = await deployAndWait(rig.e2e, 'apps/bench/deployments');
      if (view.status !== 'succeeded')
        throw new Error(`run ${index} failed: ${JSON.stringify(view.failure)}`);
      deploys.push((Date.now() - started) / 1000);
      for (const phase of (view as DeploymentView).phases)
        if (phase.durationMs !== null && phase.durationMs !== undefined)
          phases.set(phase.phase, [...(phases.get(phase.phase) ?? []), phase.durationMs]);
      progress(
        `deploy: run ${index}/${RUNS}: ${round(deploys.at(-1)!, 2)} s (baseline ${round(baselines.at(-1)!, 2)} s)`,
      );
    }

    // Rollback to the release before the serving one: until HAProxy answers with its body.
    const rollbackStarted = Date.now();
    const accepted = await rig.e2e.request('POST', 'apps/bench/rollback', { body: {} });
    if (accepted.status !== 202) throw new Error(`rollback refused: ${JSON.stringify(accepted.body)}`);
    await waitFor(
      'the old release to answer through HAProxy',
      async () => (await bodyThroughFront(rig.e2e, hostname)).body === `bench ${RUNS - 1}`,
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    const rollback = (Date.now() - rollbackStarted) / 1000;

    wrk.child.kill('SIGINT');
    await waitFor(
      'wrk to report',
      async () => /requests in/.test(wrk!.output()) && wrk!.child.exitCode !== null,
    );
    const load = parseWrk(wrk.output());
    const sortedDeploys = [...deploys].sort((a, b) => a - b);
    const sortedBaselines = [...baselines].sort((a, b) => a - b);
    const deployP50 = percentile(sortedDeploys, 50);
    const baselineP50 = percentile(sortedBaselines, 50);
    const figures: Figures = {
      runs: RUNS,
      deploy_p50_s: round(deployP50, 2),
      deploy_max_s: round(sortedDeploys.at(-1)!, 2),
      baseline_p50_s: round(baselineP50, 2),
      overhead_p50_s: round(deployP50 - baselineP50, 2),
      rollback_s: round(rollback, 2),
      failed_requests_during_switch: load.non2xx + load.socketErrors,
      requests_during_runs: load.requests,
      drain_delay_s: 1,
    };
    for (const [phase, values] of phases)
      figures[`phase_${phase}_mean_ms`] = round(values.reduce((sum, v) => sum + v, 0) / values.length, 0);
    figures.target_overhead_p50_s = TARGETS.overhead_p50_s;
    figures.target_rollback_s = TARGETS.rollback_s;
    figures.pass_overhead = (figures.overhead_p50_s as number) <= TARGETS.overhead_p50_s;
    figures.pass_rollback = rollback <= TARGETS.rollback_s;
    figures.pass_failed_requests = figures.failed_requests_during_switch === 0;
    return figures;
  } finally {
    await wrk?.stop('SIGKILL');
    await rm(handDir, { recursive: true, force: true });
    await rig.stop();
  }
}
