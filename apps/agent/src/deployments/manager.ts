import {
  credentialsBoxInfo,
  databaseRequestMessage,
  DEPLOYMENT_TOPICS,
  deploymentAssignedMessage,
  deploymentChangedMessage,
  Redactor,
  type AppConfig,
  type DatabaseEngine,
  type RouteCommandResult,
  type RouteView,
} from '#contracts';
import { seal } from '#pki-client';
import type { Logger } from '#platform';
import type { AgentConfig } from '../config.js';
import type { AgentContext, AgentExtension, HandlerRegistry } from '../handlers.js';
import type { LivePaths } from '../certificates/store.js';
import { databaseFiles, Databases } from './database.js';
import { passHealthGate } from './health.js';
import { killReleaseGroup, processStartTime } from './isolation.js';
import { FileTail, LogShipper } from './log-shipper.js';
import { allocatePort } from './ports.js';
import { ContainerEngine } from './container-engine.js';
import { ContainerRuntime, Runtimes } from './container-runtime.js';
import { ProcessRuntime, releaseKey } from './process-runtime.js';
import type { AppPlace, Instance } from './runtime.js';
import { DeploymentState } from './state.js';
import { APP_PATH, databaseCheck, DeploymentWorker, receiveSecrets, Slots } from './worker.js';

/** What deployments need of the agent's certificate (the CertificateManager): databases serve it. */
export interface AgentCertificates {
  livePaths(): Promise<LivePaths | null>;
  addNames(source: () => string[]): void;
  onInstalled(listener: () => Promise<void>): void;
  refresh(): Promise<void>;
  currentNames(): Promise<string[]>;
}

/** How long a database's switch waits for the agent's certificate to carry its new name. */
const NAME_WAIT_MS = 15_000;

/** What `deployments.assigned` answers: the agent's whole desired state. */
export interface AssignedState {
  publicAddress: string | null;
  apps: AssignedApp[];
  inFlight: { deploymentId: string; appName: string; status: string }[];
}

export interface AssignedApp {
  appName: string;
  hostname: string;
  routeId: string | null;
  current: { releaseId: string; number: number; port: number; commit: string | null } | null;
  keptReleases: { releaseId: string; number: number }[];
  releasesKept: number;
  drain: AppConfig['drain'];
  limits: AppConfig['limits'];
  healthCheck: AppConfig['healthCheck'];
  activeDeploymentId: string | null;
  /** A managed database (its engine), or null for an app. */
  database: { engine: DatabaseEngine } | null;
}

/** Restarts of a serving release that keeps dying wait 1 s, 2 s, 4 s … up to a minute. */
export function restartDelayMs(failures: number): number {
  return Math.min(60_000, 1_000 * 2 ** Math.min(failures, 6));
}
/** A release that ran this long before it died starts its backoff from the beginning again. */
export const STABLE_AFTER_MS = 60_000;

interface Serving {
  instance: Instance;
  tails: FileTail[];
  shipper: LogShipper;
}

interface Supervision {
  failures: number;
  nextAttemptAt: number;
  /** The deployment whose log the dead instance wrote to (the one that started it: a rollback's own). */
  deploymentId?: string;
}

/**
 * The agent's deployments (docs/plans/deployments.md §7): a worker per deployment (one per app at a time),
 * the serving releases supervised and restarted with backoff, and a level-triggered reconcile towards what
 * the front assigns (`deployments.assigned`): the current release runs, the route points at it, nothing
 * else of the app runs, and releases beyond those kept are removed. Pokes from the front only wake it.
 */
export class DeploymentManager implements AgentExtension {
  private context?: AgentContext;
  private readonly state: DeploymentState;
  private readonly runtime: Runtimes;
  private readonly stopping = new AbortController();
  private readonly workers = new Map<string, DeploymentWorker>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly serving = new Map<string, Serving>();
  private readonly supervision = new Map<string, Supervision>();
  private readonly busy = new Set<string>();
  /** Deployments this agent ran: until the projections show them ended, their apps are left alone. */
  private readonly handled = new Set<string>();
  private readonly reservedPorts = new Map<number, number>();
  private readonly slots: Slots;
  private assigned: AssignedState | null = null;
  private publicAddress: string | null = null;
  private ready?: Promise<boolean>;
  /** Set once `prepare` succeeded: recovery of the previous run is done, new work may start. */
  private prepared = false;
  private reconciling = false;
  private reconcileAgain = false;
  private reconcileTimer?: NodeJS.Timeout;
  private superviseTimer?: NodeJS.Timeout;
  private portLock: Promise<unknown> = Promise.resolve();
  private unreachableLogged = false;

