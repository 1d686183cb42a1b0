import { createWriteStream } from 'node:fs';
import Docker from 'dockerode';
import { pack } from 'tar-fs';

/**
 * The container runtime's engine: the Docker Engine API over its unix socket (Podman's compatible API
 * serves too: `podman system service`, see deploy/podman/), through dockerode. Only what the runtime
 * needs, each call bounded; nothing here decides policy (limits, users, mounts come from the caller).
 */

/** Every container the agent makes carries these labels: it finds its own, and never touches others. */
export const CONTAINER_LABELS = {
  app: 'io.cloudlunacy.app',
  release: 'io.cloudlunacy.release',
  agent: 'io.cloudlunacy.agent',
} as const;

export interface EngineInfo {
  /** "Docker Engine" or "Podman Engine". */
  name: string;
  version: string;
  apiVersion: string;
  os: string;
}

export interface ContainerSpec {
  name: string;
  image: string;
  /** argv, or the image's own command when empty. */
  command: string[];
  env: Record<string, string>;
  /** `uid:gid`: the app's own ids, never root. */
  user: string;
  workingDir?: string;
  labels: Record<string, string>;
  /** The host's network: the release listens on `$HOST:$PORT` as a process release would. */
  network: 'host';
  memoryMb: number;
  /** CPUs (fractions allowed); 0: no limit. */
  cpus: number;
  processes: number;
  nofile: number;
  /** Host directory → container path (read-write unless `readOnly`). */
  mounts: { source: string; target: string; readOnly?: boolean }[];
  readOnlyRootfs: boolean;
}

export type ContainerState =
  | { state: 'running'; pid: number; startedAt: string }
  | { state: 'exited'; exitCode: number | null; signal: string | null; oomKilled: boolean }
  | { state: 'absent' };

/** Exit codes above 128 are a signal's (128 + its number), as the engines report them. */
const SIGNALS: Record<number, string> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  6: 'SIGABRT',
  9: 'SIGKILL',
  15: 'SIGTERM',
};

export class ContainerEngine {
  private readonly docker: Docker;

  constructor(readonly socketPath: string) {
    this.docker = new Docker({ socketPath, timeout: 60_000 });
  }

  async info(): Promise<EngineInfo> {
    const version = await this.docker.version();
    const component = version.Components?.[0];
    return {
      name: component?.Name ?? 'Docker Engine',
      version: version.Version,
      apiVersion: version.ApiVersion,
      os: version.Os,
    };
  }

  async imageId(reference: string): Promise<string | null> {
    try {
      return (await this.docker.getImage(reference).inspect()).Id;
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return null;
      throw error;
    }
  }

  /** Pulls from a registry (the engine's own credentials and mirrors apply). */
  async pull(reference: string, onProgress: (line: string) => void): Promise<string> {
    const stream = await this.docker.pull(reference);
    await new Promise<void>((resolve, reject) =>
      this.docker.modem.followProgress(
        stream,
        (error: Error | null) => (error ? reject(error) : resolve()),
        (event: { status?: string; progress?: string; id?: string }) =>
          onProgress([event.id, event.status, event.progress].filter(Boolean).join(' ')),
      ),
    );
    const id = await this.imageId(reference);
    if (!id) throw new Error(`${reference} was pulled but cannot be found`);
    return id;
  }

  /**
   * Builds `dockerfile` in `context` (a directory of the app's source) as `tag`; build output lines go
   * to `onLine`. Resolves with the image id; a failed step rejects with the engine's message.
   */
  async build(
    context: string,
    options: { tag: string; dockerfile: string; labels: Record<string, string>; memoryMb: number },
    onLine: (line: string) => void,
    signal: AbortSignal,
  ): Promise<string> {
    const tar = pack(context);
    const stream = await this.docker.buildImage(tar, {
      t: options.tag,
      dockerfile: options.dockerfile,
      labels: options.labels,
      memory: options.memoryMb * 1024 * 1024,
      forcerm: true,
      abortSignal: signal,
    });
    let failure: string | null = null;
    await new Promise<void>((resolve, reject) =>
      this.docker.modem.followProgress(
        stream,
        (error: Error | null) => (error ? reject(error) : resolve()),
        (event: { stream?: string; error?: string; errorDetail?: { message?: string } }) => {
          if (event.stream) for (const line of event.stream.split('\n')) if (line.trim()) onLine(line);
          if (event.error) failure = event.errorDetail?.message ?? event.error;
        },
      ),
    );
    if (failure) throw new Error(failure);
    const id = await this.imageId(options.tag);
    if (!id) throw new Error(`the build of ${options.tag} left no image`);
    return id;
  }

  /** Gives an image another name (`repository:tag`). */
  async tag(image: string, reference: string): Promise<void> {
    const at = reference.lastIndexOf(':');
    await this.docker.getImage(image).tag({ repo: reference.slice(0, at), tag: reference.slice(at + 1) });
  }

