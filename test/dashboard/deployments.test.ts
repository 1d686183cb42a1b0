/**
 * The dashboard's apps and deployments pages in a real browser, against registration, projector, the
 * deployments service and the API (test/deployments/helpers.ts). The agent's side is the scripted
 * protocol client over a real enrolled agent's broker credentials: it claims, reports phase by phase and
 * publishes its output, while the page follows without a reload. Any console error fails a test.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Browser, Page } from 'playwright-core';
import { agentLogSubject, deploymentCommands, type AppView } from '#contracts';
import type { AgentsStack } from '../harness/stack.js';
import { waitFor } from '../harness/processes.js';
import { AgentProtocol, DOMAIN, hex, REPOS, startDeploymentsStack } from '../deployments/helpers.js';
import {
  launchBrowser,
  markDocument,
  openPage,
  screenshot,
  signIn,
  stillSameDocument,
  waitLive,
  type WatchedPage,
} from './browser.js';

/** Waits on conditions inside a test add up on a loaded machine: generous, never a measure of speed. */
const TEST_TIMEOUT_MS = 180_000;
const SECRET = `dash-secret-${randomBytes(12).toString('hex')}`;
const AGENT_ADDRESS = '198.51.100.40';

let stack: AgentsStack;
let browser: Browser;
let agentNats: NatsConnection | undefined;
let agent: AgentProtocol;
let admin: string;
let watched: WatchedPage | undefined;
let starting: Promise<AgentsStack> | undefined;
let launching: Promise<Browser> | undefined;

beforeAll(async () => {
  // Leases long enough that the scripted agent need not renew while the browser catches up.
  starting = startDeploymentsStack({
    env: { CL_DEPLOY_LEASE_TTL_MS: '120000', CL_DEPLOY_LEASE_RENEW_MS: '5000' },
  });
  launching = launchBrowser();
  [stack, browser] = await Promise.all([starting, launching]);
  const enrolled = await stack.enroll('dash-alpha', {}, AGENT_ADDRESS);
  agentNats = await stack.connectAsAgent(enrolled);
  agent = new AgentProtocol('dash-alpha', agentNats);
  admin = stack.adminToken('dash-admin', 3600);
  await stack.command<AppView>(deploymentCommands.createApp, {
    name: 'shop',
    agentId: 'dash-alpha',
    source: { type: 'git', url: `file://${REPOS}/shop`, ref: 'main' },
    env: [
      { name: 'GREETING', value: 'hello' },
      { name: 'API_TOKEN', value: SECRET, secret: true },
    ],
    healthCheck: { path: '/healthz', timeoutSeconds: 5 },
  });
}, 180_000);

afterEach(async () => {
  await watched?.close().catch(() => undefined);
  watched = undefined;
});

afterAll(async () => {
  await agentNats?.close().catch(() => undefined);
  await launching?.then((launched) => launched.close()).catch(() => undefined);
  await starting?.then((started) => started.stop()).catch(() => undefined);
});

async function open(expected: RegExp[] = []): Promise<WatchedPage> {
  watched = await openPage(browser, expected);
  return watched;
}

let batchSeq = 0;
/** Output as the agent sends it: one batch on its own subject, relayed into LOGS by the service. */
async function publishLines(deploymentId: string, lines: string[], stream = 'build'): Promise<void> {
  agentNats!.publish(
    agentLogSubject('dash-alpha', deploymentId),
    JSON.stringify({
      boot: 'dashtest',
      seq: batchSeq++,
      lines: lines.map((x) => ({ t: new Date().toISOString(), s: stream, x })),
    }),
  );
  await agentNats!.flush();
}

const phase = (page: Page, name: string, state: string) =>
  page.locator(`.phases li[data-phase="${name}"][data-state="${state}"]`);

/** The deployment the address selects (`?deployment=`), once there. */
async function selectedDeployment(page: Page): Promise<string> {
  await page.waitForFunction(() => new URL(window.location.href).searchParams.has('deployment'), null, {
    timeout: 20_000,
  });
  return new URL(page.url()).searchParams.get('deployment')!;
}

