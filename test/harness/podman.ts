/**
 * Podman for the container runtime's tests, set up the way deploy/podman/ documents it: its
 * Docker-compatible API from deploy/podman/service.sh (with the hybrid-cgroup workaround where this host
 * needs it), its own storage under a temporary directory, and images from deploy/podman/image-from-host.sh
 * (no registry is reachable here). Never a mock: a test that cannot have it is skipped and says why.
 */
import { execFile } from 'node:child_process';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './apps.js';
import { freePort } from './ports.js';
import { makeTempDir, portAccepts, startProcess, waitFor, type RunningProcess } from './processes.js';

const run = promisify(execFile);

export interface PodmanService {
  socket: string;
  /** `--root … --runroot …`: this service's own storage, for podman commands of the test. */
  storage: string[];
  process: RunningProcess;
  /** A podman command on this service's storage and registries. */
  podman(args: string[]): Promise<string>;
  /** An image of host programs (deploy/podman/image-from-host.sh). */
  imageFromHost(tag: string, programs: string[]): Promise<void>;
  stop(): Promise<void>;
}

/** Why podman cannot be used here, or null when it can. */
/** A registry of the test's own (Debian's docker-registry) on a loopback port, over plain HTTP. */
export async function startRegistry(): Promise<{ address: string; stop(): Promise<void> }> {
  const dir = await makeTempDir('registry');
  const port = await freePort();
  const config = join(dir.path, 'config.yml');
  await mkdir(join(dir.path, 'data'));
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir.path, 'data')}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const registry = startProcess('docker-registry', ['serve', config]);
  await waitFor(`docker-registry on ${port}`, () => portAccepts(port) || undefined, {
    timeoutMs: 15_000,
  }).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${registry.output()}`);
  });
  return {
    address: `127.0.0.1:${port}`,
    stop: async () => {
      await registry.stop();
      await dir.remove();
    },
  };
}

export async function podmanUnusable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'it needs root (rootless podman is not set up here)';
  try {
    await run('podman', ['--version'], { timeout: 10_000 });
  } catch {
    return 'podman is not installed (deploy/debian-packages.sh test installs it)';
  }
  return null;
}

/**
 * `insecureRegistries`: registries on loopback served over plain HTTP (a test's own docker-registry),
 * which the engine may pull from and push to.
 */
export async function startPodmanService(
  options: { insecureRegistries?: string[] } = {},
): Promise<PodmanService> {
  const dir = await makeTempDir('podman');
  const socket = join(dir.path, 'podman.sock');
  const storage = ['--root', join(dir.path, 'storage'), '--runroot', join(dir.path, 'run')];
  const registriesConf = join(dir.path, 'registries.conf');
  await writeFile(
    registriesConf,
    (options.insecureRegistries ?? [])
      .map((location) => `[[registry]]\nlocation = "${location}"\ninsecure = true\n`)
      .join('\n'),
  );
  const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: registriesConf };
  const service = startProcess(join(repoRoot, 'deploy/podman/service.sh'), ['--socket', socket, ...storage], {
    env,
  });
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
    podman: async (args) => {
      const { stdout } = await run('podman', [...storage, ...args], { timeout: 120_000, env });
      return stdout;
    },
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