  /** Removes a name; the image goes with its last name (and never while a container uses it). */
  async removeImage(reference: string): Promise<void> {
    try {
      await this.docker.getImage(reference).remove({ force: false });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
  }

  /** Creates and starts a container; resolves with its id once it runs. */
  async run(spec: ContainerSpec): Promise<string> {
    const container = await this.docker.createContainer({
      name: spec.name,
      Image: spec.image,
      ...(spec.command.length > 0 ? { Cmd: spec.command } : {}),
      Env: Object.entries(spec.env).map(([name, value]) => `${name}=${value}`),
      User: spec.user,
      ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
      Labels: spec.labels,
      HostConfig: {
        NetworkMode: spec.network,
        Memory: spec.memoryMb * 1024 * 1024,
        MemorySwap: spec.memoryMb * 1024 * 1024,
        ...(spec.cpus > 0 ? { NanoCpus: Math.round(spec.cpus * 1e9) } : {}),
        PidsLimit: spec.processes,
        Ulimits: [
          { Name: 'nofile', Soft: spec.nofile, Hard: spec.nofile },
          { Name: 'nproc', Soft: spec.processes, Hard: spec.processes },
        ],
        Binds: spec.mounts.map((mount) => `${mount.source}:${mount.target}:${mount.readOnly ? 'ro' : 'rw'}`),
        ReadonlyRootfs: spec.readOnlyRootfs,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        // The agent supervises (backoff, health gate): the engine does not restart behind its back.
        RestartPolicy: { Name: 'no' },
      },
    });
    try {
      await container.start();
    } catch (error) {
      await container.remove({ force: true }).catch(() => undefined);
      throw error;
    }
    return container.id;
  }

  async state(id: string): Promise<ContainerState> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(id).inspect();
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return { state: 'absent' };
      throw error;
    }
    const state = info.State;
    if (state.Running) return { state: 'running', pid: state.Pid, startedAt: state.StartedAt };
    const code = state.ExitCode;
    const signal = code > 128 ? (SIGNALS[code - 128] ?? `signal ${code - 128}`) : null;
    return { state: 'exited', exitCode: signal ? null : code, signal, oomKilled: state.OOMKilled };
  }

  /** SIGTERM, then SIGKILL after `timeoutMs` (the engine's stop), and the container is removed. */
  async stop(id: string, timeoutMs: number): Promise<'exit' | 'kill' | 'none'> {
    const before = await this.state(id);
    if (before.state === 'absent') return 'none';
    let how: 'exit' | 'kill' | 'none' = 'none';
    if (before.state === 'running') {
      const started = Date.now();
      await this.docker
        .getContainer(id)
        .stop({ t: Math.max(1, Math.ceil(timeoutMs / 1000)) })
        .catch((error: { statusCode?: number }) => {
          // 304: it stopped meanwhile.
          if (error.statusCode !== 304 && error.statusCode !== 404) throw error;
        });
      const after = await this.state(id);
      how =
        after.state === 'exited' && after.signal === 'SIGKILL' && Date.now() - started >= timeoutMs - 100
          ? 'kill'
          : 'exit';
    }
    await this.docker
      .getContainer(id)
      .remove({ force: true })
      .catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 404) throw error;
      });
    return how;
  }

  /** The container's output (stdout and stderr demultiplexed), from `since` (unix seconds). */
  async logs(id: string, since = 0): Promise<{ stdout: string; stderr: string }> {
    const buffer = (await this.docker
      .getContainer(id)
      .logs({ stdout: true, stderr: true, follow: false, since })) as unknown as Buffer;
    // Multiplexed frames: [stream, 0, 0, 0, size (4 bytes BE)] then the payload.
    let stdout = '';
    let stderr = '';
    for (let at = 0; at + 8 <= buffer.length;) {
      const size = buffer.readUInt32BE(at + 4);
      const payload = buffer.subarray(at + 8, at + 8 + size).toString('utf8');
      if (buffer[at] === 2) stderr += payload;
      else stdout += payload;
      at += 8 + size;
    }
    return { stdout, stderr };
  }

  /**
   * Follows a container's output into two files (appended, as a process release writes its own), from
   * `since` (unix seconds) on, until `stop` or the container ends.
   */
  async followLogs(
    id: string,
    since: number,
    files: { stdoutPath: string; stderrPath: string },
  ): Promise<{ stop(): void; ended: Promise<void> }> {
    const stream = (await this.docker
      .getContainer(id)
      .logs({ stdout: true, stderr: true, follow: true, since })) as unknown as NodeJS.ReadableStream & {
      destroy(): void;
    };
    const stdout = createWriteStream(files.stdoutPath, { flags: 'a', mode: 0o600 });
    const stderr = createWriteStream(files.stderrPath, { flags: 'a', mode: 0o600 });
    this.docker.modem.demuxStream(stream, stdout, stderr);
    const ended = new Promise<void>((resolve) => {
      const done = () => {
        stdout.end();
        stderr.end();
        resolve();
      };
      stream.once('end', done);
      stream.once('close', done);
      stream.once('error', done);
    });
    return { stop: () => stream.destroy(), ended };
  }

  /** The agent's own containers of an app (by label), running or not. */
  async containersOf(appName: string): Promise<{ id: string; name: string; release: string | null }[]> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [`${CONTAINER_LABELS.app}=${appName}`] },
    });
    return list.map((entry) => ({
      id: entry.Id,
      name: (entry.Names[0] ?? '').replace(/^\//, ''),
      release: entry.Labels[CONTAINER_LABELS.release] ?? null,
    }));
  }
}
