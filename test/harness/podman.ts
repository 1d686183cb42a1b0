/**
 * Podman for the container runtime's tests, set up the way deploy/podman/ documents it: its
 * Docker-compatible API from deploy/podman/service.sh (with the hybrid-cgroup workaround where this host
 * needs it), its own storage under a temporary directory, and images from deploy/podman/image-from-host.sh
 * (no registry is reachable here). Never a mock: a test that cannot have it is skipped and says why.
 */
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './apps.js';
import { makeTempDir, startProcess, waitFor, type RunningProcess } from './processes.js';

const run = promisify(execFile);

export interface PodmanService {
  socket: string;
  /** `--root … --runroot …`: this service's own storage, for podman commands of the test. */
  storage: string[];
  process: RunningProcess;
  /** An image of host programs (deploy/podman/image-from-host.sh). */
  imageFromHost(tag: string, programs: string[]): Promise<void>;
  stop(): Promise<void>;
}

/** Why podman cannot be used here, or null when it can. */
export async function podmanUnusable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'it needs root (rootless podman is not set up here)';
  try {
    await run('podman', ['--version'], { timeout: 10_000 });
  } catch {
    return 'podman is not installed (deploy/debian-packages.sh test installs it)';
  }
  return null;
}

export async function startPodmanService(): Promise<PodmanService> {
  const dir = await makeTempDir('podman');
  const socket = join(dir.path, 'podman.sock');
  const storage = ['--root', join(dir.path, 'storage'), '--runroot', join(dir.path, 'run')];
  const service = startProcess(join(repoRoot, 'deploy/podman/service.sh'), ['--socket', socket, ...storage]);
  try {
    await waitFor(
      'the podman API socket',
      async () => {
        if (service.child.exitCode !== null) throw new Error(`podman service exited:\n${service.output()}`);
        return access(socket).then(
          () => true,
          () => undefined,
        );
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  } catch (error) {
    await service.stop();
    await dir.remove();
    throw error;
  }
  return {
    socket,
    storage,
    process: service,
    imageFromHost: async (tag, programs) => {
      await run(join(repoRoot, 'deploy/podman/image-from-host.sh'), [...storage, tag, ...programs], {
        timeout: 120_000,
      });
    },
    stop: async () => {
      // Containers the tests left: removed with the storage (the service stops first).
      await run('podman', [...storage, 'rm', '--all', '--force', '--time', '1'], { timeout: 60_000 }).catch(
        () => undefined,
      );
      await service.stop();
      await run('podman', [...storage, 'system', 'reset', '--force'], { timeout: 60_000 }).catch(
        () => undefined,
      );
      await dir.remove();
    },
  };
}
