import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { Logger } from '#platform';
import type { AgentDeploymentsConfig } from '../config.js';
import {
  CONTAINER_LABELS,
  ContainerEngine,
  type ContainerState,
  type EngineInfo,
} from './container-engine.js';
import { databaseCommand, databaseFiles } from './database.js';
import { processStartTime } from './isolation.js';
import { releaseKey, type ProcessRuntime } from './process-runtime.js';
import {
  type AppPlace,
  type Artifact,
  type CommandOutput,
  type CommandResult,
  type Instance,
  type InstanceState,
  type RuntimeCapabilities,
  untilNotRunning,
} from './runtime.js';
import type { DeploymentState } from './state.js';

/** What a container release's digest is: of its image's id (content-addressed by the engine). */
const imageDigest = (imageId: string) => createHash('sha256').update(imageId).digest('hex');

/** The image of a release: `cloudlunacy/<app>:<number>-<id>` (kept for rollbacks, removed with it). */
export const imageTag = (appName: string, release: { number: number; releaseId: string }) =>
  `localhost/cloudlunacy/${appName}:${releaseKey(release)}`;

type Follower = { stop(): void; ended: Promise<void> };

/**
 * Releases as containers (docs/deployments.md, "Container runtime"): the source is fetched as for a
 * process release (into a workspace, as the app's uid), the Dockerfile at its root is built by the
 * engine into an image of the release, and the release runs as a container: the app's uid, its limits,
 * all capabilities dropped, a read-only root file system with the app's tmp and shared directories
 * mounted, on the host's network (it listens on `$HOST:$PORT` as a process release does). Its output is
 * followed into the same files a process release writes, so shipping and redaction are the same.
 */
export class ContainerRuntime {
  readonly kind = 'container' as const;
  private readonly followers = new Map<string, Follower>();
  private readonly lastExit = new Map<string, { exitCode: number | null; signal: string | null }>();
  private engineInfo?: EngineInfo;

  constructor(
    readonly engine: ContainerEngine,
    private readonly processes: ProcessRuntime,
    private readonly config: AgentDeploymentsConfig,
    private readonly state: DeploymentState,
    private readonly logger: Logger,
  ) {}

  async probe(): Promise<RuntimeCapabilities> {
    this.engineInfo = await this.engine.info();
    return {
      kind: 'container',
      isolation: 'uid',
      memoryLimit: true,
      processLimit: true,
      detail: `${this.engineInfo.name} ${this.engineInfo.version} (API ${this.engineInfo.apiVersion}) at ${this.engine.socketPath}`,
    };
  }

  /** Builds the workspace's Dockerfile into the release's image; the workspace goes, the image stays. */
  async build(
    place: AppPlace,
    workspace: string,
    artifact: Omit<Artifact, 'location' | 'artifactDigest' | 'runtime'>,
    options: {
      context: string;
      dockerfile: string;
      memoryMb: number;
      onLine: (line: string) => void;
      signal: AbortSignal;
    },
  ): Promise<Artifact> {
    const tag = imageTag(place.appName, artifact);
    const id = await this.engine.build(
      options.context,
      {
        tag,
        dockerfile: options.dockerfile,
        labels: { [CONTAINER_LABELS.app]: place.appName, [CONTAINER_LABELS.release]: artifact.releaseId },
        memoryMb: options.memoryMb,
      },
      options.onLine,
      options.signal,
    );
    await this.processes.removeWorkspace(place, workspace);
    return { ...artifact, runtime: 'container', location: tag, artifactDigest: imageDigest(id) };
  }

  /**
   * A pulled image as the release's: named with the release's tag, so that the release keeps exactly
   * this image whatever its registry's tag points at later, and loses only its own name when it goes.
   */
  async adopt(
    place: AppPlace,
    imageId: string,
    artifact: Omit<Artifact, 'location' | 'artifactDigest' | 'runtime'>,
  ): Promise<Artifact> {
    const tag = imageTag(place.appName, artifact);
    await this.engine.tag(imageId, tag);
    return { ...artifact, runtime: 'container', location: tag, artifactDigest: imageDigest(imageId) };
  }

