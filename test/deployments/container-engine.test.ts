/**
 * The container runtime's engine against a real Podman (its Docker-compatible API, set up by
 * deploy/podman/service.sh; images from deploy/podman/image-from-host.sh): containers run as the app's
 * uid with their memory, process and file limits, on the host's address, with a data volume; exits and
 * signals are told apart; a stop escalates to SIGKILL after its timeout; an image builds from a
 * Dockerfile. Skipped, saying why, where podman cannot run.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ContainerEngine, CONTAINER_LABELS } from '../../apps/agent/src/deployments/container-engine.js';
import { freePort } from '../harness/ports.js';
import { podmanUnusable, startPodmanService, type PodmanService } from '../harness/podman.js';
import { makeTempDir, portAccepts, waitFor } from '../harness/processes.js';
import { procStatusUid } from './agent-e2e.js';

const run = promisify(execFile);
const unusable = await podmanUnusable();
if (unusable) console.log(`container-engine.test: skipped, podman cannot run here: ${unusable}`);
const describePodman = unusable ? describe.skip : describe;

const IMAGE = 'localhost/cloudlunacy-test/base:1';
const UID = 62_950;
const ADDRESS = '127.0.0.1';

let podman: PodmanService;
let engine: ContainerEngine;
let temp: { path: string; remove(): Promise<void> };

beforeAll(async () => {
  if (unusable) return;
  temp = await makeTempDir('engine');
  podman = await startPodmanService();
  await podman.imageFromHost(IMAGE, ['redis-server', 'redis-cli', 'dash', 'sleep', 'cat']);
  engine = new ContainerEngine(podman.socket);
}, 120_000);
afterAll(async () => {
  await podman?.stop();
  await temp?.remove();
}, 120_000);

const base = (
  name: string,
  command: string[],
  extra: Partial<Parameters<ContainerEngine['run']>[0]> = {},
) => ({
  name,
  image: IMAGE,
  command,
  env: {},
  user: `${UID}:${UID}`,
  labels: { [CONTAINER_LABELS.app]: 'engine-test', [CONTAINER_LABELS.release]: name },
  network: 'host' as const,
  memoryMb: 64,
  cpus: 0.5,
  processes: 64,
  nofile: 1024,
  mounts: [],
  readOnlyRootfs: true,
  ...extra,
});

/** The memory limit the kernel enforces on a process (cgroup v1 or v2). */
async function memoryLimitOf(pid: number): Promise<number> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
  const v1 = lines.find((line) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(line));
  if (v1) {
    const path = v1.split(':')[2]!;
    return Number(await readFile(`/sys/fs/cgroup/memory${path}/memory.limit_in_bytes`, 'utf8'));
  }
  const v2 = lines.find((line) => line.startsWith('0::'))!.slice(3);
  return Number(await readFile(`/sys/fs/cgroup${v2}/memory.max`, 'utf8'));
}

describePodman('the container engine (Podman)', () => {
  test('speaks the Docker Engine API', async () => {
    expect(await engine.info()).toMatchObject({ name: 'Podman Engine', os: 'linux' });
    expect(await engine.imageId(IMAGE)).toMatch(/^(sha256:)?[0-9a-f]{64}$/);
    expect(await engine.imageId('localhost/none:0')).toBeNull();
  });

  test('runs a release as its uid, within its limits, on the host address, with a data volume', async () => {
    const data = join(temp.path, 'data');
    await mkdir(data, { mode: 0o700 });
    await run('chown', [`${UID}:${UID}`, data]);
    const port = await freePort();
    const id = await engine.run(
      base(
        'redis-1',
        [
          'redis-server',
          '--port',
          String(port),
          '--bind',
          ADDRESS,
          '--dir',
          '/data',
          '--save',
          '',
          '--appendonly',
          'yes',
        ],
        {
          mounts: [{ source: data, target: '/data' }],
        },
      ),
    );
    const running = await engine.state(id);
    expect(running.state).toBe('running');
    const pid = running.state === 'running' ? running.pid : 0;
    expect(await procStatusUid(pid)).toBe(UID);
    expect(await memoryLimitOf(pid)).toBe(64 * 1024 * 1024);
    expect((await readFile(`/proc/${pid}/limits`, 'utf8')).match(/Max open files\s+(\d+)/)?.[1]).toBe('1024');
    await waitFor('redis in the container', () => portAccepts(port, ADDRESS), { timeoutMs: 10_000 });
    const { stdout } = await run('redis-cli', ['-h', ADDRESS, '-p', String(port), 'SET', 'k', 'v']);
    expect(stdout.trim()).toBe('OK');
    // What it writes lands in the volume, owned by its uid.
    const aof = await waitFor('its append-only file', () =>
      stat(join(data, 'appendonlydir')).catch(() => undefined),
    );
    expect(aof.uid).toBe(UID);
    expect(await engine.stop(id, 5_000)).toBe('exit');
    expect(await engine.state(id)).toEqual({ state: 'absent' });
    expect((await engine.containersOf('engine-test')).map((c) => c.name)).not.toContain('redis-1');
  }, 60_000);

  test('tells an exit code from a signal, and a stop that needs SIGKILL', async () => {
    const exits = await engine.run(base('exits', ['dash', '-c', 'exit 3']));
    const exited = await waitFor('the exit', async () => {
      const state = await engine.state(exits);
      return state.state === 'exited' ? state : undefined;
    });
    expect(exited).toMatchObject({ exitCode: 3, signal: null, oomKilled: false });
    await engine.stop(exits, 1_000);

    const stubborn = await engine.run(
      base('stubborn', ['dash', '-c', 'trap "" TERM; while :; do sleep 1; done']),
    );
    const started = Date.now();
    expect(await engine.stop(stubborn, 1_000)).toBe('kill');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  }, 60_000);

  test('builds an image from a Dockerfile in the source, and its output comes back', async () => {
    const context = join(temp.path, 'context');
    await mkdir(context);
    await writeFile(join(context, 'Dockerfile'), `FROM ${IMAGE}\nCOPY hello.txt /srv/hello.txt\n`);
    await writeFile(join(context, 'hello.txt'), 'built here\n');
    const lines: string[] = [];
    const id = await engine.build(
      context,
      { tag: 'localhost/cloudlunacy-test/built:1', dockerfile: 'Dockerfile', labels: {}, memoryMb: 256 },
      (line) => lines.push(line),
      AbortSignal.timeout(60_000),
    );
    expect(id).toMatch(/[0-9a-f]{12,}/);
    expect(lines.join('\n')).toMatch(/COPY hello.txt/);
    const container = await engine.run(
      base('reads', ['cat', '/srv/hello.txt'], { image: 'localhost/cloudlunacy-test/built:1' }),
    );
    await waitFor('it to finish', async () =>
      (await engine.state(container)).state === 'exited' ? true : undefined,
    );
    expect((await engine.logs(container)).stdout).toBe('built here\n');
    await engine.stop(container, 1_000);
    // A failed step says why.
    await writeFile(join(context, 'Dockerfile'), `FROM ${IMAGE}\nCOPY missing.txt /srv/\n`);
    await expect(
      engine.build(
        context,
        { tag: 'localhost/cloudlunacy-test/broken:1', dockerfile: 'Dockerfile', labels: {}, memoryMb: 256 },
        () => undefined,
        AbortSignal.timeout(60_000),
      ),
    ).rejects.toThrow(/missing\.txt/);
  }, 120_000);
});
