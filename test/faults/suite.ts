/**
 * Issue 14, the fault suite: the whole system as real processes (E2eStack: nats-server, registration,
 * projector, routing, certificates, API, two fronts each with HAProxy, a Data Plane API emulator process and
 * proxy-sync), five real agents, route churn from all of them, and a SIGKILL of a random component at a
 * random moment, again and again, each followed by a restart. After each kill the suite measures how long
 * until the system is whole again; after all of them it checks the log against what clients were told, the
 * projections against a fresh rebuild, both HAProxies against the projections, and the traffic to the
 * routes the churn never touched.
 *
 * The schedule (which component, when, how long it stays down) comes from a seeded PRNG: CL_FAULTS_SEED
 * replays it. Process timings are real, so a replay kills the same things at the same offsets, not at the
 * same instructions.
 */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { createDomainRegistry, EVENTS_STREAM, type StoredEvent } from '#contracts';
import { EventStore } from '#eventstore';
import type { ProxyNodeRecord } from '../../apps/proxy-sync/src/reporting.js';
import { percentile, progress, round, writeFigures, type Figures } from '../bench/report.js';
import { DOMAIN, E2eStack, NODE, SECOND_NODE, type RealAgent } from '../e2e/stack.js';
import { requestReply } from '../harness/http.js';
import { startHaproxyStack, type HaproxyStack } from '../harness/haproxy.js';
import { sleep, waitFor, type RunningProcess } from '../harness/processes.js';
import { httpAgent, proxyEnv, type Agent as App } from '../proxy-sync/helpers.js';
import { differences, projectorPosition, random, rebuildFinished, snapshot } from '../routes/helpers.js';
import { checkLog } from './check-log.js';
import { Churn, type ChurnAgent } from './churn.js';
import { frontDivergence } from './divergence.js';
import { EmulatorProcess, exited, killHaproxyWorker, sigkill, type WorkerKillOutcome } from './front.js';
import { once, Traffic, type UntouchedRoute } from './traffic.js';

export const COMPONENTS = [
  'routing',
  'registration',
  'certificates',
  'projector',
  'api',
  'proxy-sync',
  'proxy-sync-2',
  'nats-server',
  'emulator',
  'emulator-2',
  'haproxy',
  'haproxy-2',
] as const;
export type Component = (typeof COMPONENTS)[number];

export interface FaultOptions {
  kills: number;
  seed: number;
  /** proxy-sync's full-pass interval (its production default is 10 s). */
  reconcileIntervalMs: number;
  agents: number;
  /** How long one convergence may take before the run is given up as not recovering. */
  convergeTimeoutMs: number;
  /** Name of the figures file in test/bench/results. */
  resultsName: string;
  /** Only these components are killed (default: all). */
  components?: readonly Component[];
  /** Longest time a killed component stays down before its restart (default 400 ms). */
  maxDowntimeMs?: number;
  /** No kill starts after this time (ms since the epoch): the run stays within its bound. */
  deadline: number;
}

export interface PlannedKill {
  component: Component;
  /** Churn before the kill. */
  afterMs: number;
  /** Time between the process being gone and its restart. */
  downtimeMs: number;
}

export interface KillRecord extends PlannedKill {
  index: number;
  /** Seconds since the churn started. */
  atS: number;
  killedAt: number;
  restartedAt: number;
  commandsInFlight: number;
  convergeS: number | null;
  /** What was still different when the convergence timed out. */
  notConverged?: string;
  /** For HAProxy: what its master did when the worker was killed. */
  outcome?: WorkerKillOutcome;
  /** For a kill that did not converge in time: when the system was whole again (null: never). */
  recoveredS?: number | null;
  /** Events appended from the kill to the convergence, by type. */
  events?: Record<string, number>;
  /** What the convergence waited for: each difference and when it was last seen (s after the restart). */
  waited?: [string, number][];
}

export interface FaultReport {
  figures: Figures;
  kills: KillRecord[];
  problems: string[];
}

/** Which component when: rounds of every component in a shuffled order, so a long run meets them all. */
export function planKills(
  seed: number,
  kills: number,
  components: readonly Component[] = COMPONENTS,
  maxDowntimeMs = 400,
): PlannedKill[] {
  const rng = random(seed);
  const plan: PlannedKill[] = [];
  while (plan.length < kills) {
    const round: Component[] = [...components];
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    for (const component of round) {
      if (plan.length >= kills) break;
      plan.push({
        component,
        afterMs: Math.round(400 + rng() * 2_600),
        downtimeMs: Math.round(rng() * maxDowntimeMs),
      });
    }
  }
  return plan;
}

