import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, constants, mkdir, open as openFile, readFile, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  Redactor,
  type AppConfig,
  type DeploymentKind,
  type DeploymentPhase,
  type DeploymentProgress,
  type DrainStreams,
  type LogLine,
  type PhaseLimits,
  type PhaseReport,
  type RouteCommandResult,
  type RouteView,
} from '#contracts';
import { generateSealingKeyPair, open } from '#pki-client';
import type { Logger } from '#platform';
import type { AgentDeploymentsConfig } from '../config.js';
import { AgentRequestError, type AgentContext } from '../handlers.js';
import {
  DEFAULT_ENGINE_IMAGES,
  ENGINE_PROGRAMS,
  pingRedis,
  REDIS_START,
  redisConfig,
  databaseFiles,
  type Databases,
  type DatabaseFiles,
} from './database.js';
import { digestTree, sha256File } from './digest.js';
import { passHealthGate } from './health.js';
import { FileTail, LogShipper } from './log-shipper.js';
import { MANIFEST_FILE, parseManifest, resolveManifest, type ResolvedManifest } from './manifest.js';
import { listenerOwner, openConnections } from './ports.js';
import type { ContainerRuntime, Runtimes } from './container-runtime.js';
import { releaseKey } from './process-runtime.js';
import type { AppPlace, Artifact, Instance } from './runtime.js';
import { buildRootPath, fetchGit, readSourceFile } from './sources.js';
import { downloadUpload, extractUpload } from './upload.js';
import type { DeploymentState } from './state.js';

/**
 * Secret values from the front, sealed to a key made for this one request (`sealedFor`: the deployment,
 * or the serving release, whose id the front binds the box to).
 */
export async function receiveSecrets(
  context: AgentContext,
  sealedFor: string,
  who: { deploymentId: string; leaseId: string } | { appName: string; releaseId: string },
): Promise<Record<string, string>> {
  const keys = generateSealingKeyPair();
  const answer = await context.request<{ sealed: Parameters<typeof open>[0] }>('deployments.secrets', {
    ...who,
    publicKey: keys.publicKey,
  });
  return JSON.parse(
    open(answer.sealed, keys.privateKey, `cloudlunacy-secrets-v1:${sealedFor}`).toString('utf8'),
  ) as Record<string, string>;
}

/** Named holders of at most `size` slots; releasing twice or without holding is harmless. */
export class Slots {
  private readonly holders = new Set<string>();
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {}

  async acquire(holder: string, signal?: AbortSignal): Promise<void> {
    while (this.holders.size >= this.size) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        // An aborted waiter leaves the queue: a release must wake one that still waits.
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const index = this.waiting.indexOf(wake);
          if (index >= 0) this.waiting.splice(index, 1);
          resolve();
        };
        this.waiting.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    signal?.throwIfAborted();
    this.holders.add(holder);
  }

  release(holder: string): void {
    if (!this.holders.delete(holder)) return;
    this.waiting.shift()?.();
  }
}

/** What a claim answers: the deployment's whole spec, snapshotted when it was requested. */
export interface ClaimedDeployment {
  deploymentId: string;
  appName: string;
  number: number | null;
  kind: DeploymentKind;
  ref: string | null;
  upload: { uploadId: string; sha256: string; bytes: number } | null;
  targetRelease: { releaseId: string; number: number } | null;
  previous: { releaseId: string; number: number; port: number; commit: string | null } | null;
  config: AppConfig;
  routeId: string | null;
  limits: PhaseLimits;
  status: string;
  lease: { ttlMs: number; renewEveryMs: number; expiresAt: string };
}

/** The steps of a deployment after the claim, in order: a rollback starts a release that is on disk. */
export function planPhases(kind: DeploymentKind): DeploymentPhase[] {
  const run: DeploymentPhase[] = ['started', 'healthy', 'switched', 'verified', 'drained'];
  return kind === 'rollback' ? run : ['fetched', 'built', ...run];
}

/** The PATH of fetches, builds and releases (absolute, chosen here: nothing of the agent's own). */
export const APP_PATH = '/usr/local/bin:/usr/bin:/bin';

/** A phase failed: the report names the phase, the reason and what the process said last. */
export class PhaseFailure extends Error {
  constructor(
    readonly phase: DeploymentPhase,
    message: string,
    readonly exitCode: number | null = null,
    readonly signal: string | null = null,
  ) {
    super(message);
    this.name = 'PhaseFailure';
  }
}

/** Why a worker stops without finishing: the lease is gone, a cancel came, or the agent stops. */
type StopReason = 'lease-lost' | 'cancelled' | 'agent-stopping';

export interface WorkerDeps {
  agentVersion: string;
  config: AgentDeploymentsConfig;
  context: AgentContext;
  runtime: Runtimes;
  state: DeploymentState;
  logger: Logger;
  publicAddress: string;
  /** Held from the claim to the end of the build (one build slot per agent by default). */
  buildSlot: Slots;
  /** A free port for a new release, held for it (allocation is serialised across the agent's workers). */
  reservePort: () => Promise<number>;
  /** The agent is stopping: no new step begins. */
  stopping: AbortSignal;
  /** Hands a started instance's output over to the manager (it keeps shipping while the release serves). */
  keepShipping: (instance: Instance, tails: FileTail[], shipper: LogShipper) => void;
  databases: Databases;
  /** A database's route exists now: the agent's certificate gets its name (and the database the pair). */
  routedNamesChanged: (hostname: string) => Promise<void>;
}

/** A pulled image's "source digest": the hex of its content-addressed id. */
const imageSourceDigest = (imageId: string) =>
  imageId
    .replace(/^sha256:/, '')
    .padStart(64, '0')
    .slice(-64);

/** The first `program` on `path` that is an executable file, or null. */
export async function findProgram(program: string, path = APP_PATH): Promise<string | null> {
  for (const dir of path.split(':')) {
    const candidate = join(dir, program);
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return null;
}

/**
 * A database's health: what a client does (TLS against the CA, its password, a command), on the
 * address the front uses.
 */
export function databaseCheck(
  databases: Databases,
  appName: string,
  files: Pick<DatabaseFiles, 'ca'>,
  address: { host: string; port: number },
): { what: string; run: () => Promise<void> } {
  // Read once per gate, not per probe: the CA does not change, and a rotation waits for the gate.
  let client: Promise<[Awaited<ReturnType<Databases['credentials']>>, string]> | undefined;
  return {
    what: `a TLS connection with the password and PING on ${address.host}:${address.port}`,
    run: async () => {
      client ??= Promise.all([databases.credentials(appName), readFile(files.ca, 'utf8')]).catch(
        (error: unknown) => {
          client = undefined;
          throw error;
        },
      );
      const [credentials, ca] = await client;
      await pingRedis(address, credentials, ca);
    },
  };
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'abandoned']);

