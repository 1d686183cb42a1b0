/**
 * A deployment with the container runtime for real (issue 17): the agent fetches the app's repository,
 * the engine (Podman's Docker-compatible API, from deploy/podman/service.sh) builds its Dockerfile, the
 * release runs as a container as the app's uid within its limits, passes the health gate, the route
 * switches and the front verifies it through HAProxy; the next release replaces it without a failed
 * request in between, and a rollback starts the kept image again without building. Skipped, saying why,
 * where podman cannot run.
 */
import { execFile } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ContainerEngine } from '../../apps/agent/src/deployments/container-engine.js';
import { DOMAIN } from '../e2e/stack.js';
import { podmanUnusable, startPodmanService, startRegistry, type PodmanService } from '../harness/podman.js';
import { makeTempDir, waitFor } from '../harness/processes.js';
import type { TestRepo } from '../harness/git.js';
import {
  bodyThroughFront,
  createApp,
  deployAndWait,
  deploymentLogs,
  helloRepo,
  HELLO_FIXTURE,
  isRoot,
  procStatusUid,
  startDeploymentRig,
  type DeploymentRig,
} from './agent-e2e.js';

const run = promisify(execFile);
const unusable = isRoot ? await podmanUnusable() : 'it needs root';
if (unusable) console.log(`container-deploy.test: skipped, podman cannot run here: ${unusable}`);
const describePodman = unusable ? describe.skip : describe;

const BASE = 'localhost/cloudlunacy-test/node:1';
const REDIS_IMAGE = 'localhost/cloudlunacy-test/redis:7';
const DOCKERFILE = `FROM ${BASE}\nWORKDIR /app\nCOPY . /app\nCMD ["node", "server.js"]\n`;
const UID_BASE = 62_850;

let podman: PodmanService;
let engine: ContainerEngine;
let rig: DeploymentRig;
let registry: { address: string; stop(): Promise<void> };
let repo: TestRepo;

beforeAll(async () => {
  if (unusable) return;
  registry = await startRegistry();
  podman = await startPodmanService({ insecureRegistries: [registry.address] });
  await podman.imageFromHost(BASE, ['node']);
  await podman.imageFromHost(REDIS_IMAGE, ['redis-server']);
  engine = new ContainerEngine(podman.socket);
  rig = await startDeploymentRig('boxed-a', '127.0.0.10', {
    uidBase: UID_BASE,
    portBase: 21_700,
    deployments: { container: { socket: podman.socket, cpus: 1, images: { redis: REDIS_IMAGE } } },
  });
  repo = await helloRepo('boxed');
  await repo.commit({ Dockerfile: DOCKERFILE, 'body.txt': 'boxed v1\n' }, 'v1 in a container');
}, 180_000);
afterAll(async () => {
  await rig?.stop();
  await podman?.stop();
  await registry?.stop();
}, 120_000);

async function failureOf(view: { deploymentId: string }): Promise<string> {
  return (await deploymentLogs(rig.e2e, view.deploymentId)).join('\n');
}

