import { closeSync, openSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '#platform';
import type { AgentDeploymentsConfig } from '../config.js';
import { artifactDigest, makeReadOnly } from './digest.js';
import {
  createReleaseCgroup,
  isAlive,
  killReleaseGroup,
  probeIsolation,
  processStartTime,
  spawnIsolated,
  type IsolationProbe,
  type ReleaseCgroup,
} from './isolation.js';
import type { DeploymentState } from './state.js';
import { ensureSystemUser, systemUserToolsPresent, uidAvailable } from './system-users.js';
import {
  type AppPlace,
  type Artifact,
  type CommandOutput,
  type CommandResult,
  type Instance,
  type InstanceState,
  type Runtime,
  type RuntimeCapabilities,
  untilNotRunning,
} from './runtime.js';

/** `<number>-<first 8 of the id>`: a release's directory and cgroup name, readable and unique. */
export const releaseKey = (release: { number: number; releaseId: string }) =>
  `${release.number}-${release.releaseId.slice(0, 8)}`;

/** How long a command gets between SIGTERM and SIGKILL when it is aborted. */
const ABORT_GRACE_MS = 2_000;

/**
 * Releases as supervised processes on the VPS (docs/plans/deployments.md §7.3): one numeric uid per app
 * through setpriv (no passwd entry), the app's directories 0700, a cgroup per release with memory and
 * process limits where the host delegates them, rlimits always. Processes are started detached (their own
 * session), write to files the agent opened, and so survive an agent that stops or crashes.
 */
export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const;
  private isolation?: IsolationProbe;
  /** How the processes this agent started ended (adopted ones are known by /proc only). */
  private readonly exits = new Map<number, { exitCode: number | null; signal: string | null }>();
  /** Whether apps get passwd entries (deployments.systemUsers), and those made in this run. */
  private systemUsers = false;
  private readonly namedUids = new Set<number>();

  constructor(
    private readonly config: AgentDeploymentsConfig,
    private readonly state: DeploymentState,
    private readonly logger: Logger,
  ) {}

  async probe(): Promise<RuntimeCapabilities> {
    const found = await probeIsolation();
    const wanted = this.config.isolation;
    if (wanted === 'uid' && found.isolation !== 'uid')
      throw new Error(
        `deployments.isolation is "uid" but ${found.detail}: run the agent as root, or set "isolation": "none" (development only)`,
      );
    this.isolation = {
      isolation: wanted,
      cgroup: this.config.cgroups === 'off' ? null : found.cgroup,
      detail: wanted === 'none' ? 'isolation none: apps run as the agent’s own user' : found.detail,
    };
    const wantsNames = wanted === 'uid' && this.config.systemUsers === 'auto';
    this.systemUsers = wantsNames && (await systemUserToolsPresent());
    if (wantsNames && !this.systemUsers)
      this.logger.warn(
        'no useradd here: apps run under numeric uids without names (git over ssh needs them)',
      );
    const cgroup = this.isolation.cgroup;
    return {
      kind: 'process',
      isolation: wanted,
      memoryLimit: !!cgroup?.memory,
      processLimit: !!cgroup?.pids || wanted === 'uid',
      detail: this.isolation.detail,
    };
  }

  private get probed(): IsolationProbe {
    if (!this.isolation) throw new Error('the runtime was not probed');
    return this.isolation;
  }

  private get uidIsolated(): boolean {
    return this.probed.isolation === 'uid';
  }

  /** A directory of ours: made if missing, never a symlink, with this owner and mode. */
  private async ownedDir(path: string, uid: number, gid: number, mode: number): Promise<void> {
    await mkdir(path, { recursive: true, mode });
    const stat = await lstat(path);
    if (!stat.isDirectory()) throw new Error(`${path} is not a directory`);
    if (this.uidIsolated) await chown(path, uid, gid);
    await chmod(path, mode);
  }

  async prepareApp(appName: string): Promise<AppPlace> {
    const own = process.getuid?.() ?? 0;
    const uid = this.uidIsolated
      ? await this.state.uidFor(appName, this.config.uidRange, this.systemUsers ? uidAvailable : undefined)
      : own;
    const gid = this.uidIsolated ? uid : (process.getgid?.() ?? 0);
    const base = this.config.dir;
    await this.ownedDir(base, own, process.getgid?.() ?? 0, 0o711);
    const dir = join(base, appName);
    // Root-owned with the app's group: the app enters it but cannot rename or replace what is in it, so
    // nothing the agent (root) touches later can be swapped for a symlink by the app.
    await this.ownedDir(dir, own, gid, this.uidIsolated ? 0o710 : 0o700);
    await this.ownedDir(join(dir, 'releases'), own, gid, this.uidIsolated ? 0o710 : 0o700);
    const place: AppPlace = {
      appName,
      uid,
      gid,
      dir,
      home: join(dir, 'home'),
      tmp: join(dir, 'tmp'),
      shared: join(dir, 'shared'),
    };
    for (const path of [place.home, place.tmp, place.shared]) await this.ownedDir(path, uid, gid, 0o700);
    if (this.systemUsers && !this.namedUids.has(uid)) {
      await ensureSystemUser({ uid, appName, home: place.home });
      this.namedUids.add(uid);
    }
    return place;
  }

  releaseDir(place: AppPlace, release: { number: number; releaseId: string }): string {
    return join(place.dir, 'releases', releaseKey(release));
  }

  async newWorkspace(place: AppPlace, releaseId: string, number: number): Promise<string> {
    const workspace = `${this.releaseDir(place, { releaseId, number })}.tmp`;
    await this.removeTree(place, workspace);
    await this.ownedDir(workspace, place.uid, place.gid, 0o700);
    return workspace;
  }

  private spawn(
    place: AppPlace,
    argv: string[],
    options: {
      cwd: string;
      env: Record<string, string>;
      output: CommandOutput;
      processes: number;
      cgroup?: ReleaseCgroup;
    },
  ) {
    const stdout = openSync(options.output.stdoutPath, 'a', 0o600);
    const stderr = openSync(options.output.stderrPath, 'a', 0o600);
    try {
      const child = spawnIsolated(argv, {
        isolation: this.probed.isolation,
        uid: place.uid,
        gid: place.gid,
        cwd: options.cwd,
        env: options.env,
        ...(options.cgroup ? { cgroupProcsFiles: options.cgroup.procsFiles } : {}),
        nofile: this.config.nofile,
        nproc: options.processes,
        stdout,
        stderr,
      });
      child.on('exit', (exitCode, signal) => {
        if (child.pid !== undefined) this.exits.set(child.pid, { exitCode, signal });
      });
      // The agent must be able to exit while its apps run on.
      child.unref();
      return child;
    } finally {
      closeSync(stdout);
      closeSync(stderr);
    }
  }

  async run(
    place: AppPlace,
    argv: string[],
    options: {
      cwd: string;
      env: Record<string, string>;
      output: CommandOutput;
      signal: AbortSignal;
      processes?: number;
      /**
       * Run it in a cgroup of this name with these limits (where the host gives cgroups): a build is
       * bounded like a release, and whatever it left running, even outside its process group, is killed.
       */
      cgroup?: { name: string; limits: { memoryMb: number; processes: number } };
      onStart?: (process: { pid: number; startTime: number }) => Promise<void> | void;
    },
  ): Promise<CommandResult> {
    options.signal.throwIfAborted();
    const cgroup =
      options.cgroup && this.probed.cgroup
        ? await createReleaseCgroup(
            this.probed.cgroup,
            place.appName,
            options.cgroup.name,
            options.cgroup.limits,
          )
        : undefined;
    const child = this.spawn(place, argv, {
      cwd: options.cwd,
      env: options.env,
      output: options.output,
      processes: options.processes ?? options.cgroup?.limits.processes ?? 512,
      ...(cgroup ? { cgroup } : {}),
    });
    const ended = new Promise<CommandResult>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (exitCode, signal) => resolve({ exitCode, signal }));
    });
    const pid = child.pid;
    if (pid === undefined) return ended;
    const startTime = await processStartTime(pid);
    if (startTime !== null) await options.onStart?.({ pid, startTime });
    const abort = () =>
      void killReleaseGroup(pid, cgroup, { graceMs: ABORT_GRACE_MS }).catch(() => undefined);
    options.signal.addEventListener('abort', abort, { once: true });
    try {
      return await ended;
    } finally {
      options.signal.removeEventListener('abort', abort);
      this.exits.delete(pid);
      // What a command left behind in its group or its cgroup (a daemonised child) does not outlive it.
      await killReleaseGroup(pid, cgroup, { graceMs: 200 }).catch(() => undefined);
      await cgroup
        ?.remove()
        .catch((error: unknown) =>
          this.logger.warn('cannot remove a build cgroup', { app: place.appName, error }),
        );
    }
  }

  async commit(
    place: AppPlace,
    workspace: string,
    artifact: Omit<Artifact, 'location' | 'artifactDigest'>,
  ): Promise<Artifact> {
    const location = this.releaseDir(place, artifact);
    await this.removeTree(place, location);
    await rename(workspace, location);
    // What was built is what a rollback starts: no writes into the release, and a digest to prove it.
    // The app owns the tree, so it could undo this; the digest is what a rollback checks.
    if (this.uidIsolated) await this.asApp(place, ['chmod', '-R', 'a-w', '--', location]);
    else await makeReadOnly(location);
    return { ...artifact, location, artifactDigest: await artifactDigest(location) };
  }

  private cgroupFor(
    place: AppPlace,
    artifact: { number: number; releaseId: string },
    limits: { memoryMb: number; processes: number },
  ) {
    const cgroup = this.probed.cgroup;
    return cgroup ? createReleaseCgroup(cgroup, place.appName, releaseKey(artifact), limits) : undefined;
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
    const cgroup = await this.cgroupFor(place, artifact, options.limits);
    const child = this.spawn(place, ['/bin/sh', '-c', artifact.manifest.start], {
      cwd: join(artifact.location, artifact.manifest.root),
      env: options.env,
      output,
      processes: options.limits.processes,
      ...(cgroup ? { cgroup } : {}),
    });
    const pid = await new Promise<number>((resolve, reject) => {
      if (child.pid !== undefined) resolve(child.pid);
      else child.once('error', reject);
    });
    const startTime = await processStartTime(pid);
    if (startTime === null) {
      const exit = this.exits.get(pid);
      throw new Error(
        `the release exited at once${exit ? ` (code ${exit.exitCode}, signal ${exit.signal})` : ''}`,
      );
    }
    return {
      releaseId: artifact.releaseId,
      number: artifact.number,
      port: options.port,
      deploymentId: options.deploymentId,
      pid,
      startTime,
      startedAt: new Date().toISOString(),
      ...output,
    };
  }

  async inspect(instance: Instance): Promise<InstanceState> {
    const exit = this.exits.get(instance.pid);
    if (exit) return { state: 'exited', ...exit };
    return (await isAlive(instance.pid, instance.startTime)) ? { state: 'running' } : { state: 'absent' };
  }

  /** Waits until the instance is not running (or the time is up): for health gates racing an exit. */
  exited(instance: Instance, signal: AbortSignal): Promise<string> {
    return untilNotRunning(() => this.inspect(instance), signal);
  }

  exitOf(instance: Instance): { exitCode: number | null; signal: string | null } | undefined {
    return this.exits.get(instance.pid);
  }

  async stop(
    place: AppPlace,
    instance: Instance,
    options: { timeoutMs: number; limits?: { memoryMb: number; processes: number } },
  ): Promise<'exit' | 'kill' | 'none'> {
    const cgroup = await Promise.resolve(
      this.cgroupFor(place, instance, options.limits ?? { memoryMb: 65536, processes: 4096 }),
    ).catch(() => undefined);
    // Only a process group whose leader is still the one we started is ours to signal: pids are reused.
    const ours = (await processStartTime(instance.pid)) === instance.startTime;
    let stoppedBy: 'exit' | 'kill' | 'none' = 'none';
    if (ours) stoppedBy = await killReleaseGroup(instance.pid, cgroup, { graceMs: options.timeoutMs });
    else if (cgroup) {
      for (const pid of await cgroup.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
          stoppedBy = 'kill';
        } catch {
          // gone already
        }
      }
    }
    this.exits.delete(instance.pid);
    await cgroup
      ?.remove()
      .catch((error: unknown) =>
        this.logger.warn('cannot remove a release cgroup', { app: place.appName, error }),
      );
    return stoppedBy;
  }

  async verify(artifact: Artifact): Promise<boolean> {
    try {
      return (await artifactDigest(artifact.location)) === artifact.artifactDigest;
    } catch {
      return false;
    }
  }

  async removeArtifact(place: AppPlace, artifact: Artifact): Promise<void> {
    await this.removeTree(place, artifact.location);
  }

  async removeWorkspace(place: AppPlace, workspace: string): Promise<void> {
    await this.removeTree(place, workspace);
  }

  /**
   * Runs a fixed command as the app's user (no output kept): what root must not do in a tree the app
   * owns, where the app could swap a directory for a symlink between two of root's steps.
   */
  private async asApp(place: AppPlace, argv: string[]): Promise<void> {
    const child = spawnIsolated(argv, {
      isolation: this.probed.isolation,
      uid: place.uid,
      gid: place.gid,
      cwd: '/',
      env: { PATH: '/usr/bin:/bin', HOME: place.home },
      nofile: this.config.nofile,
      nproc: 4096,
      stdout: 'ignore',
      stderr: 'ignore',
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (exitCode) => resolve(exitCode));
    });
    if (code !== 0) throw new Error(`${argv[0]} as the app's user exited with ${code}`);
  }

  /**
   * Removes a tree the app owns. The contents go as the app's user (it can only delete what it could
   * delete anyway); root then removes the emptied top, which sits in a directory only root writes.
   */
  async removeTree(place: AppPlace, path: string): Promise<void> {
    if (!this.uidIsolated) {
      await rm(path, { recursive: true, force: true });
      return;
    }
    const exists = await lstat(path).then(
      () => true,
      () => false,
    );
    if (!exists) return;
    for (let attempt = 0; attempt < 3; attempt++) {
      // Read-only release directories must become writable (to their owner) before their entries go.
      await this.asApp(place, [
        '/bin/sh',
        '-c',
        'chmod -R u+w -- "$1" 2>/dev/null; rm -rf --one-file-system -- "$1"; exit 0',
        'cl-rm',
        path,
      ]);
      try {
        await rmdir(path);
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw error;
        // ENOTDIR: the app put a file (or a link) in its place; unlinking it does not follow it.
        if (code === 'ENOTDIR') {
          await unlink(path);
          return;
        }
      }
    }
    throw new Error(`cannot remove ${path}: the app keeps writing into it`);
  }
}