/**
 * One deployment on this agent, from the claim to its end (docs/plans/deployments.md §7.6). The previous
 * release keeps serving until the new one passed its health gate, the route points at it everywhere and the
 * front reached it through HAProxy; on any failure before that, the new release is stopped and removed.
 */
export class DeploymentWorker {
  private readonly leaseId = randomUUID();
  private readonly abort = new AbortController();
  private stopReason: StopReason | null = null;
  private progress: DeploymentProgress | null = null;
  private renewTimer?: NodeJS.Timeout;
  private shipper: LogShipper;
  private readonly lastLines: string[] = [];
  private redactor = new Redactor({});
  private claimed?: ClaimedDeployment;
  private place?: AppPlace;
  private workspace: string | null = null;
  private artifact: Artifact | null = null;
  private instance: Instance | null = null;
  private tails: FileTail[] = [];
  private switched = false;
  /** When the fronts routed to the new release: the drain delay counts from here. */
  private switchedAt = 0;
  private readonly poked = new Set<() => void>();

  constructor(
    readonly deploymentId: string,
    readonly appName: string,
    private readonly deps: WorkerDeps,
  ) {
    this.shipper = new LogShipper(
      deploymentId,
      (topic, body) => deps.context.publish(topic, body),
      deps.config.logBatchMs,
    );
    deps.stopping.addEventListener('abort', () => this.stop('agent-stopping'), { once: true });
  }

  /** The service said something changed (cancel requested, verification done): look now. */
  poke(progress?: Partial<DeploymentProgress>): void {
    if (progress && this.progress) this.progress = { ...this.progress, ...progress };
    if (progress?.cancelRequested) this.stop('cancelled');
    for (const wake of this.poked) wake();
  }