  private readonly databases: Databases;

  constructor(
    private readonly config: AgentConfig,
    private readonly agentVersion: string,
    private readonly logger: Logger,
    private readonly certificates?: AgentCertificates,
  ) {
    this.state = new DeploymentState(config.stateDir);
    const processes = new ProcessRuntime(config.deployments, this.state, logger);
    const container = config.deployments.container;
    this.runtime = new Runtimes(
      processes,
      container
        ? new ContainerRuntime(
            new ContainerEngine(container.socket),
            processes,
            config.deployments,
            this.state,
            logger.child({ runtime: 'container' }),
          )
        : null,
    );
    this.slots = new Slots(config.deployments.maxConcurrentBuilds);
    this.databases = new Databases(
      this.state,
      certificates ? () => certificates.livePaths() : undefined,
      config.deployments.isolation === 'uid',
      config.deployments.backupsKept,
    );
    // Each database's name joins the certificate once its route is this agent's; a new pair is loaded
    // by every database that runs.
    certificates?.addNames(() => [
      ...(this.assigned?.apps.filter((app) => app.database).map((app) => app.hostname) ?? []),
      // A first deployment's database is not among the assigned apps the agent knows yet.
      ...[...this.workers.values()].flatMap((worker) => worker.databaseHostname ?? []),
    ]);
    certificates?.onInstalled(() => this.reloadDatabaseTls());
  }

  /** Every running database loads the agent's new certificate (no restart, clients stay connected). */
  private async reloadDatabaseTls(): Promise<void> {
    const databases = new Map<string, DatabaseEngine>();
    for (const app of this.assigned?.apps ?? [])
      if (app.database) databases.set(app.appName, app.database.engine);
    // A first deployment's database is not among the assigned apps the agent knows yet.
    for (const worker of this.workers.values())
      if (worker.databaseEngine) databases.set(worker.appName, worker.databaseEngine);
    for (const [appName, engine] of databases) {
      if (!(await this.runs(appName))) continue;
      try {
        await this.databases.reloadTls(await this.runtime.prepareApp(appName), engine);
        this.logger.info('a database loaded the new certificate', { app: appName });
      } catch (error) {
        // The others still load it; this one gets it at its next start (prepare copies the pair).
        this.logger.warn('a database could not load the new certificate', { app: appName, error });
      }
    }
  }

  private get settings() {
    return this.config.deployments;
  }

  register(handlers: HandlerRegistry): this {
    if (!this.settings.enabled) return this;
    handlers.register(DEPLOYMENT_TOPICS.assigned, (message) => {
      // The poke names the deployment: claim it now rather than after the projections show it (the
      // claim is the front's check that it is this agent's and still waits). Anything else: a full pass.
      const parsed = deploymentAssignedMessage.safeParse(message.json);
      if (parsed.success && this.canStartAtOnce(parsed.data.appName, parsed.data.deploymentId))
        this.startWorker(parsed.data.deploymentId, parsed.data.appName);
      else this.reconcileSoon();
    });
    handlers.register(DEPLOYMENT_TOPICS.changed, (message) => {
      const parsed = deploymentChangedMessage.safeParse(message.json);
      if (!parsed.success) return;
      const worker = this.workers.get(parsed.data.deploymentId);
      worker?.poke(parsed.data);
      if (!worker) this.reconcileSoon();
    });
    handlers.register(DEPLOYMENT_TOPICS.database, (message, context) =>
      this.answerDatabase(message.json, context),
    );
    return this;
  }

  /** Rotations done, by request id: a redelivered request answers with the password it made. */
  private readonly rotations = new Set<string>();