  async start(
    place: AppPlace,
    artifact: Artifact,
    options: {
      port: number;
      env: Record<string, string>;
      deploymentId: string;
      limits: { memoryMb: number; processes: number };
    },
  ): Promise<Instance> {
    const output = await this.state.logPaths(
      place.appName,
      `${releaseKey(artifact)}-run-${options.deploymentId.slice(0, 8)}`,
    );
    // A database runs the engine's image on its own files, mounted where they are on the host.
    const database = artifact.image !== undefined;
    const files = databaseFiles(place);
    const id = await this.engine.run({
      name: `cl-${place.appName}-${releaseKey(artifact)}-${randomBytes(3).toString('hex')}`,
      image: artifact.image ?? artifact.location,
      command: database
        ? databaseCommand(artifact.location, options.port, options.env.HOST ?? '127.0.0.1')
        : [],
      // The app's home is not in the container: its tmp is, at /tmp.
      env: { ...options.env, HOME: '/tmp', TMPDIR: '/tmp' },
      user: `${place.uid}:${place.gid}`,
      labels: {
        [CONTAINER_LABELS.app]: place.appName,
        [CONTAINER_LABELS.release]: artifact.releaseId,
      },
      network: 'host',
      memoryMb: options.limits.memoryMb,
      cpus: this.config.container?.cpus ?? 1,
      processes: options.limits.processes,
      nofile: this.config.nofile,
      mounts: [
        { source: place.tmp, target: '/tmp' },
        { source: place.shared, target: place.shared },
        ...(database
          ? [
              { source: artifact.location, target: artifact.location, readOnly: true },
              { source: files.dir, target: files.dir, readOnly: true },
              { source: files.data, target: files.data },
              { source: files.run, target: files.run },
            ]
          : []),
      ],
      readOnlyRootfs: true,
    });
    const running = await this.engine.state(id);
    if (running.state !== 'running') {
      await this.engine.stop(id, 1_000).catch(() => undefined);
      throw new Error(`the container ${describeState(running)} at once`);
    }
    const instance: Instance = {
      releaseId: artifact.releaseId,
      number: artifact.number,
      port: options.port,
      deploymentId: options.deploymentId,
      pid: running.pid,
      startTime: (await processStartTime(running.pid)) ?? 0,
      startedAt: new Date().toISOString(),
      ...output,
      containerId: id,
    };
    await this.attach(instance, 0);
    return instance;
  }

  /** Follows a container's output into its files again (after the agent restarted: from then on). */
  async attach(instance: Instance, since?: number): Promise<void> {
    const id = instance.containerId!;
    if (this.followers.has(id)) return;
    const from =
      since ??
      Math.floor(
        (await stat(instance.stdoutPath).then(
          (found) => found.mtimeMs,
          () => Date.now(),
        )) / 1000,
      );
    const follower = await this.engine.followLogs(id, from, instance);
    this.followers.set(id, follower);
    void follower.ended.finally(() => this.followers.delete(id));
  }

  async inspect(instance: Instance): Promise<InstanceState> {
    const state = await this.engine.state(instance.containerId!);
    if (state.state === 'running') return { state: 'running' };
    if (state.state === 'exited') {
      const exit = { exitCode: state.exitCode, signal: state.oomKilled ? 'SIGKILL' : state.signal };
      this.lastExit.set(instance.containerId!, exit);
      return { state: 'exited', ...exit };
    }
    return { state: 'absent' };
  }

  exited(instance: Instance, signal: AbortSignal): Promise<string> {
    return untilNotRunning(() => this.inspect(instance), signal);
  }

  exitOf(instance: Instance): { exitCode: number | null; signal: string | null } | undefined {
    return this.lastExit.get(instance.containerId!);
  }

  async stop(
    place: AppPlace,
    instance: Instance,
    options: { timeoutMs: number },
  ): Promise<'exit' | 'kill' | 'none'> {
    const id = instance.containerId!;
    const how = await this.engine.stop(id, options.timeoutMs);
    this.followers.get(id)?.stop();
    this.lastExit.delete(id);
    this.logger.debug('container stopped', { app: place.appName, container: id, how });
    return how;
  }

  async verify(artifact: Artifact): Promise<boolean> {
    if (artifact.image !== undefined)
      return (
        (await this.processes.verify(artifact)) &&
        (await this.engine.imageId(artifact.image).catch(() => null)) === artifact.image
      );
    const id = await this.engine.imageId(artifact.location).catch(() => null);
    // Releases before names were kept by image id: the id is then its own location.
    return id !== null && (imageDigest(id) === artifact.artifactDigest || id === artifact.location);
  }