function line(event: Record<string, unknown>): void {
  process.stderr.write(`[faults] ${JSON.stringify(event)}\n`);
}

export class FaultSuite {
  e2e!: E2eStack;
  second!: HaproxyStack;
  emulators: EmulatorProcess[] = [];
  agents: RealAgent[] = [];
  apps: App[][] = [];
  untouched: UntouchedRoute[] = [];
  churn!: Churn;
  traffic!: Traffic;
  kills: KillRecord[] = [];
  private nc!: NatsConnection;
  private jsm!: JetStreamManager;
  private kv?: KV;
  private crlKv?: KV;
  private secondEnv: Record<string, string> = {};
  /** Components being killed or restarted by the suite (the supervisor leaves them alone). */
  private readonly killing = new Set<Component>();
  private supervisorStopped = false;
  private supervisor?: Promise<void>;
  /** Components that exited without being killed. */
  readonly crashes: { component: Component; atS: number; exit: string; output: string }[] = [];
  private churnStartedAt = 0;

  constructor(readonly options: FaultOptions) {}

  get fronts(): HaproxyStack[] {
    return [this.e2e.haproxy, this.second];
  }

  async start(): Promise<void> {
    const started = Date.now();
    this.e2e = await E2eStack.start({
      reconcileIntervalMs: this.options.reconcileIntervalMs,
      withoutProxySync: true,
    });
    // The faults' own view of the broker: it reconnects at once after nats-server restarts.
    this.nc = await this.e2e.stack.nats.connectWithCreds(this.e2e.stack.installation.layout.adminCreds, {
      maxReconnectAttempts: -1,
      reconnectTimeWait: 50,
    });
    this.jsm = await jetstreamManager(this.nc);
    this.second = await startHaproxyStack({ caPem: this.e2e.ca.certificatePem });
    this.e2e.second = this.second;
    this.emulators = [
      await EmulatorProcess.detach('emulator', this.e2e.haproxy),
      await EmulatorProcess.detach('emulator-2', this.second),
    ];
    this.secondEnv = {
      ...this.e2e.proxySyncEnv,
      ...proxyEnv(this.second),
      CL_PROXY_NODE_ID: SECOND_NODE,
      CL_PROXY_RECONCILE_INTERVAL_MS: String(this.options.reconcileIntervalMs),
    };
    await this.e2e.startProxySync();
    await this.e2e.startSecondProxySync();
    this.agents = await Promise.all(
      Array.from({ length: this.options.agents }, (_, index) =>
        this.e2e.startAgent(`fa${index + 1}`, `127.0.0.${index + 2}`),
      ),
    );
    this.apps = await Promise.all(
      this.agents.map((agent) =>
        Promise.all([0, 1, 2].map((app) => httpAgent(agent.address, `${agent.agentId}/app${app}`))),
      ),
    );
    // One route per agent the churn never touches: traffic to it must keep answering.
    for (const [index, agent] of this.agents.entries()) {
      const subdomain = `keep-${agent.agentId}`;
      const answer = await this.e2e.stack.request('POST', 'routes?wait=active&timeout=20000', {
        token: await agent.token(),
        body: { kind: 'http', subdomain, target: { host: agent.address, port: this.apps[index]![0]!.port } },
      });
      if (answer.status !== 200)
        throw new Error(`untouched route: ${answer.status} ${JSON.stringify(answer.body)}`);
      const hostname = `${subdomain}.apps.${DOMAIN}`;
      this.untouched.push({ hostname, body: `${agent.agentId}/app0 ${hostname} https` });
    }
    for (const front of this.fronts)
      for (const route of this.untouched) {
        const probe = await once(front.ports.https, route, this.e2e.ca.certificatePem);
        if (!probe.ok) throw new Error(`${route.hostname} through ${front.ports.https}: ${probe.detail}`);
      }
    const churnAgents: ChurnAgent[] = this.agents.map((agent, index) => ({
      agentId: agent.agentId,
      address: agent.address,
      token: () => agent.token(),
      apps: this.apps[index]!.map((app) => app.port),
    }));
    this.churn = new Churn(this.e2e.stack.baseUrl, churnAgents, DOMAIN, this.options.seed);
    this.traffic = new Traffic(
      this.fronts.map((front) => ({ port: front.ports.https })),
      this.untouched,
      this.e2e.ca.certificatePem,
    );
    line({ phase: 'ready', setup_s: round((Date.now() - started) / 1000) });
  }