  /**
   * An admin's request about one of this agent's databases: its credentials (a new password with
   * `rotate`), sealed to the key of that one request so that only the API process that asked can read
   * them; a backup; the list of backups; a restore.
   */
  private async answerDatabase(json: unknown, context: AgentContext): Promise<void> {
    const parsed = databaseRequestMessage.safeParse(json);
    if (!parsed.success) return;
    const request = parsed.data;
    // Read late (the agent was offline): nobody waits for it any more, and a rotation nobody sees is harm.
    if (!(Date.parse(request.expiresAt) > Date.now())) {
      this.logger.info('a database request came after it expired; not answered', { app: request.appName });
      return;
    }
    const answer = (body: Record<string, unknown>) =>
      context.publish(DEPLOYMENT_TOPICS.database, { requestId: request.requestId, ...body });
    if (!(await (this.ready ?? Promise.resolve(false)))) {
      answer({ error: 'deployments are off on this agent' });
      return;
    }
    let assigned = this.assigned;
    if (!assigned?.apps.some((app) => app.appName === request.appName))
      assigned = await this.request<AssignedState>('deployments.assigned', {}, 5_000).catch(() => assigned);
    const app = assigned?.apps.find((candidate) => candidate.appName === request.appName);
    if (!app?.database) {
      answer({ error: `this agent runs no database ${request.appName}` });
      return;
    }
    const operation = request.operation;
    try {
      const place = await this.runtime.prepareApp(app.appName);
      const engine = app.database.engine;
      switch (operation.kind) {
        case 'credentials': {
          let credentials = await this.databases.credentials(app.appName);
          if (operation.rotate && !this.rotations.has(request.requestId)) {
            // Not while a deployment, a restart or a restore has the database: its ACL and the
            // stored password would part ways.
            if (!(await this.idle(app.appName)))
              throw new Error(
                'the database is being deployed, restarted or restored: try again when that ended',
              );
            this.busy.add(app.appName);
            try {
              credentials = await this.databases.rotate(place, engine, await this.runs(app.appName));
            } finally {
              this.busy.delete(app.appName);
            }
            this.rotations.add(request.requestId);
            this.logger.info('database password rotated', { app: app.appName });
          }
          const secret = {
            user: credentials.user,
            password: credentials.password,
            rotatedAt: credentials.rotatedAt,
          };
          answer({
            sealed: seal(operation.publicKey, JSON.stringify(secret), credentialsBoxInfo(request.requestId)),
          });
          return;
        }
        case 'backup': {
          if (!(await this.runs(app.appName)))
            throw new Error('the database is not running: nothing to back up');
          const backup = await this.databases.startBackup(place, engine);
          this.logger.info('database backup started', { app: app.appName, backupId: backup.backupId });
          answer({ backup });
          return;
        }
        case 'backups':
          answer({ backups: await this.databases.listBackups(place) });
          return;
        case 'restore':
          // Not in the handler: the message is acknowledged now, and the answer comes when it is done.
          void this.restoreDatabase(app, place, operation.backupId).then(
            (backup) => answer({ backup }),
            (error: unknown) => {
              this.logger.warn('a database restore failed', { app: app.appName, error });
              answer({ error: `restore: ${(error as Error).message}`.slice(0, 300) });
            },
          );
          return;
      }
    } catch (error) {
      this.logger.warn('a database request failed', { app: app.appName, operation: operation.kind, error });
      answer({ error: `${operation.kind}: ${(error as Error).message}`.slice(0, 300) });
    }
  }