  private stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.abort.abort(new Error(reason));
    for (const wake of this.poked) wake();
  }

  private get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Waits `ms`, or less when poked or stopped. */
  private nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.poked.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.poked.add(done);
    });
  }

  private checkpoint(): void {
    if (this.stopReason) throw new Error(this.stopReason);
  }

  private sys(text: string): void {
    // The agent's own lines quote errors, which may quote what a process printed.
    this.ship([{ t: new Date().toISOString(), s: 'sys', x: this.redactor.redact(text) }]);
  }

  private ship(lines: LogLine[]): void {
    for (const line of lines) {
      this.lastLines.push(line.x.length > 500 ? `${line.x.slice(0, 497)}...` : line.x);
      if (this.lastLines.length > 20) this.lastLines.shift();
    }
    this.shipper.push(lines);
  }

  private request<T>(
    command: string,
    body: unknown,
    timeoutMs = 15_000,
    idempotencyKey?: string,
  ): Promise<T> {
    return this.deps.context.request<T>(
      command,
      body,
      timeoutMs,
      idempotencyKey ? { idempotencyKey } : undefined,
    );
  }

  private report(report: PhaseReport): Promise<DeploymentProgress> {
    return this.request<DeploymentProgress>('deployments.report', {
      deploymentId: this.deploymentId,
      leaseId: this.leaseId,
      report,
    }).then((progress) => {
      this.progress = progress;
      return progress;
    });
  }

  /** Runs the deployment to its end. Never throws: every outcome is reported (or the lease was lost). */
  async run(): Promise<void> {
    const { state, logger } = this.deps;
    // One fetch and build at a time per agent (by default): the slot is taken before the claim, so a
    // claimed deployment never waits for it while its fetch deadline runs.
    try {
      await this.deps.buildSlot.acquire(this.deploymentId, this.signal);
    } catch {
      return; // the agent stops
    }
    await state.setInflight({
      deploymentId: this.deploymentId,
      leaseId: this.leaseId,
      appName: this.appName,
      workspace: null,
      instance: null,
      command: null,
    });
    try {
      this.claimed = await this.request<ClaimedDeployment>('deployments.claim', {
        deploymentId: this.deploymentId,
        leaseId: this.leaseId,
        agentVersion: this.deps.agentVersion,
      });
    } catch (error) {
      // Someone else's now, or not waiting any more: nothing was started.
      await state.clearInflight(this.deploymentId);
      this.deps.buildSlot.release(this.deploymentId);
      if (!(error instanceof AgentRequestError)) throw error;
      logger.info('deployment not claimed', { deploymentId: this.deploymentId, reason: error.message });
      return;
    }
    this.startRenewing();
    try {
      await this.execute();
    } catch (error) {
      await this.fail(error);
    } finally {
      clearInterval(this.renewTimer);
      this.shipper.flush();
      // A stopping agent leaves the entry: its next start gives the deployment up and cleans up after it.
      if (this.stopReason !== 'agent-stopping') await state.clearInflight(this.deploymentId);
      this.deps.buildSlot.release(this.deploymentId);
    }
  }

  private startRenewing(): void {
    const { lease } = this.claimed!;
    let expiresAt = Date.parse(lease.expiresAt);
    const renew = async () => {
      if (this.stopReason === 'lease-lost') return;
      try {
        const progress = await this.request<DeploymentProgress & { leaseExpiresAt: string | null }>(
          'deployments.renew',
          { deploymentId: this.deploymentId, leaseId: this.leaseId },
          Math.max(1_000, lease.renewEveryMs),
        );
        this.progress = progress;
        if (progress.leaseExpiresAt) expiresAt = Date.parse(progress.leaseExpiresAt);
        if (TERMINAL.has(progress.status)) this.stop('lease-lost');
        else if (progress.cancelRequested) this.stop('cancelled');
        for (const wake of this.poked) wake();
      } catch (error) {
        // Only these answers say the lease is gone; `unavailable` and the like are worth another try.
        const lost =
          error instanceof AgentRequestError &&
          ['conflict', 'forbidden', 'not_found'].includes(error.body.error);
        if (lost || Date.now() > expiresAt) this.stop('lease-lost');
      }
    };
    this.renewTimer = setInterval(() => void renew(), lease.renewEveryMs);
    this.renewTimer.unref();
  }

  private async execute(): Promise<void> {
    const claimed = this.claimed!;
    const { runtime, logger } = this.deps;
    logger.info('deployment claimed', {
      deploymentId: this.deploymentId,
      app: this.appName,
      kind: claimed.kind,
    });
    this.sys(`claimed by agent ${this.deps.context.agentId}: ${claimed.kind} of ${this.appName}`);
    this.place = await runtime.prepareApp(this.appName);
    const secrets = await this.fetchSecrets();
    const database = this.database;
    if (database) {
      // Its passwords are made here and never leave the agent but for an admin who asks.
      const credentials = await this.deps.databases.credentials(this.appName);
      this.redactor = new Redactor({
        ...secrets,
        DATABASE_PASSWORD: credentials.password,
        DATABASE_ADMIN_PASSWORD: credentials.adminPassword,
      });
    } else this.redactor = new Redactor(secrets);
    if (claimed.kind === 'deploy' && database) {
      await this.fetchEngine();
      this.checkpoint();
      await this.buildDatabase();
    } else if (claimed.kind === 'deploy' && claimed.config.source.type === 'image') {
      await this.pullImage(claimed.config.source.image);
    } else if (claimed.kind === 'deploy') {
      await this.fetch(secrets);
      this.checkpoint();
      await this.build();
    } else {
      this.artifact = await this.keptArtifact();
    }
    this.deps.buildSlot.release(this.deploymentId);
    this.checkpoint();
    await this.start(secrets);
    this.checkpoint();
    await this.gate();
    this.checkpoint();
    await this.switch();
    await this.awaitVerification();
    await this.drain();
  }

  /** The name a database this worker deploys answers to (its certificate must carry it), or null. */
  get databaseHostname(): string | null {
    return this.database ? this.claimed!.config.hostname : null;
  }

  get databaseEngine() {
    return this.database?.engine ?? null;
  }

  /** The app's database engine, when it is a database. */
  private get database() {
    const source = this.claimed?.config.source;
    return source?.type === 'database' ? source : null;
  }

  /** A database's "fetch": the engine installed on this VPS, named by its program's digest. */
  private async fetchEngine(): Promise<void> {
    const { engine } = this.database!;
    const program = ENGINE_PROGRAMS[engine];
    const timer = this.phaseTimer('fetched', this.claimed!.limits.fetch);
    try {
      if (this.claimed!.config.runtime === 'container') {
        await this.fetchEngineImage(timer.signal);
        return;
      }
      const path = await findProgram(program);
      if (!path)
        throw new PhaseFailure(
          'fetched',
          `${program} is not installed on this VPS (looked in ${APP_PATH}): install it (Debian: apt-get install ${program})`,
        );
      // Debian's redis-server is a link to the one binary of redis-check-*: the digest is of the binary.
      const { hash, size } = await sha256File(await realpath(path));
      const version = await promisify(execFile)(path, ['--version'], {
        timeout: 10_000,
        signal: timer.signal,
      })
        .then(({ stdout }) => stdout.trim().slice(0, 200))
        .catch(() => 'an unknown version');
      const major = Number(/v=(\d+)\./.exec(version)?.[1] ?? 0);
      if (major < 7)
        throw new PhaseFailure(
          'fetched',
          `${program} is ${version}: a managed ${engine} needs version 7 or later (ACL selectors, multi-part AOF for restores)`,
        );
      this.sys(`using ${path}: ${version}`);
      await this.report({ phase: 'fetched', commit: null, sourceDigest: hash, bytes: size });
    } catch (error) {
      throw this.phaseError('fetched', error, timer);
    } finally {
      timer.clear();
    }
  }

  /**
   * An image app's fetch and build: the engine pulls the reference (its tag may have moved since the
   * last deployment), and the image becomes the release's under the release's own name.
   */
  private async pullImage(reference: string): Promise<void> {
    const claimed = this.claimed!;
    const timer = this.phaseTimer('fetched', claimed.limits.fetch);
    let id: string;
    let containers: ContainerRuntime;
    try {
      containers = this.containers('fetched', '');
      this.sys(`pulling ${reference}`);
      id = await containers.engine.pull(reference, (line) => this.sys(line));
      this.sys(`pulled ${reference}: image ${id.slice(0, 19)}`);
      await this.report({
        phase: 'fetched',
        commit: null,
        sourceDigest: imageSourceDigest(id),
        bytes: 0,
      });
    } catch (error) {
      throw this.phaseError('fetched', error, timer);
    } finally {
      timer.clear();
    }
    this.checkpoint();
    const started = Date.now();
    const manifest = this.imageManifest('image');
    try {
      this.artifact = await containers.adopt(this.place!, id, {
        releaseId: this.deploymentId,
        number: claimed.number!,
        manifest,
        commit: null,
        builtAt: new Date().toISOString(),
      });
    } catch (error) {
      throw new PhaseFailure('built', (error as Error).message);
    }
    await this.recordBuilt(
      manifest,
      started,
      `release ${claimed.number} is ${reference} (${this.artifact.location})`,
    );
  }

  /** The engine's image of a database on the container runtime: there already, or pulled. */
  private engineImage: string | null = null;

  private async fetchEngineImage(signal: AbortSignal): Promise<void> {
    const { engine } = this.database!;
    const containers = this.containers('fetched', ', or deploy the database with runtime "process"');
    const image = this.deps.config.container?.images[engine] ?? DEFAULT_ENGINE_IMAGES[engine];
    let id = await containers.engine.imageId(image);
    if (!id) {
      this.sys(`pulling ${image}`);
      signal.throwIfAborted();
      id = await containers.engine.pull(image, (line) => this.sys(line));
    }
    this.engineImage = id;
    this.sys(`using the image ${image} (${id.slice(0, 19)})`);
    await this.report({
      phase: 'fetched',
      commit: null,
      sourceDigest: imageSourceDigest(id),
      bytes: 0,
    });
  }

  /** A database's "build": its configuration, sealed as a release so that a rollback starts the same. */
  private async buildDatabase(): Promise<void> {
    const claimed = this.claimed!;
    const place = this.place!;
    const started = Date.now();
    const { databases } = this.deps;
    let files: DatabaseFiles;
    const timer = this.phaseTimer('built', claimed.limits.build);
    try {
      await databases.awaitCertificate(timer.signal, () =>
        this.sys("waiting for this agent's certificate from the CloudLunacy CA (a database serves TLS only)"),
      );
      files = await databases.prepare(place, this.database!.engine);
    } catch (error) {
      throw this.stopReason
        ? new Error(this.stopReason)
        : new PhaseFailure(
            'built',
            timer.timedOut
              ? `this agent got no certificate within ${timer.seconds} s: see its log (certificates)`
              : (error as Error).message,
          );
    } finally {
      timer.clear();
    }
    const workspace = await this.deps.runtime.newWorkspace(place, this.deploymentId, claimed.number!);
    this.workspace = workspace;
    await this.deps.state.updateInflight(this.deploymentId, { workspace });
    // A new file (never one the app put there, nor a link it made), then the app's: it seals its own
    // release (read-only as its user).
    const conf = await openFile(join(workspace, 'redis.conf'), 'wx', 0o640);
    try {
      await conf.writeFile(redisConfig(files));
      if (this.deps.config.isolation === 'uid') await conf.chown(place.uid, place.gid);
    } finally {
      await conf.close();
    }
    const manifest: ResolvedManifest = {
      origin: 'database',
      root: '.',
      install: null,
      build: [],
      start: REDIS_START,
      portEnv: 'PORT',
      healthPath: '/',
    };
    const committed = await this.deps.runtime.commit(place, workspace, {
      releaseId: this.deploymentId,
      number: claimed.number!,
      manifest,
      commit: null,
      builtAt: new Date().toISOString(),
    });
    // On the container runtime the release is its configuration (mounted) and the engine's image.
    this.artifact = this.engineImage
      ? { ...committed, runtime: 'container', image: this.engineImage }
      : committed;
    await this.recordBuilt(
      manifest,
      started,
      `configured release ${claimed.number}: TLS only, passwords on, data in ${files.data}`,
    );
  }

  /**
   * One release of a database at a time: its data directory is not shared, so the serving release
   * stops (and writes its data) before the new one starts. Clients reconnect after the switch; a failed
   * release gives the data back to the previous one, which the reconcile starts again.
   */
  private async stopPreviousDatabase(): Promise<void> {
    const previous = this.claimed!.previous;
    const record = await this.deps.state.record(this.appName);
    const old = record.instances.filter((instance) => instance.releaseId !== this.artifact!.releaseId);
    for (const instance of old) {
      const result = await this.deps.runtime.stop(this.place!, instance, {
        timeoutMs: this.claimed!.config.drain.stopTimeoutSeconds * 1000,
      });
      if (result !== 'none') this.stoppedBeforeStart = result;
      await this.deps.state.removeInstance(this.appName, instance);
    }
    if (old.length > 0)
      this.sys(
        `release ${previous?.number ?? old[0]!.number} stopped so that the new one can open the data (${this.stoppedBeforeStart === 'kill' ? 'killed after the stop timeout' : 'it saved and exited'})`,
      );
  }

  private stoppedBeforeStart: 'exit' | 'kill' | 'none' = 'none';

  private async fetchSecrets(): Promise<Record<string, string>> {
    if (this.claimed!.config.secrets.length === 0) return {};
    return receiveSecrets(this.deps.context, this.deploymentId, {
      deploymentId: this.deploymentId,
      leaseId: this.leaseId,
    });
  }

  /** Ships the build files of this deployment while `work` runs. */
  private async withBuildOutput<T>(work: (output: { stdoutPath: string; stderrPath: string }) => Promise<T>) {
    const output = await this.deps.state.logPaths(this.appName, `${this.deploymentId.slice(0, 8)}-build`);
    const tails = await Promise.all([
      new FileTail(output.stdoutPath, 'build', this.redactor, (lines) => this.ship(lines)).start(true),
      new FileTail(output.stderrPath, 'build', this.redactor, (lines) => this.ship(lines)).start(true),
    ]);
    try {
      return await work(output);
    } finally {
      for (const tail of tails) await tail.stop();
    }
  }

  private async fetch(secrets: Record<string, string>): Promise<void> {
    const claimed = this.claimed!;
    const place = this.place!;
    const source = claimed.config.source;
    if (source.type === 'database' || source.type === 'image')
      throw new PhaseFailure(
        'fetched',
        `${source.type === 'image' ? 'an image' : 'a database'} has no source to fetch`,
      );
    const number = claimed.number!;
    this.workspace = await this.deps.runtime.newWorkspace(place, this.deploymentId, number);
    await this.deps.state.updateInflight(this.deploymentId, { workspace: this.workspace });
    const timer = this.phaseTimer('fetched', claimed.limits.fetch);
    if (source.type === 'upload') {
      try {
        await this.fetchUpload(timer.signal);
      } catch (error) {
        throw this.phaseError('fetched', error, timer);
      } finally {
        timer.clear();
      }
      return;
    }
    this.sys(`fetching ${source.url}${claimed.ref ? ` at ${claimed.ref}` : ''}`);
    try {
      const scratch = await this.deps.state.logPaths(this.appName, `${this.deploymentId.slice(0, 8)}-rev`);
      const { commit } = await this.withBuildOutput((output) =>
        fetchGit({
          runtime: this.deps.runtime,
          place,
          workspace: this.workspace!,
          source,
          ref: claimed.ref,
          fileRoots: this.deps.config.fileRoots,
          configDir: `${this.deps.config.dir}/.cloudlunacy`,
          ...(source.credentials ? { credential: secrets[source.credentials.secret] } : {}),
          output,
          scratch,
          path: APP_PATH,
          signal: timer.signal,
          onStart: (command) => this.deps.state.updateInflight(this.deploymentId, { command }),
        }),
      ).catch((error: unknown) => {
        throw this.phaseError('fetched', error, timer);
      });
      const { digest, bytes } = await digestTree(this.workspace);
      this.commit = commit;
      this.sys(`fetched commit ${commit} (${bytes} bytes)`);
      await this.report({ phase: 'fetched', commit, sourceDigest: digest, bytes });
    } finally {
      timer.clear();
    }
  }

  private commit: string | null = null;

  /** An uploaded tarball: downloaded into a place only root writes, checked, extracted as the app. */
  private async fetchUpload(signal: AbortSignal): Promise<void> {
    const claimed = this.claimed!;
    const place = this.place!;
    const upload = claimed.upload;
    if (!upload) throw new PhaseFailure('fetched', 'the deployment names no upload');
    const dir = join(this.deps.config.dir, '.cloudlunacy', 'uploads');
    await mkdir(dir, { recursive: true, mode: 0o711 });
    const file = join(dir, `${this.deploymentId}.tar.gz`);
    await rm(file, { force: true });
    this.sys(`downloading the uploaded source (${upload.bytes} bytes)`);
    const api = this.deps.context.api;
    try {
      await downloadUpload({
        apiUrl: api.url,
        accessToken: api.accessToken(),
        deploymentId: this.deploymentId,
        upload,
        file,
        ...(api.localAddress ? { localAddress: api.localAddress } : {}),
        signal,
      });
      const listing = await extractUpload({
        file,
        workspace: this.workspace!,
        isolation: this.deps.config.isolation,
        uid: place.uid,
        gid: place.gid,
        nofile: this.deps.config.nofile,
        nproc: claimed.config.limits.processes,
      });
      const { digest, bytes } = await digestTree(this.workspace!);
      this.sys(`unpacked ${listing.entries.length} entries (${bytes} bytes)`);
      await this.report({ phase: 'fetched', commit: null, sourceDigest: digest, bytes });
    } finally {
      await rm(file, { force: true });
    }
  }

  /** An abort signal for one phase: the agent's own deadline, cancel and lease loss. */
  private phaseTimer(phase: DeploymentPhase, seconds: number) {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`${phase} took longer than ${seconds} s`));
    }, seconds * 1000);
    const onAbort = () => controller.abort(this.signal.reason);
    this.signal.addEventListener('abort', onAbort, { once: true });
    return {
      signal: controller.signal,
      get timedOut() {
        return timedOut;
      },
      seconds,
      clear: () => {
        clearTimeout(timer);
        this.signal.removeEventListener('abort', onAbort);
      },
    };
  }

  private phaseError(
    phase: DeploymentPhase,
    error: unknown,
    timer?: { timedOut: boolean; seconds: number },
  ): Error {
    if (this.stopReason) return new Error(this.stopReason);
    if (timer?.timedOut)
      return new PhaseFailure(
        phase,
        `${phase === 'fetched' ? 'the fetch' : 'the build'} took longer than ${timer.seconds} s`,
      );
    if (error instanceof PhaseFailure) return error;
    const exitCode = (error as { exitCode?: number | null }).exitCode ?? null;
    return new PhaseFailure(phase, (error as Error).message, exitCode);
  }

  /**
   * A container app's build: the engine builds the Dockerfile at the build root into the release's
   * image, its output in the build log; the workspace goes, the image is the artifact.
   */
  private async buildImage(): Promise<void> {
    const claimed = this.claimed!;
    const place = this.place!;
    const workspace = this.workspace!;
    const started = Date.now();
    const seconds = claimed.config.build.timeoutSeconds ?? claimed.limits.build;
    const timer = this.phaseTimer('built', seconds);
    try {
      const containers = this.containers('built', ', or deploy the app with runtime "process"');
      const root = claimed.config.build.root ?? '.';
      let context: string;
      try {
        context = await buildRootPath(workspace, root);
      } catch (error) {
        throw new PhaseFailure('built', (error as Error).message);
      }
      const dockerfile = root === '.' ? 'Dockerfile' : `${root}/Dockerfile`;
      if ((await readSourceFile(workspace, dockerfile)) === null)
        throw new PhaseFailure(
          'built',
          `the container runtime builds ${dockerfile} of the source, and there is none: add one, or deploy the app with runtime "process"`,
        );
      this.sys(`building the image from ${dockerfile}`);
      const manifest = this.imageManifest('dockerfile');
      this.artifact = await containers
        .build(
          place,
          workspace,
          {
            releaseId: this.deploymentId,
            number: claimed.number!,
            manifest,
            commit: this.commit,
            builtAt: new Date().toISOString(),
          },
          {
            context,
            dockerfile: 'Dockerfile',
            memoryMb: claimed.config.limits.memoryMb,
            onLine: (line) =>
              this.ship([{ t: new Date().toISOString(), s: 'build', x: this.redactor.redact(line) }]),
            signal: timer.signal,
          },
        )
        .catch((error: unknown) => {
          throw this.phaseError('built', error, timer);
        });
      await this.recordBuilt(
        manifest,
        started,
        `built release ${claimed.number}: image ${this.artifact.location}`,
      );
    } finally {
      timer.clear();
    }
  }

  private async build(): Promise<void> {
    const claimed = this.claimed!;
    if (claimed.config.runtime === 'container') return this.buildImage();
    const place = this.place!;
    const workspace = this.workspace!;
    const started = Date.now();
    const seconds = claimed.config.build.timeoutSeconds ?? claimed.limits.build;
    const timer = this.phaseTimer('built', seconds);
    try {
      let manifest: ResolvedManifest;
      try {
        const manifestText = await readSourceFile(workspace, MANIFEST_FILE);
        const parsed = manifestText === null ? null : parseManifest(manifestText);
        const root = claimed.config.build.root ?? parsed?.root ?? '.';
        const rootPath = await buildRootPath(workspace, root);
        const rel = rootPath.slice((await buildRootPath(workspace, '.')).length + 1) || '.';
        const packageJson = await readSourceFile(workspace, `${rel}/package.json`);
        const node =
          packageJson === null
            ? null
            : {
                packageJson,
                hasLockfile:
                  (await readSourceFile(workspace, `${rel}/package-lock.json`, 64 * 1024 * 1024)) !== null,
                hasServerJs: (await readSourceFile(workspace, `${rel}/server.js`, 64 * 1024 * 1024)) !== null,
              };
        manifest = resolveManifest({
          manifest: parsed,
          app: claimed.config.build,
          healthPath: claimed.config.healthCheck.path,
          node,
        });
      } catch (error) {
        throw new PhaseFailure('built', (error as Error).message);
      }
      const commands = [...(manifest.install ? [manifest.install] : []), ...manifest.build];
      const cwd = await buildRootPath(workspace, manifest.root);
      const env = this.baseEnv(place, claimed.config.env);
      await this.withBuildOutput(async (output) => {
        for (const command of commands) {
          this.sys(`running ${command}`);
          const result = await this.deps.runtime
            .run(place, ['/bin/sh', '-c', command], {
              cwd,
              env,
              output,
              signal: timer.signal,
              cgroup: {
                name: `${releaseKey({ number: claimed.number!, releaseId: this.deploymentId })}-build`,
                limits: claimed.config.limits,
              },
              onStart: (process) => this.deps.state.updateInflight(this.deploymentId, { command: process }),
            })
            .catch((error: unknown) => {
              throw this.phaseError('built', error, timer);
            });
          if (this.stopReason) throw new Error(this.stopReason);
          if (timer.timedOut) throw new PhaseFailure('built', `the build took longer than ${seconds} s`);
          if (result.exitCode !== 0)
            throw new PhaseFailure(
              'built',
              `${command} ${result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`}`,
              result.exitCode,
              result.signal,
            );
        }
      });
      await this.deps.state.updateInflight(this.deploymentId, { command: null });
      this.artifact = await this.deps.runtime.commit(place, workspace, {
        releaseId: this.deploymentId,
        number: claimed.number!,
        manifest,
        commit: this.commit,
        builtAt: new Date().toISOString(),
      });
      await this.recordBuilt(
        manifest,
        started,
        `built release ${claimed.number} (${releaseKey(this.artifact)})`,
      );
    } finally {
      timer.clear();
    }
  }

  /**
   * The end of every kind of build: the artifact (set by the caller) is the app's, the workspace gone,
   * and the front hears of it.
   */
  private async recordBuilt(manifest: ResolvedManifest, started: number, line: string): Promise<void> {
    const artifact = this.artifact!;
    this.workspace = null;
    await this.deps.state.updateRecord(this.appName, (record) => {
      record.artifacts = [...record.artifacts.filter((a) => a.releaseId !== artifact.releaseId), artifact];
    });
    await this.deps.state.updateInflight(this.deploymentId, { workspace: null });
    this.sys(line);
    await this.report({
      phase: 'built',
      release: { releaseId: artifact.releaseId, number: artifact.number },
      artifactDigest: artifact.artifactDigest,
      manifest,
      durationMs: Date.now() - started,
    });
  }

  /** The container engine, or the failure of `phase` saying how to give this agent one. */
  private containers(phase: DeploymentPhase, otherwise: string): ContainerRuntime {
    const containers = this.deps.runtime.containers;
    if (!containers)
      throw new PhaseFailure(
        phase,
        `this agent has no container engine: set deployments.container.socket in its config (deploy/podman/service.sh runs one)${otherwise}`,
      );
    return containers;
  }

  /** What a release made from an image runs: the image's command, on the app's port variable. */
  private imageManifest(origin: 'dockerfile' | 'image'): ResolvedManifest {
    const config = this.claimed!.config;
    return {
      origin,
      root: '.',
      install: null,
      build: [],
      start: "the image's command",
      portEnv: config.build.portEnv ?? 'PORT',
      healthPath: config.healthCheck.path,
    };
  }

  /** The environment of every command of the app: its own places, a fixed PATH, the plain values. */
  private baseEnv(place: AppPlace, env: Record<string, string>): Record<string, string> {
    return {
      ...env,
      PATH: APP_PATH,
      HOME: place.home,
      TMPDIR: place.tmp,
      CLOUDLUNACY_APP: this.appName,
      CLOUDLUNACY_SHARED: place.shared,
    };
  }

  private async keptArtifact(): Promise<Artifact> {
    const target = this.claimed!.targetRelease!;
    const record = await this.deps.state.record(this.appName);
    const artifact = record.artifacts.find((a) => a.releaseId === target.releaseId);
    if (!artifact) throw new PhaseFailure('started', `release ${target.number} is not on this VPS any more`);
    if (!(await this.deps.runtime.verify(artifact)))
      throw new PhaseFailure('started', `release ${target.number} changed on disk since it was built`);
    this.sys(`starting kept release ${target.number} again (no fetch, no build)`);
    return artifact;
  }

  private async start(secrets: Record<string, string>): Promise<void> {
    const claimed = this.claimed!;
    const place = this.place!;
    const artifact = this.artifact!;
    const port = await this.deps.reservePort();
    if (this.database) {
      try {
        await this.deps.databases.prepare(place, this.database.engine);
      } catch (error) {
        throw new PhaseFailure('started', (error as Error).message);
      }
      await this.stopPreviousDatabase();
    }
    // The repository's credential is the fetch's, not the app's.
    const source = claimed.config.source;
    const credential = source.type === 'git' ? source.credentials?.secret : undefined;
    const appSecrets = Object.fromEntries(Object.entries(secrets).filter(([name]) => name !== credential));
    const env = {
      ...this.baseEnv(place, claimed.config.env),
      ...(this.database ? {} : appSecrets),
      [artifact.manifest.portEnv]: String(port),
      HOST: this.deps.publicAddress,
      CLOUDLUNACY_RELEASE: String(artifact.number),
    };
    await this.deps.state.saveEnv(artifact.releaseId, env);
    // The plain values (never the secrets) go with the release too: a restart that finds no saved
    // environment asks the front for the secrets only, and must not lose the rest.
    await this.deps.state.updateRecord(this.appName, (record) => {
      for (const kept of record.artifacts)
        if (kept.releaseId === artifact.releaseId) kept.plainEnv = { ...claimed.config.env };
    });
    try {
      this.instance = await this.deps.runtime.start(place, artifact, {
        port,
        env,
        deploymentId: this.deploymentId,
        limits: claimed.config.limits,
      });
    } catch (error) {
      throw new PhaseFailure('started', (error as Error).message);
    }
    await this.deps.state.updateInflight(this.deploymentId, { instance: this.instance });
    await this.deps.state.updateRecord(this.appName, (record) => {
      record.instances = [...record.instances, this.instance!];
    });
    this.tails = await Promise.all([
      new FileTail(this.instance.stdoutPath, 'out', this.redactor, (lines) => this.ship(lines)).start(),
      new FileTail(this.instance.stderrPath, 'err', this.redactor, (lines) => this.ship(lines)).start(),
    ]);
    this.sys(
      `started release ${artifact.number} on ${this.deps.publicAddress}:${port} (pid ${this.instance.pid})`,
    );
    await this.report({ phase: 'started', releaseId: artifact.releaseId, port });
  }

  private async gate(): Promise<void> {
    const claimed = this.claimed!;
    const instance = this.instance!;
    const health = claimed.config.healthCheck;
    const watch = new AbortController();
    const result = await passHealthGate(
      {
        host: this.deps.publicAddress,
        port: instance.port,
        path: this.artifact!.manifest.healthPath,
        hostname: claimed.config.hostname,
        successes: health.successes,
        graceMs: health.graceSeconds * 1000,
        timeoutMs: Math.min(health.timeoutSeconds, claimed.limits.health) * 1000,
        ...(this.database
          ? {
              check: databaseCheck(this.deps.databases, this.appName, databaseFiles(this.place!), {
                host: this.deps.publicAddress,
                port: instance.port,
              }),
            }
          : {}),
      },
      { exited: this.deps.runtime.exited(instance, watch.signal), signal: this.signal },
    ).finally(() => watch.abort());
    this.checkpoint();
    if (!result.passed) {
      const exit = this.deps.runtime.exitOf(instance);
      await this.settleOutput();
      if (exit)
        throw new PhaseFailure(
          'started',
          `the release ${exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`} before it was healthy`,
          exit.exitCode,
          exit.signal,
        );
      throw new PhaseFailure('healthy', result.reason);
    }
    // Per-app uids make this check possible: a port another app took is not this release's.
    const owner = await listenerOwner(instance.port, this.place!.uid, this.deps.publicAddress);
    if (owner.owner === 'other')
      throw new PhaseFailure(
        'healthy',
        `port ${instance.port} is held by another user (uid ${owner.uids.join(', ')})`,
      );
    this.sys(`health check passed after ${result.probes} probes in ${result.durationMs} ms`);
    await this.report({
      phase: 'healthy',
      releaseId: this.artifact!.releaseId,
      probes: result.probes,
      durationMs: result.durationMs,
    });
  }

  /** Lets the tails read what the process wrote last, so the failure carries it. */
  private async settleOutput(): Promise<void> {
    for (const tail of this.tails) await tail.read();
  }

  /** Points the app's route at `port` and waits until every front routes that revision. */
  private async routeTo(port: number, routeId: string | null): Promise<RouteView> {
    const claimed = this.claimed!;
    const target = { host: this.deps.publicAddress, port };
    const result = routeId
      ? await this.request<RouteCommandResult>('routes.update', { routeId, target })
      : await this.request<RouteCommandResult>(
          'routes.request',
          { kind: this.database ? 'tls-sni' : 'http', hostname: claimed.config.hostname, target },
          15_000,
          `app-route:${this.appName}`,
        );
    const deadline = Date.now() + claimed.limits.switch * 1000;
    for (;;) {
      const route = await this.request<RouteView>('routes.get', { routeId: result.route.routeId });
      if (route.revision >= result.route.revision && route.status === 'active') return route;
      if (route.status === 'failed')
        throw new PhaseFailure(
          'switched',
          `the front could not apply the route: ${route.statusReason ?? 'no reason given'}`,
        );
      if (Date.now() > deadline)
        throw new PhaseFailure(
          'switched',
          `the route was not active on every front within ${claimed.limits.switch} s`,
        );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async switch(): Promise<void> {
    const claimed = this.claimed!;
    const instance = this.instance!;
    this.sys(`switching ${claimed.config.hostname} to port ${instance.port}`);
    const route = await this.routeTo(instance.port, claimed.routeId).catch((error: unknown) => {
      throw error instanceof PhaseFailure ? error : new PhaseFailure('switched', (error as Error).message);
    });
    this.switched = true;
    this.switchedAt = Date.now();
    this.routeId = route.routeId;
    await this.report({
      phase: 'switched',
      routeId: route.routeId,
      routeRevision: route.revision,
      target: { host: this.deps.publicAddress, port: instance.port },
    });
    if (this.database) {
      // The front verifies the name the database answers to: the agent's certificate must carry it.
      await this.deps
        .routedNamesChanged(claimed.config.hostname)
        .catch((error: unknown) =>
          this.sys(
            `the certificate could not take ${claimed.config.hostname} yet: ${(error as Error).message}`,
          ),
        );
    }
    this.sys(`traffic switched (route revision ${route.revision}); waiting for the front to verify`);
  }

  private routeId: string | null = null;

  private async awaitVerification(): Promise<void> {
    for (;;) {
      const progress = this.progress;
      if (progress?.verification === 'passed' || progress?.status === 'verified') {
        this.verified = true;
        return;
      }
      if (progress?.verification === 'failed' || progress?.status === 'reverting') {
        await this.revert();
        await this.report({ phase: 'reverted' });
        await this.stopNewRelease();
        this.sys('the front could not verify the new release: traffic is back on the previous one');
        this.finished = true;
        return;
      }
      if (this.stopReason === 'cancelled') throw new Error('cancelled');
      if (this.stopReason) throw new Error(this.stopReason);
      await this.nap(200);
      if (!this.stopReason) {
        this.progress = await this.request<DeploymentProgress>('deployments.renew', {
          deploymentId: this.deploymentId,
          leaseId: this.leaseId,
        }).catch(() => this.progress);
      }
    }
  }

  private finished = false;
  /** The front reached the new release: from here on it is the app's current one, whatever happens. */
  private verified = false;

  /** Traffic back on the previous release, if there was one (otherwise the route keeps the new target). */
  private async revert(): Promise<boolean> {
    const previous = this.claimed!.previous;
    if (!previous || !this.routeId) return false;
    this.sys(`putting traffic back on release ${previous.number} (port ${previous.port})`);
    await this.routeTo(previous.port, this.routeId);
    return true;
  }

  private async drain(): Promise<void> {
    if (this.finished) return;
    const claimed = this.claimed!;
    const { drain } = claimed.config;
    const previous = claimed.previous;
    let stoppedBy: 'exit' | 'kill' | 'none' = 'none';
    let previousReleaseId: string | null = null;
    if (this.database) {
      previousReleaseId =
        previous && previous.releaseId !== this.artifact!.releaseId ? previous.releaseId : null;
      stoppedBy = this.stoppedBeforeStart;
    } else if (previous && previous.releaseId !== this.artifact!.releaseId) {
      previousReleaseId = previous.releaseId;
      const record = await this.deps.state.record(this.appName);
      const old = record.instances.filter((i) => i.releaseId === previous.releaseId);
      await this.awaitQuiet(old, drain.delaySeconds * 1000);
      for (const instance of old) {
        const result = await this.deps.runtime.stop(this.place!, instance, {
          timeoutMs: drain.stopTimeoutSeconds * 1000,
        });
        if (result !== 'none') stoppedBy = result;
      }
      await this.deps.state.updateRecord(this.appName, (r) => {
        r.instances = r.instances.filter((i) => i.releaseId !== previous.releaseId);
      });
      this.sys(
        `release ${previous.number} stopped (${stoppedBy === 'exit' ? 'it exited on SIGTERM' : stoppedBy === 'kill' ? 'killed after the stop timeout' : 'it was not running'})`,
      );
    }
    const progress = await this.report({ phase: 'drained', previousReleaseId, stoppedBy });
    this.finished = true;
    this.sys(`deployment ${progress.status}`);
    this.deps.keepShipping(this.instance!, this.tails, this.shipper);
    this.tails = [];
  }

  /**
   * Requests sent before the route changed finish on the old release first: up to the drain delay
   * after the switch (the front's verification runs within it), or until none is left, whichever comes
   * first. None is left when no connection to the old release is open, or when every front says it has
   * no request in flight to it: the connections left are then the fronts' idle keep-alive pool (from
   * here an idle connection and one carrying a request look the same). No new request reaches the old
   * release once the fronts switched.
   */
  private async awaitQuiet(old: Instance[], delayMs: number): Promise<void> {
    const deadline = this.switchedAt + delayMs;
    const ports = old.map((instance) => instance.port);
    const quiet = async (): Promise<string | null> => {
      const open = await openConnections(ports, this.deps.publicAddress);
      if (open === 0) return 'has no open connections';
      const fronts = await this.request<DrainStreams>(
        'deployments.streams',
        { deploymentId: this.deploymentId, leaseId: this.leaseId },
        Math.max(100, deadline - Date.now()),
      ).catch(() => null);
      if (fronts?.streams === 0)
        return `has no request in flight on ${fronts.fronts === 1 ? 'the front' : `any of the ${fronts.fronts} fronts`} (${open} idle connections)`;
      return null;
    };
    let found = await quiet();
    while (found === null && Date.now() < deadline && !this.deps.stopping.aborted) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, deadline - Date.now())));
      found = await quiet();
    }
    this.sys(
      found !== null
        ? `the old release ${found} ${Date.now() - this.switchedAt} ms after the switch`
        : `requests to the old release may still be in flight at the end of the ${delayMs / 1000} s drain delay`,
    );
  }

  private async stopNewRelease(): Promise<void> {
    for (const tail of this.tails) await tail.stop();
    this.tails = [];
    const instance = this.instance;
    if (instance) {
      await this.deps.runtime
        .stop(this.place!, instance, { timeoutMs: this.claimed!.config.drain.stopTimeoutSeconds * 1000 })
        .catch((error: unknown) => this.deps.logger.warn('cannot stop a release', { error }));
      await this.deps.state.removeInstance(this.appName, instance);
      this.instance = null;
    }
    // A release that never served is not kept.
    if (this.claimed?.kind === 'deploy') {
      if (this.artifact && this.place) {
        await this.deps.runtime.removeArtifact(this.place, this.artifact);
        await this.deps.state.updateRecord(this.appName, (record) => {
          record.artifacts = record.artifacts.filter((a) => a.releaseId !== this.deploymentId);
        });
        await this.deps.state.removeEnv(this.deploymentId);
      }
      if (this.workspace && this.place) await this.deps.runtime.removeWorkspace(this.place, this.workspace);
    }
  }

  /** The end of every path that did not succeed: clean up, put traffic back, say what happened. */
  private async fail(error: unknown): Promise<void> {
    const { logger } = this.deps;
    const reason = this.stopReason;
    if (this.verified) {
      // After the verification only success can follow (the front records it when the lease ends):
      // the new release keeps serving, and the reconcile stops what is left of the old one.
      logger.warn('the drain did not finish; the new release serves and the reconcile finishes it', {
        deploymentId: this.deploymentId,
        error,
      });
      this.deps.keepShipping(this.instance!, this.tails, this.shipper);
      this.tails = [];
      return;
    }
    if (reason === 'lease-lost' || reason === 'agent-stopping') {
      // The front ended it (or will, when the lease runs out), and what serves now is its decision: the
      // reconcile that follows converges to the app's current release (route, instances, releases kept).
      logger.warn('deployment stopped', { deploymentId: this.deploymentId, reason });
      for (const tail of this.tails) await tail.stop();
      this.tails = [];
      return;
    }
    let reverted = false;
    if (this.switched) {
      reverted = await this.revert().catch((revertError: unknown) => {
        logger.error('cannot put traffic back on the previous release', { error: revertError });
        return false;
      });
    }
    await this.stopNewRelease().catch((cleanupError: unknown) =>
      logger.warn('cannot clean up a failed release', { error: cleanupError }),
    );
    if (reason === 'cancelled') {
      this.sys('cancelled');
      if (this.switched) await this.report({ phase: 'reverted' }).catch(() => undefined);
      else
        await this.report({ phase: 'cancelled', reverted }).catch((e: unknown) =>
          logger.warn('cancel report refused', { error: e }),
        );
      return;
    }
    const failure =
      error instanceof PhaseFailure
        ? error
        : new PhaseFailure(this.nextPhase(), (error as Error).message ?? String(error));
    this.sys(`failed at ${failure.phase}: ${failure.message}`);
    this.shipper.flush();
    logger.warn('deployment failed', {
      deploymentId: this.deploymentId,
      phase: failure.phase,
      reason: failure.message,
    });
    await this.report({
      phase: 'failed',
      failedPhase: failure.phase,
      reason: this.redactor.redact(failure.message).slice(0, 500),
      exitCode: failure.exitCode,
      signal: failure.signal,
      lastLines: [...this.lastLines],
      reverted,
    }).catch((reportError: unknown) => logger.warn('failure report refused', { error: reportError }));
  }

  private nextPhase(): DeploymentPhase {
    const status = this.progress?.status ?? 'claimed';
    const plan = planPhases(this.claimed?.kind ?? 'deploy');
    const index = plan.indexOf(status as DeploymentPhase);
    return plan[index + 1] ?? plan[0]!;
  }
}