  async stop(): Promise<void> {
    this.supervisorStopped = true;
    await this.supervisor;
    await this.churn?.stop().catch(() => undefined);
    await this.traffic?.stop().catch(() => undefined);
    for (const apps of this.apps) for (const app of apps) await app.close().catch(() => undefined);
    for (const emulator of this.emulators) await emulator.stop().catch(() => undefined);
    if (this.nc && !this.nc.isClosed()) await this.nc.close().catch(() => undefined);
    await this.e2e?.stop();
  }

  /** The whole run: churn, the kills, the checks, the figures. */
  async run(): Promise<FaultReport> {
    const plan = planKills(
      this.options.seed,
      this.options.kills,
      this.options.components,
      this.options.maxDowntimeMs,
    );
    line({
      phase: 'plan',
      seed: this.options.seed,
      kills: plan.map((kill) => `${kill.component}@+${kill.afterMs}ms/${kill.downtimeMs}ms`),
    });
    this.churnStartedAt = Date.now();
    this.supervisor = this.supervise();
    this.traffic.start();
    this.churn.start();
    for (const [index, planned] of plan.entries()) {
      this.churn.unpause();
      await sleep(planned.afterMs);
      const before = await this.lastSequence();
      const record = await this.kill(index + 1, planned);
      // The churn went on while the component was down; from its restart on, no new commands, only the
      // retries of those that were not acknowledged.
      this.churn.pause();
      const converged = await this.converged(record.component, record.restartedAt);
      record.convergeS =
        converged.at === undefined ? null : round((converged.at - record.killedAt) / 1000, 2);
      if (converged.reason) record.notConverged = converged.reason;
      record.waited =
        converged.waited.length > 12
          ? [...converged.waited.slice(0, 6), ['…', 0], ...converged.waited.slice(-6)]
          : converged.waited;
      record.events = await this.eventTypesSince(before + 1);
      this.kills.push(record);
      line({
        kill: record.index,
        component: record.component,
        at_s: record.atS,
        downtime_ms: record.downtimeMs,
        in_flight: record.commandsInFlight,
        ...(record.outcome ? { haproxy: record.outcome } : {}),
        converged_s: record.convergeS,
        restart_s: round((record.restartedAt - record.killedAt) / 1000, 2),
        waited: record.waited,
        events: record.events,
        ...(record.notConverged ? { not_converged: record.notConverged } : {}),
        ...(record.convergeS === null || record.convergeS >= 5
          ? { slow_commands: this.slowCommands(record) }
          : {}),
        acknowledged: this.churn.ledger.filter((command) => command.ackedAt !== undefined).length,
      });
      if (record.convergeS === null) {
        // Not whole within the timeout: wait longer (a slow recovery is still worth the rest of the run),
        // give up only when it does not come back at all.
        const late = await this.converged(undefined, record.killedAt, 120_000);
        record.recoveredS = late.at === undefined ? null : round((late.at - record.killedAt) / 1000, 2);
        line({ kill: record.index, component: record.component, recovered_s: record.recoveredS });
        if (late.at === undefined) break;
      }
      if (Date.now() > this.options.deadline) {
        line({ phase: 'out of time', kills: this.kills.length, planned: plan.length });
        break;
      }
    }
    return this.finish();
  }

  /** The commands that were waited for after a slow convergence: their attempts, relative to the kill. */
  private slowCommands(record: KillRecord): string[] {
    const end = record.killedAt + (record.convergeS ?? 60) * 1000;
    return this.churn.ledger
      .filter((command) =>
        command.timeline.some((attempt) => attempt.at + attempt.ms >= record.killedAt && attempt.at <= end),
      )
      .filter(
        (command) => command.timeline.length > 1 || command.timeline.some((attempt) => attempt.ms > 2_000),
      )
      .slice(0, 8)
      .map(
        (command) =>
          `${command.kind} ${command.agentId}: ` +
          command.timeline
            .map(
              (attempt) =>
                `${attempt.result}@${round((attempt.at - record.killedAt) / 1000, 2)}s+${attempt.ms}ms`,
            )
            .join(' '),
      );
  }

  // ------------------------------------------------------------------------------------- the kills

  /** The process that is the component (for HAProxy: its master). */
  private processOf(component: Component): RunningProcess | undefined {
    switch (component) {
      case 'nats-server':
        return this.e2e.stack.nats.process;
      case 'emulator':
        return this.emulators[0]?.process;
      case 'emulator-2':
        return this.emulators[1]?.process;
      case 'haproxy':
        return this.e2e.haproxy.haproxy;
      case 'haproxy-2':
        return this.second.haproxy;
      default:
        return this.e2e.stack.processes.get(component);
    }
  }