  /**
   * Waits a little for the app to be left alone (the supervisor's look, the end of a deployment take
   * moments); false when it is still taken after that.
   */
  private async idle(appName: string, waitMs = 5_000): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    while (this.hasWorker(appName) || this.busy.has(appName)) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return true;
  }

  private async runs(appName: string): Promise<boolean> {
    const record = await this.state.record(appName);
    for (const instance of record.instances)
      if ((await this.runtime.inspect(instance)).state === 'running') return true;
    return false;
  }

  /**
   * Stops the database, gives it the backup's data and starts its current release again (health gate
   * included); the supervisor leaves it alone meanwhile.
   */
  private async restoreDatabase(app: AssignedApp, place: AppPlace, backupId: string) {
    if (!(await this.idle(app.appName)))
      throw new Error('the database is being deployed or restarted: try again when that ended');
    if (!app.current) throw new Error('the database has no current release');
    this.busy.add(app.appName);
    try {
      const backup = await this.databases.checkBackup(place, backupId);
      for (const instance of (await this.state.record(app.appName)).instances)
        await this.stopInstance(place, instance, app);
      const aside = await this.databases.restoreFiles(place, app.database!.engine, backupId);
      this.logger.info('database data replaced by a backup; starting it again', {
        app: app.appName,
        backupId,
        previousData: aside,
      });
      const port = await this.restart(app, place);
      if (port === null)
        throw new Error(
          `the database did not pass its health check with the restored data (see its log); the data it had is in ${aside} on the VPS`,
        );
      if (port !== app.current.port) this.reconcileSoon();
      return backup;
    } finally {
      this.busy.delete(app.appName);
    }
  }

  connected(context: AgentContext): void {
    if (!this.settings.enabled) return;
    this.context = context;
    this.ready ??= this.prepare();
    void this.ready.then((ok) => {
      if (!ok) return;
      this.reconcileSoon();
      this.reconcileTimer = setInterval(() => {
        this.reconcileSoon();
        if (this.runtime.containers && !this.containersUp) void this.probeContainers();
      }, this.settings.reconcileIntervalMs);
      this.reconcileTimer.unref();
      this.superviseTimer = setInterval(() => void this.supervise(), this.settings.superviseIntervalMs);
      this.superviseTimer.unref();
    });
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    clearInterval(this.reconcileTimer);
    clearInterval(this.superviseTimer);
    // Workers leave their in-flight entries: the next start gives those deployments up. Apps run on.
    await Promise.allSettled([...this.running.values()]);
    for (const serving of this.serving.values()) {
      for (const tail of serving.tails) await tail.stop();
      serving.shipper.flush();
    }
  }

  /** What the heartbeat says this agent can run (the front refuses apps of another runtime). */
  private runtimesAvailable: ('process' | 'container')[] | null = null;
  private containersUp = false;

  heartbeat(): Record<string, unknown> {
    return this.runtimesAvailable ? { runtimes: this.runtimesAvailable } : {};
  }

  /** Whether the container engine answers (at start, and again while it does not). */
  private async probeContainers(): Promise<void> {
    const containers = this.runtime.containers;
    if (containers && !this.containersUp) {
      // Process releases run without it: an engine that is down fails container apps only.
      this.containersUp = await containers.probe().then(
        (engine) => {
          this.logger.info('container runtime ready', { ...engine });
          return true;
        },
        (error: unknown) => {
          this.logger.warn('the container engine does not answer: container apps fail until it does', {
            socket: this.settings.container?.socket,
            error,
          });
          return false;
        },
      );
    }
    this.runtimesAvailable = this.containersUp ? ['process', 'container'] : ['process'];
  }

  /** Probe, adopt what survived the last agent, and give up what it had claimed. */
  private async prepare(): Promise<boolean> {
    try {
      await this.state.init();
      const capabilities = await this.runtime.probe();
      const log = capabilities.isolation === 'none' ? this.logger.warn : this.logger.info;
      log.call(this.logger, 'deployments ready', { runtime: capabilities.kind, ...capabilities });
      await this.probeContainers();
      await this.recover();
      await this.adopt();
      this.prepared = true;
      return true;
    } catch (error) {
      this.logger.error('deployments are off on this agent: it cannot run apps', { error });
      return false;
    }
  }

  /** §7.7: what a killed agent left half-done. The old release was detached and kept serving. */
  private async recover(): Promise<void> {
    for (const entry of Object.values(await this.state.inflight())) {
      if (entry.command && (await processStartTime(entry.command.pid)) === entry.command.startTime) {
        await killReleaseGroup(entry.command.pid, undefined, { graceMs: 1_000 }).catch(() => undefined);
      }
      if (entry.workspace) {
        const place = await this.runtime.prepareApp(entry.appName);
        await this.runtime.removeWorkspace(place, entry.workspace);
      }
      try {
        await this.request('deployments.report', {
          deploymentId: entry.deploymentId,
          leaseId: entry.leaseId,
          report: { phase: 'released' },
        });
      } catch (error) {
        this.logger.info('a deployment of the previous run could not be given up (ended already?)', {
          deploymentId: entry.deploymentId,
          error,
        });
      }
      this.logger.warn('gave up a deployment the agent was running when it stopped', {
        deploymentId: entry.deploymentId,
        app: entry.appName,
      });
      // Its new instance, if any, is in the app's record: the reconcile stops it unless it is current.
      await this.state.clearInflight(entry.deploymentId);
    }
  }

  /** Releases still running from the previous agent process: their output is followed again. */
  private async adopt(): Promise<void> {
    for (const appName of await this.state.appNames()) {
      const record = await this.state.record(appName);
      const alive: Instance[] = [];
      for (const instance of record.instances) {
        const state = await this.runtime.inspect(instance).catch(() => ({ state: 'absent' }) as const);
        if (state.state === 'running') alive.push(instance);
      }
      await this.state.updateRecord(appName, (r) => {
        r.instances = r.instances.filter((i) =>
          alive.some((a) => a.pid === i.pid && a.startTime === i.startTime),
        );
      });
      for (const instance of alive) {
        await this.runtime.adopt(instance);
        const env = (await this.state.loadEnv(instance.releaseId)) ?? {};
        await this.follow(instance, this.redactorFor(env), true);
        this.logger.info('adopted a running release', {
          app: appName,
          release: instance.number,
          pid: instance.pid,
        });
      }
    }
  }

  /** Secret values among an env are what the app's lines must not show. */
  private redactorFor(env: Record<string, string>, secretNames?: readonly string[]): Redactor {
    const names = secretNames ?? Object.keys(env).filter((name) => !name.startsWith('CLOUDLUNACY_'));
    const values: Record<string, string> = {};
    for (const name of names) if (env[name] !== undefined && env[name].length >= 8) values[name] = env[name];
    return new Redactor(Object.fromEntries(Object.entries(values).slice(0, 100)));
  }

  private async follow(instance: Instance, redactor: Redactor, fromEnd: boolean): Promise<void> {
    const shipper = new LogShipper(
      instance.deploymentId,
      (topic, body) => this.context?.publish(topic, body),
      this.settings.logBatchMs,
    );
    const tails = await Promise.all([
      new FileTail(instance.stdoutPath, 'out', redactor, (lines) => shipper.push(lines)).start(fromEnd),
      new FileTail(instance.stderrPath, 'err', redactor, (lines) => shipper.push(lines)).start(fromEnd),
    ]);
    this.serving.set(instance.releaseId, { instance, tails, shipper });
  }

  private request<T>(command: string, body: unknown, timeoutMs = 15_000): Promise<T> {
    if (!this.context) return Promise.reject(new Error('not connected'));
    return this.context.request<T>(command, body, timeoutMs);
  }

  private reconcileSoon(): void {
    if (this.stopping.signal.aborted || !this.ready) return;
    void this.ready.then((ok) => (ok ? this.reconcile() : undefined));
  }

  /** One pass towards the assigned state; a pass asked for while one runs runs again after it. */
  private async reconcile(): Promise<void> {
    if (this.reconciling) {
      this.reconcileAgain = true;
      return;
    }
    this.reconciling = true;
    try {
      do {
        this.reconcileAgain = false;
        await this.reconcileOnce();
      } while (this.reconcileAgain && !this.stopping.signal.aborted);
    } finally {
      this.reconciling = false;
    }
  }

  private async reconcileOnce(): Promise<void> {
    let assigned: AssignedState;
    try {
      assigned = await this.request<AssignedState>('deployments.assigned', {}, 10_000);
      this.unreachableLogged = false;
    } catch (error) {
      if (!this.unreachableLogged)
        this.logger.warn('cannot ask the front for this agent’s apps; trying again', { error });
      this.unreachableLogged = true;
      return;
    }
    this.assigned = assigned;
    const active = new Set(assigned.apps.map((app) => app.activeDeploymentId));
    for (const id of this.handled) if (!active.has(id) && !this.workers.has(id)) this.handled.delete(id);
    this.publicAddress = assigned.publicAddress ?? this.config.publicAddress ?? null;
    if (!this.publicAddress) {
      this.logger.error('this agent has no public address: set publicAddress in its config');
      return;
    }
    for (const app of assigned.apps) {
      if (this.stopping.signal.aborted) return;
      if (this.hasWorker(app.appName) || this.busy.has(app.appName) || !this.settled(app, assigned)) continue;
      this.busy.add(app.appName);
      try {
        await this.reconcileApp(app, assigned);
      } catch (error) {
        this.logger.warn('reconcile of an app failed; the next pass tries again', {
          app: app.appName,
          error,
        });
      } finally {
        this.busy.delete(app.appName);
      }
    }
    for (const app of assigned.apps) {
      const waiting = assigned.inFlight.find(
        (entry) => entry.deploymentId === app.activeDeploymentId && entry.status === 'requested',
      );
      if (waiting && !this.hasWorker(app.appName) && !this.busy.has(app.appName))
        this.startWorker(waiting.deploymentId, app.appName);
    }
  }

  /**
   * Whether the assigned state of the app is news, not history: the read comes from projections, which
   * may not have the outcome of a deployment this agent just ran. Acting on it then would start the
   * release that was just drained and point the route back at it. So an app is converged only when no
   * deployment is active, or the active one waits for this agent's claim.
   */
  private settled(app: AssignedApp, assigned: AssignedState): boolean {
    const active = app.activeDeploymentId;
    if (active === null) return true;
    if (this.handled.has(active)) return false;
    return assigned.inFlight.some((entry) => entry.deploymentId === active && entry.status === 'requested');
  }

  private canStartAtOnce(appName: string, deploymentId: string): boolean {
    return (
      this.prepared &&
      this.publicAddress !== null &&
      !this.handled.has(deploymentId) &&
      !this.hasWorker(appName) &&
      !this.busy.has(appName)
    );
  }

  private hasWorker(appName: string): boolean {
    return [...this.workers.values()].some((worker) => worker.appName === appName);
  }

  private startWorker(deploymentId: string, appName: string): void {
    if (this.workers.has(deploymentId) || this.stopping.signal.aborted || !this.context) return;
    const worker = new DeploymentWorker(deploymentId, appName, {
      agentVersion: this.agentVersion,
      config: this.settings,
      context: this.context,
      runtime: this.runtime,
      state: this.state,
      logger: this.logger.child({ deploymentId, app: appName }),
      publicAddress: this.publicAddress!,
      buildSlot: this.slots,
      reservePort: () => this.reservePort(),
      stopping: this.stopping.signal,
      keepShipping: (instance, tails, shipper) => {
        this.serving.set(instance.releaseId, { instance, tails, shipper });
        this.supervision.delete(appName);
      },
      databases: this.databases,
      routedNamesChanged: async (hostname) => {
        const certificates = this.certificates;
        if (!certificates) return;
        // The front may not count the name as this agent's at once (its projection follows the log):
        // ask again until the certificate carries it.
        const deadline = Date.now() + NAME_WAIT_MS;
        while (!(await certificates.currentNames()).includes(hostname)) {
          if (Date.now() > deadline) throw new Error(`the certificate does not carry ${hostname} yet`);
          await certificates.refresh();
          if (!(await certificates.currentNames()).includes(hostname))
            await new Promise((resolve) => setTimeout(resolve, 250));
        }
      },
    });
    this.workers.set(deploymentId, worker);
    this.handled.add(deploymentId);
    const run = worker
      .run()
      .catch((error: unknown) => this.logger.error('a deployment worker failed', { deploymentId, error }))
      .finally(() => {
        this.workers.delete(deploymentId);
        this.running.delete(deploymentId);
        this.reconcileSoon();
      });
    this.running.set(deploymentId, run);
  }

  /** Ports held by the agent's releases, plus those handed out in the last minute and not yet recorded. */
  private async usedPorts(): Promise<Set<number>> {
    const used = new Set<number>();
    for (const appName of await this.state.appNames())
      for (const instance of (await this.state.record(appName)).instances) used.add(instance.port);
    const now = Date.now();
    for (const [port, at] of this.reservedPorts) {
      if (now - at > 60_000) this.reservedPorts.delete(port);
      else used.add(port);
    }
    return used;
  }

  private reservePort(): Promise<number> {
    const next = this.portLock.then(async () => {
      const port = await allocatePort(this.settings.portRange, await this.usedPorts(), this.publicAddress!);
      this.reservedPorts.set(port, Date.now());
      return port;
    });
    this.portLock = next.catch(() => undefined);
    return next;
  }

  private async reconcileApp(app: AssignedApp, assigned: AssignedState): Promise<void> {
    const place = await this.runtime.prepareApp(app.appName);
    const current = app.current;
    let servingPort: number | null = null;
    if (current) servingPort = await this.ensureServing(app, place);
    // Only this agent's workers move the route; with none running, it must point at the current release.
    if (current && servingPort !== null && app.routeId) {
      const route = await this.request<RouteView>('routes.get', { routeId: app.routeId });
      if (route.target.host !== this.publicAddress || route.target.port !== servingPort) {
        this.logger.warn('the app’s route does not point at its current release; repairing it', {
          app: app.appName,
          target: route.target,
          port: servingPort,
        });
        await this.request<RouteCommandResult>('routes.update', {
          routeId: app.routeId,
          target: { host: this.publicAddress, port: servingPort },
        });
      }
    }
    // Nothing else of the app runs: the new release of an abandoned deployment, an old one not drained.
    const record = await this.state.record(app.appName);
    for (const instance of record.instances) {
      if (current && instance.releaseId === current.releaseId) continue;
      this.logger.info('stopping a release that is not the current one', {
        app: app.appName,
        release: instance.number,
        pid: instance.pid,
      });
      await this.stopInstance(place, instance, app);
    }
    // Releases beyond those kept go (never the current one, never one a deployment of the app still needs).
    const keep = new Set([
      ...app.keptReleases.map((release) => release.releaseId),
      ...(current ? [current.releaseId] : []),
    ]);
    for (const entry of assigned.inFlight) if (entry.appName === app.appName) keep.add(entry.deploymentId);
    for (const artifact of record.artifacts) {
      if (keep.has(artifact.releaseId)) continue;
      this.logger.info('removing a release that is not kept', { app: app.appName, release: artifact.number });
      await this.runtime.removeArtifact(place, artifact);
      await this.state.removeEnv(artifact.releaseId);
      await this.state.removeLogsStartingWith(app.appName, [
        `${releaseKey(artifact)}-`,
        `${artifact.releaseId.slice(0, 8)}-`,
      ]);
      await this.state.updateRecord(app.appName, (r) => {
        r.artifacts = r.artifacts.filter((a) => a.releaseId !== artifact.releaseId);
      });
    }
  }

  private async stopInstance(place: AppPlace, instance: Instance, app: AssignedApp): Promise<void> {
    const serving = this.serving.get(instance.releaseId);
    if (serving && serving.instance.pid === instance.pid) {
      this.serving.delete(instance.releaseId);
      for (const tail of serving.tails) await tail.stop();
      serving.shipper.flush();
    }
    await this.runtime.stop(place, instance, {
      timeoutMs: app.drain.stopTimeoutSeconds * 1000,
      limits: app.limits,
    });
    await this.state.removeInstance(app.appName, instance);
  }

  /** Every few moments: a serving release that died is started again, with backoff. */
  private async supervise(): Promise<void> {
    const assigned = this.assigned;
    if (!assigned || this.stopping.signal.aborted) return;
    for (const app of assigned.apps) {
      if (
        !app.current ||
        this.hasWorker(app.appName) ||
        this.busy.has(app.appName) ||
        !this.settled(app, assigned)
      )
        continue;
      this.busy.add(app.appName);
      try {
        const place = await this.runtime.prepareApp(app.appName);
        const port = await this.ensureServing(app, place);
        if (port !== null && port !== app.current.port) this.reconcileSoon();
      } catch (error) {
        this.logger.warn('supervising an app failed', { app: app.appName, error });
      } finally {
        this.busy.delete(app.appName);
      }
    }
  }

  /**
   * The app's current release runs: found running, or started again (after the backoff its failures
   * earned) on its port, or on another when that one is taken. Returns the port it serves on, or null.
   */
  private async ensureServing(app: AssignedApp, place: AppPlace): Promise<number | null> {
    const current = app.current!;
    const record = await this.state.record(app.appName);
    const running = record.instances.filter((i) => i.releaseId === current.releaseId);
    for (const instance of running) {
      const state = await this.runtime.inspect(instance);
      if (state.state === 'running') {
        if (!this.serving.has(instance.releaseId)) {
          await this.follow(
            instance,
            this.redactorFor((await this.state.loadEnv(instance.releaseId)) ?? {}),
            true,
          );
        }
        return instance.port;
      }
      // It died: say so in its deployment's log, forget it, and back off before starting it again.
      const serving = this.serving.get(instance.releaseId);
      const uptime = Date.now() - Date.parse(instance.startedAt);
      const supervision = this.supervision.get(app.appName) ?? { failures: 0, nextAttemptAt: 0 };
      if (uptime >= STABLE_AFTER_MS) supervision.failures = 0;
      const delay = restartDelayMs(supervision.failures);
      supervision.failures++;
      supervision.nextAttemptAt = Date.now() + delay;
      supervision.deploymentId = instance.deploymentId;
      this.supervision.set(app.appName, supervision);
      const how =
        state.state === 'exited'
          ? state.signal
            ? `was killed by ${state.signal}`
            : `exited with code ${state.exitCode}`
          : 'is gone';
      if (serving) {
        for (const tail of serving.tails) await tail.stop();
        serving.shipper.sys(`release ${instance.number} ${how}; restarting in ${Math.round(delay / 1000)} s`);
        serving.shipper.flush();
        this.serving.delete(instance.releaseId);
      }
      this.logger.warn('a serving release stopped; restarting it with backoff', {
        app: app.appName,
        release: instance.number,
        how,
        restartInMs: delay,
      });
      await this.runtime
        .stop(place, instance, { timeoutMs: 1_000, limits: app.limits })
        .catch(() => undefined);
      await this.state.removeInstance(app.appName, instance);
      return null;
    }
    const supervision = this.supervision.get(app.appName);
    if (supervision && Date.now() < supervision.nextAttemptAt) return null;
    return this.restart(app, place);
  }

  private async restart(app: AssignedApp, place: AppPlace): Promise<number | null> {
    const current = app.current!;
    const record = await this.state.record(app.appName);
    const artifact = record.artifacts.find((a) => a.releaseId === current.releaseId);
    if (!artifact) {
      this.logger.error('the current release is not on this VPS: deploy the app again', {
        app: app.appName,
        release: current.number,
      });
      return null;
    }
    if (app.database) await this.databases.prepare(place, app.database.engine);
    let env = await this.state.loadEnv(current.releaseId);
    if (!env) {
      this.logger.warn('no saved environment for the current release; its secrets are asked for again', {
        app: app.appName,
      });
      const secrets = app.database
        ? {}
        : await receiveSecrets(this.context!, current.releaseId, {
            appName: app.appName,
            releaseId: current.releaseId,
          });
      env = {
        ...artifact.plainEnv,
        HOME: place.home,
        TMPDIR: place.tmp,
        PATH: APP_PATH,
        CLOUDLUNACY_APP: app.appName,
        CLOUDLUNACY_RELEASE: String(current.number),
        CLOUDLUNACY_SHARED: place.shared,
        ...secrets,
      };
    }
    // Its own port when it is free, another one otherwise (the route follows).
    const port = await this.portLock.then(async () => {
      const used = await this.usedPorts();
      used.delete(current.port);
      const wanted = await allocatePort([current.port, current.port], used, this.publicAddress!).catch(
        () => null,
      );
      const chosen = wanted ?? (await allocatePort(this.settings.portRange, used, this.publicAddress!));
      this.reservedPorts.set(chosen, Date.now());
      return chosen;
    });
    env = { ...env, [artifact.manifest.portEnv]: String(port), HOST: this.publicAddress! };
    await this.state.saveEnv(current.releaseId, env);
    // Its output goes on to the log of the deployment that started it last (after a rollback, the
    // rollback's); without a record of one, to the deployment that built it.
    const previousDeployment = this.supervision.get(app.appName)?.deploymentId ?? current.releaseId;
    const instance = await this.runtime.start(place, artifact, {
      port,
      env,
      deploymentId: previousDeployment,
      limits: app.limits,
    });
    await this.state.updateRecord(app.appName, (r) => {
      r.instances = [...r.instances, instance];
    });
    await this.follow(instance, this.redactorFor(env), false);
    const serving = this.serving.get(instance.releaseId)!;
    serving.shipper.sys(`started release ${current.number} again on port ${port} (pid ${instance.pid})`);
    const gate = await passHealthGate(
      {
        host: this.publicAddress!,
        port,
        path: artifact.manifest.healthPath,
        hostname: app.hostname,
        successes: app.healthCheck.successes,
        graceMs: app.healthCheck.graceSeconds * 1000,
        timeoutMs: app.healthCheck.timeoutSeconds * 1000,
        ...(app.database
          ? {
              check: databaseCheck(this.databases, app.appName, databaseFiles(place), {
                host: this.publicAddress!,
                port,
              }),
            }
          : {}),
      },
      { exited: this.runtime.exited(instance, this.stopping.signal), signal: this.stopping.signal },
    );
    if (!gate.passed) {
      serving.shipper.sys(
        `release ${current.number} did not pass its health check after a restart: ${gate.reason}`,
      );
      // The next look finds it dead (or kills it as unhealthy) and backs off.
      if ((await this.runtime.inspect(instance)).state === 'running') {
        await this.stopInstance(place, instance, app);
        const supervision = this.supervision.get(app.appName) ?? { failures: 0, nextAttemptAt: 0 };
        supervision.nextAttemptAt = Date.now() + restartDelayMs(supervision.failures++);
        this.supervision.set(app.appName, supervision);
      }
      return null;
    }
    serving.shipper.sys(`release ${current.number} is healthy again`);
    this.logger.info('the current release runs again', { app: app.appName, release: current.number, port });
    return port;
  }
}
