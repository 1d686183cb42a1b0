import type { ResolvedManifest } from './manifest.js';

/**
 * How the agent runs an app's releases. The `process` runtime (process-runtime.ts) is built now; the
 * container runtime of issue 17 fits the same shape: an artifact is an image, an instance a container with
 * a published port. Everything around it (sources, manifest, ports, health gate, route switch, leases,
 * output shipping and redaction, reconcile) is the runtime's caller's and shared by both.
 */
export type RuntimeKind = 'process' | 'container';

export interface RuntimeCapabilities {
  kind: RuntimeKind;
  isolation: 'uid' | 'none';
  memoryLimit: boolean;
  processLimit: boolean;
  /** A sentence for logs and claims (what the host gave us, and what it did not). */
  detail: string;
}

/** An app's place on the VPS: its user and the directories it may write. */
export interface AppPlace {
  appName: string;
  uid: number;
  gid: number;
  /** Root-owned (root:gid 0710): the app can enter it but not rename what is in it. */
  dir: string;
  home: string;
  tmp: string;
  shared: string;
}

/** A built release, ready to start (again, for a rollback) without building. */
export interface Artifact {
  releaseId: string;
  number: number;
  /** Where the release lives (process: its directory; container: an image id). */
  location: string;
  artifactDigest: string;
  manifest: ResolvedManifest;
  commit: string | null;
  builtAt: string;
  /** Absent: a process release (as every record before containers). */
  runtime?: RuntimeKind;
  /** The plain env values it last started with (secrets are never kept here). */
  plainEnv?: Record<string, string>;
  /**
   * A container release of a database: the engine's image, run with the release's directory
   * (`location`, its configuration) mounted. Other container releases are their own image (`location`).
   */
  image?: string;
}

/** A running (or once running) release. */
export interface Instance {
  releaseId: string;
  number: number;
  port: number;
  /** The deployment whose log receives the instance's output. */
  deploymentId: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat at start: with the pid it names one process (pids are reused). */
  startTime: number;
  startedAt: string;
  stdoutPath: string;
  stderrPath: string;
  /** A container release's container (its `pid` is the container's first process, seen from the host). */
  containerId?: string;
}

export type InstanceState =
  | { state: 'running' }
  | { state: 'exited'; exitCode: number | null; signal: string | null }
  | { state: 'absent' };

/** Receives a command's output files as they grow (the caller tails and ships them). */
export interface CommandOutput {
  stdoutPath: string;
  stderrPath: string;
}

export interface CommandResult {
  exitCode: number | null;
  signal: string | null;
}

export interface Runtime {
  readonly kind: RuntimeKind;
  probe(): Promise<RuntimeCapabilities>;
  /** Makes (or finds) the app's user and directories. */
  prepareApp(appName: string): Promise<AppPlace>;
  /** A fresh, empty workspace for a release the app's user can write. */
  newWorkspace(place: AppPlace, releaseId: string, number: number): Promise<string>;
  /** Runs one command of a fetch or build as the app's user (argv, no shell of ours). */
  run(
    place: AppPlace,
    argv: string[],
    options: { cwd: string; env: Record<string, string>; output: CommandOutput; signal: AbortSignal },
  ): Promise<CommandResult>;
  /** Seals a built workspace into an artifact (read-only, digested). */
  commit(
    place: AppPlace,
    workspace: string,
    artifact: Omit<Artifact, 'location' | 'artifactDigest'>,
  ): Promise<Artifact>;
  start(
    place: AppPlace,
    artifact: Artifact,
    options: {
      port: number;
      env: Record<string, string>;
      deploymentId: string;
      limits: { memoryMb: number; processes: number };
    },
  ): Promise<Instance>;
  inspect(instance: Instance): Promise<InstanceState>;
  /** SIGTERM, then SIGKILL after `timeoutMs`: what it took. */
  stop(
    place: AppPlace,
    instance: Instance,
    options: { timeoutMs: number },
  ): Promise<'exit' | 'kill' | 'none'>;
  /** Recomputes an artifact's digest (a rollback refuses a release that changed on disk). */
  verify(artifact: Artifact): Promise<boolean>;
  removeArtifact(place: AppPlace, artifact: Artifact): Promise<void>;
  /** Removes a workspace that never became an artifact. */
  removeWorkspace(place: AppPlace, workspace: string): Promise<void>;
}

/**
 * Resolves, saying how, once `inspect` no longer finds the instance running (polled): for health gates
 * racing an exit. An inspection that fails counts as still running; nothing resolves after `signal`.
 */
export function untilNotRunning(inspect: () => Promise<InstanceState>, signal: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const check = async () => {
      if (signal.aborted) return;
      const state = await inspect().catch((): InstanceState => ({ state: 'running' }));
      if (state.state === 'running') {
        setTimeout(() => void check(), 100).unref();
        return;
      }
      resolve(
        state.state === 'exited'
          ? state.signal
            ? `was killed by ${state.signal}`
            : `exited with code ${state.exitCode}`
          : 'is gone',
      );
    };
    void check();
  });
}