  /** A build's image goes with its release; an engine's image stays (other releases use it). */
  async removeArtifact(place: AppPlace, artifact: Artifact): Promise<void> {
    if (artifact.image !== undefined) await this.processes.removeArtifact(place, artifact);
    else await this.engine.removeImage(artifact.location);
  }
}

function describeState(state: ContainerState): string {
  if (state.state === 'exited')
    return state.oomKilled
      ? 'ran out of memory'
      : state.signal
        ? `was killed by ${state.signal}`
        : `exited with code ${state.exitCode}`;
  return state.state === 'absent' ? 'was gone' : 'ran';
}

/**
 * What the worker and the manager run releases with: each call goes to the runtime of the release it
 * is about (a container release's artifact and instances say so; everything else is a process's), and
 * the app's places, workspaces and fetch commands are the process runtime's for both.
 */
export class Runtimes {
  constructor(
    readonly processes: ProcessRuntime,
    readonly containers: ContainerRuntime | null,
  ) {}

  probe() {
    return this.processes.probe();
  }

  prepareApp(appName: string) {
    return this.processes.prepareApp(appName);
  }

  newWorkspace(place: AppPlace, releaseId: string, number: number) {
    return this.processes.newWorkspace(place, releaseId, number);
  }

  run(
    place: AppPlace,
    argv: string[],
    options: Parameters<ProcessRuntime['run']>[2] & { output: CommandOutput },
  ): Promise<CommandResult> {
    return this.processes.run(place, argv, options);
  }

  commit(place: AppPlace, workspace: string, artifact: Omit<Artifact, 'location' | 'artifactDigest'>) {
    return this.processes.commit(place, workspace, artifact);
  }

  removeWorkspace(place: AppPlace, workspace: string) {
    return this.processes.removeWorkspace(place, workspace);
  }

  removeTree(place: AppPlace, path: string) {
    return this.processes.removeTree(place, path);
  }

  private containersFor(what: string): ContainerRuntime {
    if (!this.containers)
      throw new Error(
        `${what} is a container release, and this agent has no container engine (deployments.container.socket; deploy/podman/)`,
      );
    return this.containers;
  }

  start(
    place: AppPlace,
    artifact: Artifact,
    options: Parameters<ProcessRuntime['start']>[2],
  ): Promise<Instance> {
    return artifact.runtime === 'container'
      ? this.containersFor(`release ${artifact.number}`).start(place, artifact, options)
      : this.processes.start(place, artifact, options);
  }

  inspect(instance: Instance): Promise<InstanceState> {
    return instance.containerId
      ? this.containersFor(`release ${instance.number}`).inspect(instance)
      : this.processes.inspect(instance);
  }

  exited(instance: Instance, signal: AbortSignal): Promise<string> {
    return instance.containerId
      ? this.containersFor(`release ${instance.number}`).exited(instance, signal)
      : this.processes.exited(instance, signal);
  }

  exitOf(instance: Instance) {
    return instance.containerId ? this.containers?.exitOf(instance) : this.processes.exitOf(instance);
  }

  stop(
    place: AppPlace,
    instance: Instance,
    options: { timeoutMs: number; limits?: { memoryMb: number; processes: number } },
  ): Promise<'exit' | 'kill' | 'none'> {
    return instance.containerId
      ? this.containersFor(`release ${instance.number}`).stop(place, instance, options)
      : this.processes.stop(place, instance, options);
  }

  /** After the agent restarted: a running container's output is followed into its files again. */
  async adopt(instance: Instance): Promise<void> {
    if (instance.containerId) await this.containers?.attach(instance);
  }

  verify(artifact: Artifact): Promise<boolean> {
    return artifact.runtime === 'container'
      ? (this.containers?.verify(artifact) ?? Promise.resolve(false))
      : this.processes.verify(artifact);
  }

  removeArtifact(place: AppPlace, artifact: Artifact): Promise<void> {
    return artifact.runtime === 'container'
      ? this.containersFor(`release ${artifact.number}`).removeArtifact(place, artifact)
      : this.processes.removeArtifact(place, artifact);
  }
}