describePodman('an app with the container runtime', () => {
  const hostname = `boxed.apps.${DOMAIN}`;

  test('builds its Dockerfile, runs as its own uid in a container, and serves through the front', async () => {
    // The agent says it has the container runtime (its heartbeat), so the front takes container apps for it.
    await waitFor(
      'the agent to report the container runtime',
      async () =>
        ((await rig.e2e.request('GET', 'agents/boxed-a')).body as { runtimes?: string[] }).runtimes?.includes(
          'container',
        ) || undefined,
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    await createApp(rig.e2e, 'boxed-a', 'boxed', repo, { runtime: 'container' });
    const { status, view } = await deployAndWait(rig.e2e, 'apps/boxed/deployments');
    if (status !== 200)
      throw new Error(`deployment: ${JSON.stringify(view.failure)}\n${await failureOf(view)}`);
    expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'boxed v1' });
    const logs = (await deploymentLogs(rig.e2e, view.deploymentId)).join('\n');
    expect(logs).toContain('building the image from Dockerfile');
    expect(logs).toMatch(/COPY \. \/app/);
    // Its output reaches the deployment's log as a process release's does.
    expect(logs).toMatch(/hello listening on 127\.0\.0\.10:/);

    const containers = await engine.containersOf('boxed');
    expect(containers).toHaveLength(1);
    const state = await engine.state(containers[0]!.id);
    expect(state.state).toBe('running');
    const pid = state.state === 'running' ? state.pid : 0;
    const uid = await procStatusUid(pid);
    expect(uid).toBeGreaterThanOrEqual(UID_BASE);
    expect(uid).toBeLessThan(UID_BASE + 100);
    // No capabilities, whatever the image asks.
    expect((await readFile(`/proc/${pid}/status`, 'utf8')).match(/^CapEff:\s+(\w+)/m)?.[1]).toBe(
      '0000000000000000',
    );
  }, 180_000);

  test('the next release replaces it through the same switch and drain; a rollback starts the kept image', async () => {
    const before = (await engine.containersOf('boxed')).map((container) => container.id);
    await repo.commit({ 'body.txt': 'boxed v2\n' }, 'v2');
    const second = await deployAndWait(rig.e2e, 'apps/boxed/deployments');
    if (second.status !== 200) throw new Error(await failureOf(second.view));
    expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'boxed v2' });
    const after = (await engine.containersOf('boxed')).map((container) => container.id);
    expect(after).toHaveLength(1);
    expect(after).not.toContain(before[0]);

    const rollback = await deployAndWait(rig.e2e, 'apps/boxed/rollback', { release: 1 });
    if (rollback.status !== 200) throw new Error(await failureOf(rollback.view));
    expect(await bodyThroughFront(rig.e2e, hostname)).toEqual({ status: 200, body: 'boxed v1' });
    const logs = (await deploymentLogs(rig.e2e, rollback.view.deploymentId)).join('\n');
    expect(logs).toContain('starting kept release 1 again (no fetch, no build)');
    expect(logs).not.toContain('building the image');
  }, 180_000);

  test('a Redis database in a container: its files mounted, TLS and its password through the front, its data kept', async () => {
    const created = await rig.e2e.request('POST', 'apps', {
      body: {
        name: 'boxcache',
        agentId: 'boxed-a',
        source: { type: 'database', engine: 'redis' },
        runtime: 'container',
      },
    });
    expect(created.status).toBe(201);
    const first = await deployAndWait(rig.e2e, 'apps/boxcache/deployments');
    if (first.status !== 200)
      throw new Error(`${JSON.stringify(first.view.failure)}\n${await failureOf(first.view)}`);
    expect((await deploymentLogs(rig.e2e, first.view.deploymentId)).join('\n')).toContain(
      `using the image ${REDIS_IMAGE}`,
    );
    const credentials = (await rig.e2e.request('GET', 'apps/boxcache/credentials')).body as {
      password: string;
    };
    const cli = async (args: string[]) => {
      const { stdout } = await run(
        'redis-cli',
        [
          '--tls',
          '--sni',
          `boxcache.boxed-a.redis.${DOMAIN}`,
          '--cacert',
          rig.e2e.caFile,
          '-h',
          '127.0.0.1',
          '-p',
          String(rig.e2e.haproxy.ports.tlsSni),
          '--no-auth-warning',
          '-a',
          credentials.password,
          ...args,
        ],
        { timeout: 10_000 },
      );
      return stdout.trim();
    };
    expect(await cli(['SET', 'boxed', 'kept'])).toBe('OK');
    const [container] = await engine.containersOf('boxcache');
    const state = await engine.state(container!.id);
    expect(state.state).toBe('running');
    expect(await procStatusUid(state.state === 'running' ? state.pid : 0)).toBeGreaterThanOrEqual(UID_BASE);

    const second = await deployAndWait(rig.e2e, 'apps/boxcache/deployments');
    if (second.status !== 200) throw new Error(await failureOf(second.view));
    const kept = await waitFor(
      'the database after its redeploy',
      async () => (await cli(['GET', 'boxed']).catch(() => '')) || undefined,
      {
        timeoutMs: 15_000,
        intervalMs: 200,
      },
    );
    expect(kept).toBe('kept');
    expect(await engine.containersOf('boxcache')).toHaveLength(1);
  }, 180_000);

  test('an image from a registry: pulled at each deployment, kept under the release’s name for a rollback', async () => {
    const reference = `${registry.address}/team/hello:stable`;
    /** Builds the hello app saying `body` and pushes it to the registry as `reference`, nothing kept here. */
    const publish = async (body: string) => {
      const context = await makeTempDir('image');
      await cp(HELLO_FIXTURE, context.path, { recursive: true });
      await writeFile(join(context.path, 'body.txt'), `${body}\n`);
      await writeFile(join(context.path, 'Dockerfile'), DOCKERFILE);
      await engine.build(
        context.path,
        { tag: reference, dockerfile: 'Dockerfile', labels: {}, memoryMb: 256 },
        () => undefined,
        AbortSignal.timeout(60_000),
      );
      await context.remove();
      await podman.podman(['push', '--quiet', '--tls-verify=false', reference]);
      await podman.podman(['rmi', reference]);
    };
    await publish('pulled v1');
    expect(await engine.imageId(reference)).toBeNull();
    await createApp(rig.e2e, 'boxed-a', 'pulled', null, {
      source: { type: 'image', image: reference },
      runtime: 'container',
    });
    const first = await deployAndWait(rig.e2e, 'apps/pulled/deployments');
    if (first.status !== 200)
      throw new Error(`${JSON.stringify(first.view.failure)}\n${await failureOf(first.view)}`);
    expect(await bodyThroughFront(rig.e2e, `pulled.apps.${DOMAIN}`)).toEqual({
      status: 200,
      body: 'pulled v1',
    });
    expect((await deploymentLogs(rig.e2e, first.view.deploymentId)).join('\n')).toContain(
      `pulling ${reference}`,
    );

    // The tag moves in the registry: the next deployment pulls what it names now.
    await publish('pulled v2');
    const second = await deployAndWait(rig.e2e, 'apps/pulled/deployments');
    if (second.status !== 200) throw new Error(await failureOf(second.view));
    expect(await bodyThroughFront(rig.e2e, `pulled.apps.${DOMAIN}`)).toEqual({
      status: 200,
      body: 'pulled v2',
    });
    // Release 1 kept its own image, whatever the registry's tag says.
    const back = await deployAndWait(rig.e2e, 'apps/pulled/rollback', { release: 1 });
    if (back.status !== 200) throw new Error(await failureOf(back.view));
    expect(await bodyThroughFront(rig.e2e, `pulled.apps.${DOMAIN}`)).toEqual({
      status: 200,
      body: 'pulled v1',
    });

    // An image app takes no ref, and an image runs on the container runtime only.
    const refused = await rig.e2e.request('POST', 'apps', {
      body: { name: 'wrong', agentId: 'boxed-a', source: { type: 'image', image: reference } },
    });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ field: 'runtime' });
  }, 180_000);

  test('a source without a Dockerfile fails at built, saying what to do', async () => {
    const plain = await helloRepo('boxed-plain');
    await createApp(rig.e2e, 'boxed-a', 'plain', plain, { runtime: 'container' });
    const { status, view } = await deployAndWait(rig.e2e, 'apps/plain/deployments');
    expect(status).toBe(502);
    expect(view.failure).toMatchObject({ phase: 'built' });
    expect(view.failure!.reason).toMatch(/builds Dockerfile of the source, and there is none/);
  }, 120_000);
});
