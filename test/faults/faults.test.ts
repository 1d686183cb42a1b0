/**
 * Issue 14: the fault suite (see suite.ts). `npm test` runs the short version (CL_FAULTS_KILLS unset: 5
 * kills, figures in test/bench/results/faults-short.json); `npm run faults` the full one (36 kills, every
 * component three times, figures in test/bench/results/faults.json). CL_FAULTS_SEED replays a schedule.
 *
 * Targets: no acknowledged command lost, none duplicated, convergence under 5 s after every kill, no failed
 * request to an untouched route outside kills of that front's HAProxy (counted apart).
 */
import { COMPONENTS, FaultSuite, type Component, type FaultReport } from './suite.js';

const full = process.env.CL_FAULTS_KILLS !== undefined;
const kills = Number(process.env.CL_FAULTS_KILLS ?? 5);
const seed = Number(process.env.CL_FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CONVERGE_TARGET_S = 5;
/**
 * To chase one failure: CL_FAULTS_COMPONENTS=projector,nats-server kills only these;
 * CL_FAULTS_MAX_DOWNTIME_MS=3000 keeps them down longer (default up to 400 ms).
 */
const components = (process.env.CL_FAULTS_COMPONENTS?.split(',') ?? [...COMPONENTS]) as Component[];

process.stderr.write(
  `[faults] seed ${seed} (CL_FAULTS_SEED=${seed} replays this schedule), ${kills} kills\n`,
);

let suite: FaultSuite;
let report: FaultReport;

beforeAll(async () => {
  if (!Number.isInteger(kills) || kills < 1) throw new Error(`CL_FAULTS_KILLS must be a positive integer`);
  const unknown = components.filter((component) => !(COMPONENTS as readonly string[]).includes(component));
  if (unknown.length > 0) throw new Error(`CL_FAULTS_COMPONENTS: unknown ${unknown.join(', ')}`);
  suite = new FaultSuite({
    kills,
    seed,
    reconcileIntervalMs: Number(process.env.CL_FAULTS_RECONCILE_MS ?? 10_000),
    agents: 5,
    convergeTimeoutMs: 30_000,
    // A run that kills fewer or only some components (chasing a failure) keeps the figures of the others.
    resultsName: !full
      ? 'faults-short'
      : kills >= 20 && components.length === COMPONENTS.length
        ? 'faults'
        : 'faults-custom',
    components,
    maxDowntimeMs: Number(process.env.CL_FAULTS_MAX_DOWNTIME_MS ?? 400),
    // Room for the last convergence, the checks and the teardown within the test's bound.
    deadline: Date.now() + (full ? 10 : 2) * 60_000,
  });
  await suite.start();
}, 240_000);

afterAll(async () => {
  await suite?.stop();
}, 60_000);

test(
  `${kills} SIGKILLs during route churn: nothing lost or duplicated, everything converges, untouched routes answer`,
  async () => {
    report = await suite.run();
    const figures = report.figures;
    const summary = `seed ${seed}; problems:\n${report.problems.slice(0, 30).join('\n')}`;

    expect({ kills: figures.kills, summary }).toEqual({ kills, summary });
    expect(figures.acknowledged as number).toBeGreaterThan(0);
    expect({
      unexpected_exits: figures.unexpected_exits,
      lost: figures.lost,
      duplicated: figures.duplicated,
      wrong_effect: figures.wrong_effect,
      unacknowledged: figures.unacknowledged,
      rejected: figures.rejected,
      state_mismatches: figures.state_mismatches,
      rebuild_differences: figures.rebuild_differences,
      map_differences: figures.map_differences,
      live_route_errors: figures.live_route_errors,
      routes_not_active: figures.routes_not_active,
      failed_requests_untouched: figures.failed_requests_untouched,
      summary,
    }).toEqual({
      unexpected_exits: 0,
      lost: 0,
      duplicated: 0,
      wrong_effect: 0,
      unacknowledged: 0,
      rejected: 0,
      state_mismatches: 0,
      rebuild_differences: 0,
      map_differences: 0,
      live_route_errors: 0,
      routes_not_active: 0,
      failed_requests_untouched: 0,
      summary,
    });
    // Every kill converges (within the suite's 30 s bound). The 5 s target is a timing: the short run in
    // `npm test` reports it in its figures (converge_max_s), the full run (`npm run faults`) holds it.
    const unconverged = report.kills
      .filter((kill) => kill.convergeS === null)
      .map((kill) => `#${kill.index} ${kill.component}: no (${kill.notConverged})`);
    expect({ unconverged, seed }).toEqual({ unconverged: [], seed });
    if (full) {
      const slow = report.kills
        .filter((kill) => kill.convergeS !== null && kill.convergeS >= CONVERGE_TARGET_S)
        .map((kill) => `#${kill.index} ${kill.component}: ${kill.convergeS}`);
      expect({ converged_under_5s: slow, seed }).toEqual({ converged_under_5s: [], seed });
    }
    // The traffic really ran through both fronts all along.
    expect(figures.untouched_requests as number).toBeGreaterThan(100);
  },
  (full ? 14 : 3) * 60_000,
);
