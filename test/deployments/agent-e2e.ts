/**
 * The deployment end-to-end tests' common ground: the whole system (test/e2e/stack.ts) with the
 * deployments service verifying through HAProxy, a real agent process running apps as their own uids, and
 * git repositories made from the fixture app (test/fixtures/apps/hello).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppView, DeploymentView } from '#contracts';
import { DEPLOY_REPOS, E2eStack, type RealAgent } from '../e2e/stack.js';
import { TestRepo } from '../harness/git.js';
import { waitFor } from '../harness/processes.js';

export const HELLO_FIXTURE = join(process.cwd(), 'test/fixtures/apps/hello');
export const isRoot = process.getuid?.() === 0;

export interface DeploymentRig {
  e2e: E2eStack;
  agent: RealAgent;
  /** The agent's directories, as its config names them. */
  agentDir: string;
  stop(): Promise<void>;
}

/** The stack and one agent that runs apps (`uidRange` and `portRange` of its own, so tests never collide). */
export async function startDeploymentRig(
  agentId: string,
  address: string,
  options: {
    uidBase: number;
    portBase: number;
    env?: Record<string, string>;
    /** Extra environment for every service of the stack (the certificates service's validity, …). */
    stackEnv?: Record<string, string>;
    /** More of the agent's deployments config. */
    deployments?: Record<string, unknown>;
  },
): Promise<DeploymentRig> {
  const e2e = await E2eStack.start({
    deployments: { env: options.env ?? {} },
    ...(options.stackEnv ? { env: options.stackEnv } : {}),
  });
  try {
    const agent = await e2e.startAgent(agentId, address, {
      deployments: {
        uidRange: [options.uidBase, options.uidBase + 99],
        portRange: [options.portBase, options.portBase + 99],
        ...options.deployments,
      },
      logLevel: 'info',
    });
    return {
      e2e,
      agent,
      agentDir: join(e2e.dir.path, `agent-${agentId}`),
      stop: () => e2e.stop(),
    };
  } catch (error) {
    await e2e.stop();
    throw error;
  }
}

/** A repository of the hello app under the service's file root, with `body.txt` saying `body`. */
export async function helloRepo(name: string, body = 'v1'): Promise<TestRepo> {
  const repo = await TestRepo.create(
    join(DEPLOY_REPOS, `${name}-${randomBytes(4).toString('hex')}`),
    HELLO_FIXTURE,
  );
  await repo.commit({ 'body.txt': `${body}\n` }, body);
  return repo;
}

export async function createApp(
  e2e: E2eStack,
  agentId: string,
  name: string,
  repo: TestRepo | null,
  extra: Record<string, unknown> = {},
): Promise<AppView> {
  const created = await e2e.request('POST', 'apps', {
    body: {
      name,
      agentId,
      source: repo ? { type: 'git', url: repo.url, ref: 'main' } : { type: 'upload' },
      healthCheck: { path: '/healthz', timeoutSeconds: 20 },
      drain: { delaySeconds: 1, stopTimeoutSeconds: 5 },
      ...extra,
    },
  });
  if (created.status !== 201) throw new Error(`app ${name} not created: ${JSON.stringify(created.body)}`);
  return created.body as unknown as AppView;
}

/** POST a deployment and wait for its end (200 succeeded, 502 otherwise): the view either way. */
export async function deployAndWait(
  e2e: E2eStack,
  path: string,
  body: Record<string, unknown> = {},
  timeoutMs = 120_000,
): Promise<{ status: number; view: DeploymentView }> {
  const response = await e2e.request('POST', `${path}?wait=succeeded&timeout=${timeoutMs}`, { body });
  if (response.status === 200) return { status: 200, view: response.body as unknown as DeploymentView };
  // 502: it ended otherwise; the body says where and carries the deployment.
  if (response.status === 502)
    return { status: 502, view: (response.body as { deployment: DeploymentView }).deployment };
  throw new Error(`unexpected answer ${response.status}: ${JSON.stringify(response.body)}`);
}

export async function appView(e2e: E2eStack, name: string): Promise<AppView> {
  return (await e2e.request('GET', `apps/${name}`)).body as unknown as AppView;
}

export async function deploymentLogs(e2e: E2eStack, deploymentId: string): Promise<string[]> {
  const response = await e2e.request('GET', `deployments/${deploymentId}/logs?tail=5000`);
  return ((response.body as { lines: { x: string }[] }).lines ?? []).map((line) => line.x);
}

/** Waits until the deployment's stored logs have a line matching `pattern`. */
export function logLine(e2e: E2eStack, deploymentId: string, pattern: RegExp): Promise<string> {
  return waitFor(
    `a log line matching ${pattern}`,
    async () => (await deploymentLogs(e2e, deploymentId)).find((line) => pattern.test(line)),
    { timeoutMs: 20_000, intervalMs: 200 },
  );
}

/** The body the app answers through HAProxy with its host name (HTTPS, the CloudLunacy CA). */
export async function bodyThroughFront(
  e2e: E2eStack,
  hostname: string,
  path = '/',
): Promise<{ status: number; body: string }> {
  const reply = await e2e.https(hostname, path);
  return { status: reply.status, body: reply.body.trim() };
}

export async function procStatusUid(pid: number): Promise<number | null> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = /^Uid:\s+(\d+)/m.exec(status);
  return match ? Number(match[1]) : null;
}