  /** Starts the component again as it was started first (same ports, files, environment). */
  private async restart(component: Component): Promise<void> {
    switch (component) {
      case 'nats-server':
        return this.e2e.stack.nats.start();
      case 'emulator':
        return this.emulators[0]!.start();
      case 'emulator-2':
        return this.emulators[1]!.start();
      case 'haproxy':
        return this.e2e.haproxy.restartHaproxy();
      case 'haproxy-2':
        return this.second.restartHaproxy();
      case 'proxy-sync':
        this.e2e.stack.startService('proxy-sync', this.e2e.proxySyncEnv);
        return;
      case 'proxy-sync-2':
        this.e2e.stack.startService('proxy-sync', this.secondEnv, 'proxy-sync-2');
        return;
      default:
        this.e2e.stack.startService(component);
    }
  }

  /**
   * As systemd's Restart= would: a component that exited although nothing killed it is recorded (with its
   * last output) and started again. Every such exit is a finding: the suite fails on it.
   */
  private async supervise(): Promise<void> {
    while (!this.supervisorStopped) {
      for (const component of COMPONENTS) {
        if (this.killing.has(component) || !exited(this.processOf(component))) continue;
        const output = this.processOf(component)?.output() ?? '';
        const child = this.processOf(component)?.child;
        const at = round((Date.now() - this.churnStartedAt) / 1000, 2);
        this.crashes.push({
          component,
          atS: at,
          exit: String(child?.exitCode ?? child?.signalCode),
          output: output.slice(-3000),
        });
        line({
          crash: component,
          at_s: at,
          exit: child?.exitCode ?? child?.signalCode,
          output: output.slice(-800),
        });
        this.killing.add(component);
        await this.restart(component)
          .catch((error: unknown) => line({ restart_failed: component, error: String(error) }))
          .finally(() => this.killing.delete(component));
      }
      await sleep(100);
    }
  }

  private async kill(index: number, planned: PlannedKill): Promise<KillRecord> {
    const { component, downtimeMs } = planned;
    const inFlight = this.churn.pending();
    let killedAt = 0;
    let outcome: WorkerKillOutcome | undefined;
    const stamp = () => (killedAt = Date.now());
    // A component the supervisor is restarting right now is killed once it is back.
    await waitFor('the component to be up', () => !this.killing.has(component), { timeoutMs: 30_000 });
    this.killing.add(component);
    try {
      if (component === 'haproxy' || component === 'haproxy-2') {
        const front = this.fronts[component === 'haproxy' ? 0 : 1]!;
        // The master restarts nothing by itself (see killHaproxyWorker): the downtime is its own.
        ({ outcome } = await killHaproxyWorker(front, stamp));
      } else {
        const running = this.processOf(component);
        if (!running || exited(running)) throw new Error(`${component} is not running`);
        stamp();
        await sigkill(running);
        await sleep(downtimeMs);
        await this.restart(component);
      }
    } finally {
      this.killing.delete(component);
    }
    return {
      ...planned,
      index,
      atS: round((killedAt - this.churnStartedAt) / 1000, 2),
      killedAt,
      restartedAt: Date.now(),
      commandsInFlight: inFlight,
      convergeS: null,
      ...(outcome ? { outcome } : {}),
    };
  }

  // ------------------------------------------------------------------------------- convergence