async function openApp(page: Page): Promise<void> {
  await signIn(page, stack.baseUrl, admin);
  await waitLive(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Apps' }).click();
  await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
  const row = page.locator('tr[data-app="shop"]');
  await row.waitFor({ timeout: 20_000 });
  expect(await row.textContent()).toContain('dash-alpha');
  expect(await row.getByRole('link', { name: `shop.apps.${DOMAIN}` }).getAttribute('href')).toBe(
    `https://shop.apps.${DOMAIN}/`,
  );
  await row.getByRole('link', { name: 'shop', exact: true }).click();
  await page.getByRole('heading', { name: 'App shop', level: 1 }).waitFor();
}

test(
  'a deployment started from the page advances phase by phase and streams its output, without a reload',
  async () => {
    const { page, errors } = await open();
    await openApp(page);
    // Secrets by name and version; never the value.
    const secrets = page.getByRole('list', { name: 'Secrets' });
    await secrets.getByText('API_TOKEN').waitFor();
    expect(await secrets.textContent()).toContain('v1');
    await markDocument(page);

    await page.getByLabel('Ref').fill('main');
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    const deploymentId = await selectedDeployment(page);
    // Waiting for its claim: the claim is the current phase, counting down to its deadline.
    await phase(page, 'claimed', 'current').waitFor({ timeout: 20_000 });
    expect(await phase(page, 'claimed', 'current').locator('.phase-deadline').textContent()).toMatch(
      /\d+:\d\d left/,
    );

    await screenshot(page, 'deployment-waiting-for-claim');

    const claimed = await agent.claim(deploymentId);
    const { leaseId } = claimed;
    await phase(page, 'claimed', 'done').waitFor({ timeout: 20_000 });
    await phase(page, 'fetched', 'current').waitFor({ timeout: 20_000 });

    await publishLines(deploymentId, ['Cloning into shop…', '<b>not markup</b>']);
    const log = page.getByRole('log', { name: 'Deployment output' });
    await log.getByText('Cloning into shop…').waitFor({ timeout: 20_000 });
    // Text only: what a build prints is shown as it is, never interpreted.
    await log.getByText('<b>not markup</b>').waitFor();
    expect(await log.locator('b').count()).toBe(0);

    await agent.report(deploymentId, leaseId, {
      phase: 'fetched',
      commit: hex(20),
      sourceDigest: hex(32),
      bytes: 4096,
    });
    await phase(page, 'fetched', 'done').waitFor({ timeout: 20_000 });
    await publishLines(deploymentId, ['added 42 packages in 1s']);
    await log.getByText('added 42 packages in 1s').waitFor({ timeout: 20_000 });

    await agent.report(deploymentId, leaseId, {
      phase: 'built',
      release: { releaseId: deploymentId, number: claimed.number },
      artifactDigest: hex(32),
      manifest: {
        origin: 'node-default',
        root: '.',
        install: null,
        build: [],
        start: 'npm start',
        portEnv: 'PORT',
        healthPath: '/healthz',
      },
      durationMs: 1200,
    });
    await phase(page, 'built', 'done').waitFor({ timeout: 20_000 });
    const port = 21_000 + claimed.number;
    await agent.report(deploymentId, leaseId, { phase: 'started', releaseId: deploymentId, port });
    await agent.report(deploymentId, leaseId, {
      phase: 'healthy',
      releaseId: deploymentId,
      probes: 2,
      durationMs: 150,
    });
    await phase(page, 'healthy', 'done').waitFor({ timeout: 20_000 });
    await publishLines(deploymentId, ['listening on port ' + port], 'out');
    await log.getByText(`listening on port ${port}`).waitFor({ timeout: 20_000 });
    // The scripted agent scrolls the output past the pane's height: the pane follows the end.
    await publishLines(
      deploymentId,
      Array.from({ length: 120 }, (_, index) => `request ${index}`),
      'out',
    );
    await log.getByText('request 119', { exact: true }).waitFor({ timeout: 20_000 });
    expect(await atEnd(page)).toBe(true);
    // Scrolled up, it stays where the reader is, and offers to jump back.
    await log.evaluate((element) => (element.scrollTop = 0));
    await page.getByRole('button', { name: /jump to the latest/ }).waitFor();
    await publishLines(deploymentId, ['while scrolled up'], 'out');
    await log.getByText('while scrolled up').waitFor({ timeout: 20_000 });
    expect(await log.evaluate((element) => element.scrollTop)).toBe(0);
    await page.getByRole('button', { name: /jump to the latest/ }).click();
    expect(await atEnd(page)).toBe(true);

    const app = await stack.command<AppView>(deploymentCommands.getApp, { appName: 'shop' });
    await agent.report(deploymentId, leaseId, {
      phase: 'switched',
      routeId: app.routeId ?? randomUUID(),
      routeRevision: claimed.number,
      target: { host: AGENT_ADDRESS, port },
    });
    await phase(page, 'switched', 'done').waitFor({ timeout: 20_000 });
    // No verification URL in this stack: the front records that it did not probe, and says why.
    await phase(page, 'verified', 'done').waitFor({ timeout: 20_000 });
    expect(await phase(page, 'verified', 'done').textContent()).toContain('not probed');
    await waitFor(
      'the front to verify',
      async () => (await agent.renew(deploymentId, leaseId)).verification === 'passed',
    );
    await agent.report(deploymentId, leaseId, {
      phase: 'drained',
      previousReleaseId: null,
      stoppedBy: 'none',
    });
    await phase(page, 'drained', 'done').waitFor({ timeout: 20_000 });
    const detail = page.locator(`[data-selected-deployment="${deploymentId}"]`);
    await detail.getByText('succeeded', { exact: true }).waitFor({ timeout: 20_000 });
    // The header follows: release #1 serves.
    await page.locator('[data-current-release="1"]').waitFor({ timeout: 20_000 });
    await page.locator(`tr[data-deployment="${deploymentId}"][data-status="succeeded"]`).waitFor();
    // Every phase has its time; those after the first their duration.
    for (const name of ['requested', 'claimed', 'fetched', 'built', 'started', 'healthy', 'switched']) {
      expect(await phase(page, name, 'done').locator('time').count()).toBe(1);
    }
    expect(await phase(page, 'built', 'done').locator('.phase-duration').textContent()).toMatch(/ms|s/);

    expect(await stillSameDocument(page)).toBe(true);
    expect(await page.content()).not.toContain(SECRET);
    await screenshot(page, 'deployment-succeeded');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

/** Whether the log pane shows its last line (scrolled to the end). */
function atEnd(page: Page): Promise<boolean> {
  return page
    .getByRole('log', { name: 'Deployment output' })
    .evaluate((element) => element.scrollHeight - element.scrollTop - element.clientHeight <= 24);
}

test(
  'a failed deployment shows the phase it failed at in red, with the reason and the last lines',
  async () => {
    const { page, errors } = await open();
    await openApp(page);
    await markDocument(page);
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    const deploymentId = await selectedDeployment(page);
    const claimed = await agent.claim(deploymentId);
    await agent.report(deploymentId, claimed.leaseId, {
      phase: 'fetched',
      commit: hex(20),
      sourceDigest: hex(32),
      bytes: 1,
    });
    await phase(page, 'fetched', 'done').waitFor({ timeout: 20_000 });
    await publishLines(deploymentId, ['npm ERR! missing script: build'], 'err');
    await page
      .getByRole('log', { name: 'Deployment output' })
      .getByText('npm ERR! missing script: build')
      .waitFor({ timeout: 20_000 });
    await agent.report(deploymentId, claimed.leaseId, {
      phase: 'failed',
      failedPhase: 'built',
      reason: 'npm run build exited with code 1',
      exitCode: 1,
      signal: null,
      lastLines: ['npm ERR! missing script: build', 'npm ERR! A complete log of this run…'],
      reverted: false,
    });
    const failed = phase(page, 'built', 'failed');
    await failed.waitFor({ timeout: 20_000 });
    expect(await failed.textContent()).toContain('npm run build exited with code 1');
    expect(await failed.textContent()).toContain('exit code 1');
    expect(await failed.getByLabel('Last lines of output').textContent()).toContain(
      'npm ERR! A complete log of this run…',
    );
    // What it never reached is grey; the release serving before keeps serving.
    await phase(page, 'started', 'skipped').waitFor();
    await page.locator(`tr[data-deployment="${deploymentId}"][data-status="failed"]`).waitFor();
    await page.locator('[data-current-release="1"]').waitFor();
    expect(await stillSameDocument(page)).toBe(true);

    await screenshot(page, 'deployment-failed');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

/**
 * The scripted agent takes a deployment to success: every phase of a deploy, or for a rollback of
 * `rollbackTo` (a kept release) the start of that release without a fetch or a build.
 */
async function runToSuccess(deploymentId: string, rollbackTo?: string): Promise<void> {
  const claimed = await agent.claim(deploymentId);
  const { leaseId } = claimed;
  const releaseId = rollbackTo ?? deploymentId;
  if (!rollbackTo) {
    await agent.report(deploymentId, leaseId, {
      phase: 'fetched',
      commit: hex(20),
      sourceDigest: hex(32),
      bytes: 1,
    });
    await agent.report(deploymentId, leaseId, {
      phase: 'built',
      release: { releaseId, number: claimed.number },
      artifactDigest: hex(32),
      manifest: {
        origin: 'node-default',
        root: '.',
        install: null,
        build: [],
        start: 'npm start',
        portEnv: 'PORT',
        healthPath: '/healthz',
      },
      durationMs: 10,
    });
  }
  const port = 21_000 + claimed.number;
  await agent.report(deploymentId, leaseId, { phase: 'started', releaseId, port });
  await agent.report(deploymentId, leaseId, { phase: 'healthy', releaseId, probes: 1, durationMs: 20 });
  const app = await stack.command<AppView>(deploymentCommands.getApp, { appName: 'shop' });
  await agent.report(deploymentId, leaseId, {
    phase: 'switched',
    routeId: app.routeId ?? randomUUID(),
    routeRevision: claimed.number,
    target: { host: AGENT_ADDRESS, port },
  });
  await waitFor(
    'the front to verify',
    async () => (await agent.renew(deploymentId, leaseId)).verification === 'passed',
  );
  await agent.report(deploymentId, leaseId, { phase: 'drained', previousReleaseId: null, stoppedBy: 'none' });
}

test(
  'a rollback from a kept release skips fetch and build; a deployment cancelled before its claim ends at once',
  async () => {
    const first = (await stack.command<AppView>(deploymentCommands.getApp, { appName: 'shop' })).current!;
    const { page, errors } = await open();
    await openApp(page);
    await markDocument(page);
    // A newer release serves; the first one is kept for a rollback.
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    const newer = await selectedDeployment(page);
    await runToSuccess(newer);
    await page
      .locator(`tr[data-deployment="${newer}"][data-status="succeeded"]`)
      .waitFor({ timeout: 20_000 });
    await page.locator(`[data-current-release="${first.number + 2}"]`).waitFor({ timeout: 20_000 });

    await page.getByRole('button', { name: `Roll back to release #${first.number}` }).click();
    const dialog = page.getByRole('dialog', { name: `Roll shop back to release #${first.number}` });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Roll back', exact: true }).click();
    await page.waitForFunction(
      (before) => new URL(window.location.href).searchParams.get('deployment') !== before,
      newer,
      { timeout: 20_000 },
    );
    const rollback = await selectedDeployment(page);
    await phase(page, 'claimed', 'current').waitFor({ timeout: 20_000 });
    // Grey from the start: a rollback never fetches nor builds.
    await phase(page, 'fetched', 'skipped').waitFor();
    await phase(page, 'built', 'skipped').waitFor();
    await runToSuccess(rollback, first.releaseId);
    await phase(page, 'drained', 'done').waitFor({ timeout: 20_000 });
    expect(await phase(page, 'fetched', 'skipped').count()).toBe(1);
    await page.locator(`[data-current-release="${first.number}"]`).waitFor({ timeout: 20_000 });
    await page.locator(`tr[data-deployment="${rollback}"][data-status="succeeded"]`).waitFor();
    expect(await page.locator(`tr[data-deployment="${rollback}"]`).textContent()).toContain('rollback');
    await screenshot(page, 'deployment-rollback');

    // Nothing claims this one: cancelled at once, from the list.
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.waitForFunction(
      (before) => new URL(window.location.href).searchParams.get('deployment') !== before,
      rollback,
      { timeout: 20_000 },
    );
    const waiting = await selectedDeployment(page);
    const row = page.locator(`tr[data-deployment="${waiting}"]`);
    await row.getByRole('button', { name: /^Cancel deployment/ }).click();
    const cancel = page.getByRole('dialog', { name: /^Cancel deployment/ });
    await cancel.getByLabel('Reason (optional)').fill('wrong branch');
    await cancel.getByRole('button', { name: 'Cancel deployment' }).click();
    await page
      .locator(`tr[data-deployment="${waiting}"][data-status="cancelled"]`)
      .waitFor({ timeout: 20_000 });
    await page
      .locator(`[data-selected-deployment="${waiting}"]`)
      .getByText('cancelled', { exact: true })
      .first()
      .waitFor({ timeout: 20_000 });
    expect(await row.getByRole('button', { name: /^Cancel deployment/ }).count()).toBe(0);

    // The list of apps: the serving release, and the last deployment's status.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Apps' }).click();
    const app = page.locator('tr[data-app="shop"]');
    await app.getByText('cancelled', { exact: true }).waitFor({ timeout: 20_000 });
    expect(await app.textContent()).toContain(`#${first.number}`);
    await screenshot(page, 'apps-list');
    expect(await stillSameDocument(page)).toBe(true);
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

test(
  'an API without the apps endpoints: no Apps in the navigation, and the page says so',
  async () => {
    const { page, errors } = await open();
    await page.route('**/api/v1/capabilities', async (route) => {
      const response = await route.fetch();
      const body = (await response.json()) as { endpoints: string[] };
      await route.fulfill({
        response,
        json: { endpoints: body.endpoints.filter((endpoint) => !endpoint.includes('/apps')) },
      });
    });
    await signIn(page, stack.baseUrl, admin);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Agents' }).waitFor();
    await page.goto(`${stack.baseUrl}/apps`);
    await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
    await page.getByText('Apps: not available yet.').waitFor({ timeout: 20_000 });
    expect(await nav.getByRole('link', { name: 'Apps' }).count()).toBe(0);
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);