  private async admin(method: string, path: string, body?: unknown) {
    const url = new URL(`${this.e2e.stack.baseUrl}/api/v1/${path}`);
    const reply = await requestReply(
      {
        method,
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        headers: {
          authorization: `Bearer ${this.e2e.admin}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      },
      5_000,
    );
    return reply.status;
  }

  async lastSequence(): Promise<number> {
    return (await this.jsm.streams.info(EVENTS_STREAM)).state.last_seq;
  }

  private async nodeRecord(node: string): Promise<ProxyNodeRecord | undefined> {
    this.kv ??= await new Kvm(this.nc).open('proxy-nodes');
    const entry = await this.kv.get(node);
    return entry && entry.length > 0 ? entry.json<ProxyNodeRecord>() : undefined;
  }

  /** The CRL the certificates service published last, which every front must have stored. */
  private async publishedCrl(): Promise<string | undefined> {
    this.crlKv ??= await new Kvm(this.nc).open('crl');
    const entry = await this.crlKv.get('current');
    return entry && entry.length > 0 ? entry.string() : undefined;
  }

  /** Why the component is not back yet (undefined when it is): it answers what it is there for. */
  private async recovery(component: Component, since: number): Promise<string | undefined> {
    const sinceIso = new Date(since).toISOString();
    const expect = async (what: string, method: string, path: string, status: number, body?: unknown) => {
      const got = await this.admin(method, path, body).catch((error: unknown) => String(error));
      return got === status ? undefined : `${what}: ${got}`;
    };
    const passedSince = async (node: string) => {
      const record = await this.nodeRecord(node);
      return record?.lastSuccessAt && record.lastSuccessAt >= sinceIso
        ? undefined
        : `${node} has not passed since its restart`;
    };
    const probes: (() => Promise<string | undefined>)[] = [];
    const api = () => expect('api', 'GET', 'routes?limit=1', 200);
    const routing = () => expect('routing', 'GET', 'routes/00000000-0000-4000-8000-000000000000', 404);
    const registration = () => expect('registration', 'POST', 'enrollment-tokens', 201, {});
    const certificates = () => expect('certificates', 'GET', 'ca.pem', 200);
    const projector = () => expect('projector', 'GET', 'admin/projections/status', 200);
    switch (component) {
      case 'api':
        probes.push(api);
        break;
      case 'routing':
        probes.push(routing);
        break;
      case 'registration':
        probes.push(registration);
        break;
      case 'certificates':
        probes.push(certificates);
        break;
      case 'projector':
        probes.push(projector);
        break;
      case 'nats-server':
        probes.push(routing, certificates, projector, registration);
        break;
      case 'proxy-sync':
        probes.push(() => passedSince(NODE));
        break;
      case 'proxy-sync-2':
        probes.push(() => passedSince(SECOND_NODE));
        break;
      case 'haproxy':
      case 'haproxy-2': {
        const front = this.fronts[component === 'haproxy' ? 0 : 1]!;
        probes.push(async () => {
          for (const route of this.untouched) {
            const probe = await once(front.ports.https, route, this.e2e.ca.certificatePem, 2_000);
            if (!probe.ok) return `${component}: ${route.hostname}: ${probe.detail}`;
          }
          return undefined;
        });
        break;
      }
      default:
        break; // the emulators: divergence() reads through them
    }
    for (const probe of probes) {
      const reason = await probe();
      if (reason) return reason;
    }
    return undefined;
  }

  /**
   * Why the system is not whole (undefined when it is). The component's own probe must have answered once
   * (`recovered` keeps that: some probes append to the log, and are not asked again).
   */
  async difference(
    component?: Component,
    since = 0,
    recovered: { done: boolean } = { done: true },
  ): Promise<string | undefined> {
    const pending = this.churn.pending();
    if (pending > 0) return `${pending} command(s) not acknowledged`;
    if (this.killing.size > 0) return `${[...this.killing].join(', ')} being restarted`;
    if (component && !recovered.done) {
      const reason = await this.recovery(component, since);
      if (reason) return reason;
      recovered.done = true;
    }
    const end = await this.lastSequence();
    const position = await projectorPosition(this.e2e.stack);
    if (position < end) return `projector at ${position} of ${end}`;
    for (const node of [NODE, SECOND_NODE]) {
      const record = await this.nodeRecord(node);
      if (record?.status !== 'in-sync') return `${node} is ${record?.status}: ${record?.detail ?? ''}`;
    }
    const routes = await this.e2e.projectedRoutes();
    const crl = await this.publishedCrl();
    for (const [index, front] of this.fronts.entries()) {
      const reason = await frontDivergence(front, routes, crl);
      if (reason) return `front ${index + 1}: ${reason}`;
    }
    return undefined;
  }

  private async converged(
    component: Component | undefined,
    since: number,
    timeoutMs = this.options.convergeTimeoutMs,
  ): Promise<{ at?: number; reason?: string; waited: [string, number][] }> {
    const deadline = Date.now() + timeoutMs;
    let reason: string | undefined = 'not checked';
    // What it waited for, in order: each kind of difference and when it was last seen (s since `since`).
    const waited: [string, number][] = [];
    const recovered = { done: false };
    let lastKind = '';
    while (Date.now() < deadline) {
      reason = await this.difference(component, since, recovered).catch((error: unknown) => String(error));
      if (reason === undefined) return { at: Date.now(), waited };
      // Differences of one kind (numbers aside) are one entry: the first seen, until when.
      const kind = reason.replace(/\d+/g, 'N').slice(0, 60);
      const at = round((Date.now() - since) / 1000, 2);
      if (lastKind === kind) waited.at(-1)![1] = at;
      else waited.push([reason.slice(0, 400), at]);
      lastKind = kind;
      await sleep(50);
    }
    await this.diagnose(reason);
    return { reason, waited };
  }

  /** What a run that did not converge looked like: checkpoints, the log's end, the services' last words. */
  private async diagnose(reason: string | undefined): Promise<void> {
    line({ diagnosis: reason });
    const checkpoints: unknown[] = await this.e2e.stack.db.dataSource
      .query('SELECT projection, last_sequence FROM projection_checkpoints ORDER BY projection')
      .catch((error: unknown) => [String(error)]);
    line({ checkpoints, last_sequence: await this.lastSequence().catch(String) });
    const end = await this.lastSequence().catch(() => 0);
    const store = new EventStore(this.nc, this.jsm, { registry: createDomainRegistry() });
    const tail: unknown[] = [];
    try {
      for await (const entry of store.readRaw({ fromSequence: Math.max(1, end - 4) }))
        tail.push({
          sequence: entry.sequence,
          subject: entry.subject,
          data: new TextDecoder().decode(entry.data).slice(0, 300),
        });
    } catch (error) {
      tail.push(String(error));
    }
    line({ log_tail: tail });
    const deadLetters: unknown[] = await this.e2e.stack.db.dataSource
      .query('SELECT * FROM dead_letters ORDER BY 1 DESC LIMIT 5')
      .catch((error: unknown) => [String(error)]);
    line({ dead_letters: deadLetters });
    for (const [name, running] of this.e2e.stack.processes)
      if (!name.startsWith('agent-')) line({ process: name, output: running.output().slice(-1500) });
    for (const emulator of this.emulators)
      line({ process: emulator.name, output: emulator.process.output().slice(-1500) });
  }

  // ---------------------------------------------------------------------------------- the checks

  private async eventTypesSince(fromSequence: number): Promise<Record<string, number>> {
    const store = new EventStore(this.nc, this.jsm, { registry: createDomainRegistry() });
    const counts: Record<string, number> = {};
    for await (const event of store.readLog({ fromSequence }))
      counts[`${event.type}/${event.actor.id}`] = (counts[`${event.type}/${event.actor.id}`] ?? 0) + 1;
    return counts;
  }

  private async readLog(): Promise<StoredEvent[]> {
    const store = new EventStore(this.nc, this.jsm, { registry: createDomainRegistry() });
    const events: StoredEvent[] = [];
    for await (const event of store.readLog()) events.push(event);
    return events;
  }

  /** Waits until the log stopped growing and every projection applied all of it; returns its end. */
  private async quiet(timeoutMs = 30_000): Promise<number> {
    return waitFor(
      'the log to be quiet and projected',
      async () => {
        const end = await this.lastSequence();
        if ((await projectorPosition(this.e2e.stack)) < end) return undefined;
        await sleep(300);
        return (await this.lastSequence()) === end ? end : undefined;
      },
      { timeoutMs, intervalMs: 50 },
    );
  }

  private async finish(): Promise<FaultReport> {
    const problems: string[] = [];
    const churnEndedAt = Date.now();
    // The last commands in flight are retried until acknowledged (or given up on).
    const stopping = this.churn.stop();
    const gaveUp = setTimeout(() => this.churn.abandon(), 60_000);
    await stopping;
    clearTimeout(gaveUp);
    const final = await this.converged(undefined, 0, 30_000);
    if (final.reason) problems.push(`the system did not converge after the churn: ${final.reason}`);
    await this.traffic.stop();

    // 1. Every acknowledged command's effect is in the log exactly once.
    const end = await this.quiet(90_000).catch(async (error: unknown) => {
      problems.push(`the log was not projected: ${String(error)}`);
      return this.lastSequence();
    });
    const events = await this.readLog();
    const ledger = this.churn.ledger;
    const check = checkLog(ledger, events);
    problems.push(...check.problems);

    // 2. The routes projection holds what the acknowledged commands left.
    const expected = this.churn.expected();
    const projected = await this.e2e.projectedRoutes();
    const churned = projected.filter(
      (route) => !this.untouched.some((kept) => kept.hostname === route.hostname),
    );
    let stateMismatches = 0;
    for (const route of churned) {
      const want = expected.get(route.routeId);
      const app = want
        ? this.apps[this.agents.findIndex((agent) => agent.agentId === want.agentId)]![want.app]!
        : undefined;
      if (!want || want.hostname !== route.hostname || app?.port !== route.target.port) {
        stateMismatches++;
        problems.push(
          `projection: route ${route.routeId} ${route.hostname} → ${route.target.port} not as acknowledged (${JSON.stringify(want)})`,
        );
      }
    }
    for (const [routeId, want] of expected)
      if (!churned.some((route) => route.routeId === routeId)) {
        stateMismatches++;
        problems.push(`projection: acknowledged live route ${routeId} ${want.hostname} is missing`);
      }
    for (const kept of this.untouched)
      if (!projected.some((route) => route.hostname === kept.hostname)) {
        stateMismatches++;
        problems.push(`projection: untouched route ${kept.hostname} is missing`);
      }

    // 3. The projections equal a fresh rebuild of the log (as of the same sequence).
    const rebuildDifferences = await this.compareWithRebuild(end);
    problems.push(...rebuildDifferences.map((difference) => `rebuild: ${difference}`));

    // 4. Every HAProxy holds exactly the projection, and serves every live route from the right app.
    const mapDifferences: string[] = [];
    const crl = await this.publishedCrl();
    for (const [index, front] of this.fronts.entries()) {
      const reason = await frontDivergence(front, projected, crl);
      if (reason) mapDifferences.push(`front ${index + 1}: ${reason}`);
    }
    problems.push(...mapDifferences);
    let routeErrors = 0;
    for (const route of churned) {
      const want = expected.get(route.routeId);
      if (!want) continue;
      for (const [index, front] of this.fronts.entries()) {
        const body = `${want.agentId}/app${want.app} ${route.hostname} https`;
        const probe = await once(
          front.ports.https,
          { hostname: route.hostname, body },
          this.e2e.ca.certificatePem,
        );
        if (!probe.ok) {
          routeErrors++;
          problems.push(`front ${index + 1}: ${route.hostname}: ${probe.detail}`);
        }
      }
    }
    const notActive = await this.notActive();
    if (notActive.length > 0)
      problems.push(`${notActive.length} live route(s) not active: ${notActive.slice(0, 5).join('; ')}`);

    // 5. Traffic to the untouched routes: failures during kills of that front's HAProxy are apart.
    const windows = this.kills
      .filter((kill) => kill.component === 'haproxy' || kill.component === 'haproxy-2')
      .map((kill) => ({
        front: kill.component === 'haproxy' ? 0 : 1,
        from: kill.killedAt,
        to: kill.convergeS === null ? Infinity : kill.killedAt + kill.convergeS * 1000,
      }));
    const duringHaproxyKill = this.traffic.failures.filter((failure) =>
      windows.some(
        (window) =>
          window.front === failure.front && failure.end >= window.from && failure.start <= window.to,
      ),
    );
    const outside = this.traffic.failures.filter((failure) => !duringHaproxyKill.includes(failure));
    for (const failure of outside.slice(0, 10)) {
      const at = round((failure.start - this.churnStartedAt) / 1000, 2);
      problems.push(
        `untouched route failed outside HAProxy kills: front ${failure.front + 1} ${failure.hostname} at ${at}s: ${failure.detail}`,
      );
    }

    this.supervisorStopped = true;
    await this.supervisor;
    for (const crash of this.crashes)
      problems.push(
        `${crash.component} exited by itself (${crash.exit}) at ${crash.atS}s:\n${crash.output.slice(-1500)}`,
      );
    const converge = this.kills.map((kill) => kill.convergeS ?? Infinity).sort((a, b) => a - b);
    const byComponent: Record<string, number> = {};
    for (const kill of this.kills) byComponent[kill.component] = (byComponent[kill.component] ?? 0) + 1;
    const acked = ledger.filter((command) => command.ackedAt !== undefined);
    const figures: Figures = {
      seed: this.options.seed,
      kills: this.kills.length,
      kills_planned: this.options.kills,
      kills_haproxy: windows.length,
      haproxy_worker_kill_outcomes:
        [...new Set(this.kills.flatMap((kill) => (kill.outcome ? [kill.outcome] : [])))].join(',') || null,
      kills_with_commands_in_flight: this.kills.filter((kill) => kill.commandsInFlight > 0).length,
      kills_by_component: JSON.stringify(byComponent),
      agents: this.agents.length,
      fronts: this.fronts.length,
      commands: ledger.length,
      acknowledged: acked.length,
      acknowledged_create: acked.filter((command) => command.kind === 'create').length,
      acknowledged_update: acked.filter((command) => command.kind === 'update').length,
      acknowledged_remove: acked.filter((command) => command.kind === 'remove').length,
      retried: ledger.filter((command) => command.attempts.length > 1).length,
      unacknowledged: ledger.filter((command) => command.ackedAt === undefined && !command.rejected).length,
      rejected: ledger.filter((command) => command.rejected).length,
      unexpected_exits: this.crashes.length,
      unexpected_exits_by_component: JSON.stringify(
        Object.fromEntries(
          COMPONENTS.map((c) => [c, this.crashes.filter((x) => x.component === c).length]).filter(
            ([, n]) => n,
          ),
        ),
      ),
      lost: check.lost,
      duplicated: check.duplicated,
      wrong_effect: check.wrongEffect,
      state_mismatches: stateMismatches,
      rebuild_differences: rebuildDifferences.length,
      map_differences: mapDifferences.length,
      live_routes: churned.length,
      live_route_errors: routeErrors,
      routes_not_active: notActive.length,
      converge_max_s_by_component: JSON.stringify(
        Object.fromEntries(
          COMPONENTS.filter((component) => byComponent[component]).map((component) => [
            component,
            Math.max(
              ...this.kills
                .filter((kill) => kill.component === component)
                .map((kill) => kill.convergeS ?? Infinity),
            ),
          ]),
        ),
      ),
      converge_p50_s: converge.length > 0 ? round(percentile(converge, 50), 2) : null,
      converge_max_s:
        converge.length > 0 ? (Number.isFinite(converge.at(-1)!) ? round(converge.at(-1)!, 2) : null) : null,
      untouched_routes: this.untouched.length,
      untouched_requests: this.traffic.requests,
      failed_requests_untouched: outside.length,
      failed_requests_untouched_haproxy_kills: duringHaproxyKill.length,
      log_events: events.length,
      reconcile_interval_ms: this.options.reconcileIntervalMs,
      churn_s: round((churnEndedAt - this.churnStartedAt) / 1000, 1),
    };
    const path = await writeFigures(this.options.resultsName, {
      ...figures,
      kill_log: JSON.stringify(
        this.kills.map((kill) => ({
          kill: kill.index,
          component: kill.component,
          at_s: kill.atS,
          downtime_ms: kill.downtimeMs,
          in_flight: kill.commandsInFlight,
          converged_s: kill.convergeS,
          ...(kill.outcome ? { haproxy: kill.outcome } : {}),
          ...(kill.notConverged ? { not_converged: kill.notConverged, recovered_s: kill.recoveredS } : {}),
          waited: kill.waited,
        })),
      ),
    });
    progress(`faults: figures written to ${path}`);
    line({ phase: 'figures', ...figures });
    for (const problem of problems.slice(0, 30)) line({ problem });
    return { figures, kills: this.kills, problems };
  }

  /** Live routes whose status is not `active` (applied by every proxy node), after a short wait. */
  private async notActive(): Promise<string[]> {
    let left: string[] = [];
    await waitFor(
      'every live route to be active',
      async () => {
        const rows: { route_id: string; hostname: string; status: string }[] =
          await this.e2e.stack.db.dataSource.query(
            `SELECT route_id, hostname, status FROM routes WHERE removed_at IS NULL AND status <> 'active'`,
          );
        left = rows.map((row) => `${row.hostname} ${row.status}`);
        return left.length === 0;
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    ).catch(() => undefined);
    return left;
  }

  /**
   * Rebuilds every projection from the log into a time-travel view as of `end` (through the admin API and
   * the projector) and compares it row by row with the live tables, which are at `end` too.
   */
  private async compareWithRebuild(end: number): Promise<string[]> {
    const db = this.e2e.stack.db.dataSource;
    let live = await snapshot(db);
    let at = end;
    for (let attempt = 0; attempt < 10; attempt++) {
      // The live tables must be exactly at `at`: nothing appended while they were read.
      if ((await this.lastSequence()) === at && (await projectorPosition(this.e2e.stack)) === at) break;
      at = await this.quiet();
      live = await snapshot(db);
    }
    const label = `faults_${this.options.seed % 1_000_000}`;
    const started = await this.e2e.request('POST', 'admin/projections/all/rebuild', {
      body: { mode: 'inspect', asOf: { sequence: at }, label },
    });
    if (started.status !== 202) return [`rebuild refused: ${started.status} ${JSON.stringify(started.body)}`];
    await rebuildFinished(this.e2e.stack, this.e2e.admin, started.body.id as string);
    const rebuilt = await snapshot(db, `asof_${label}`);
    const found = differences(rebuilt, live);
    // The API's view of the same: GET routes against the view's routes.
    const liveRoutes = await this.e2e.request('GET', 'routes?limit=500');
    const viewRoutes = await this.e2e.request(
      'GET',
      `admin/projections/schemas/asof_${label}/routes?limit=500`,
    );
    if ((await this.lastSequence()) === at) {
      const strip = (body: Record<string, unknown>) => JSON.stringify(body.routes);
      if (strip(liveRoutes.body) !== strip(viewRoutes.body))
        found.push('GET routes differs from the rebuilt view');
    }
    return found;
  }
}
