/**
 * The dashboard in a real browser against the whole system (test/e2e/stack.ts: NATS, Postgres, the
 * services as processes, HAProxy behind the Data Plane API emulator, proxy-sync): signing in, agents and
 * routes appearing live without a reload, a route turning active once HAProxy applied it, a rebuild
 * started from the Replay page, a refused token, an expired session. Any console error fails a test.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { TokenSigner } from '#auth';
import { DOMAIN, E2eStack } from '../e2e/stack.js';
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

let e2e: E2eStack;
let browser: Browser;
let watched: WatchedPage | undefined;

beforeAll(async () => {
  [e2e, browser] = await Promise.all([E2eStack.start({ reconcileIntervalMs: 1_000 }), launchBrowser()]);
}, 180_000);

afterEach(async () => {
  await watched?.close().catch(() => undefined);
  watched = undefined;
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await e2e?.stop();
});

async function open(expected: RegExp[] = []): Promise<WatchedPage> {
  watched = await openPage(browser, expected);
  return watched;
}

test('agents and routes created through the API appear without a reload; the route turns active', async () => {
  const { page, errors } = await open();
  await signIn(page, e2e.stack.baseUrl, e2e.admin);
  await waitLive(page);
  await markDocument(page);

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents' }).click();
  await page.getByRole('heading', { name: 'Agents', level: 1 }).waitFor();
  await page.getByText('No agent has enrolled yet').waitFor();

  await e2e.stack.enroll('dash-web', { team: 'shop' }, '127.0.0.2');
  const agentRow = page.locator('tr[data-agent="dash-web"]');
  await agentRow.waitFor({ timeout: 20_000 });
  expect(await agentRow.textContent()).toContain('127.0.0.2');
  expect(await agentRow.textContent()).toContain('team=shop');

  await page.keyboard.press('g');
  await page.keyboard.press('r');
  await page.getByRole('heading', { name: 'Routes', level: 1 }).waitFor();
  const created = await e2e.request('POST', 'routes', {
    body: { agentId: 'dash-web', kind: 'http', subdomain: 'dash', target: { host: '127.0.0.2', port: 8081 } },
  });
  expect(created.status).toBe(202);
  const routeRow = page.locator(`tr[data-route="dash.apps.${DOMAIN}"]`);
  await routeRow.waitFor({ timeout: 20_000 });
  await page
    .locator(`tr[data-route="dash.apps.${DOMAIN}"][data-status="active"]`)
    .waitFor({ timeout: 45_000 });
  expect(await routeRow.getByText('active', { exact: true }).isVisible()).toBe(true);
  // Applied on the proxy node: a propagation time and the configuration version are shown.
  expect(await routeRow.textContent()).toMatch(/config v\d+/);
  expect(await stillSameDocument(page)).toBe(true);

  await screenshot(page, 'live-agents-and-routes');
  expect(errors()).toEqual([]);
});

test('a rebuild started from the Replay page reaches done', async () => {
  const { page, errors } = await open();
  await signIn(page, e2e.stack.baseUrl, e2e.admin);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Replay' }).click();
  await page.getByRole('heading', { name: 'Replay', level: 1 }).waitFor();
  await page.getByText('End of the log').waitFor({ timeout: 20_000 });
  await page.getByLabel('Projection').selectOption('all');
  await page.getByRole('button', { name: 'Start rebuild' }).click();

  const progress = page.getByRole('progressbar');
  await progress.waitFor({ timeout: 20_000 });
  await page.locator('.progress[data-phase="done"]').first().waitFor({ timeout: 90_000 });
  expect(await progress.first().getAttribute('aria-valuenow')).toBe('100');
  expect(await page.locator('.progress[data-phase="done"]').first().textContent()).toMatch(/events\/s/);

  await screenshot(page, 'replay-rebuild-done');
  expect(errors()).toEqual([]);
});

test('a wrong token shows a clear error and does not sign in', async () => {
  // The browser logs the API's refusal of the foreign token as a failed request: that one is expected.
  const { page, errors } = await open([/status of 401/]);
  await page.goto(`${e2e.stack.baseUrl}/routes`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  expect(new URL(page.url()).pathname).toBe('/sign-in');

  await page.getByLabel('Admin token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').getByText('This is not a token').waitFor();

  // Well formed and unexpired, but signed by another key: only the API can tell.
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const foreign = new TokenSigner(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()).adminToken(
    'intruder',
    600,
  ).token;
  await page.getByLabel('Admin token').fill(foreign);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').getByText('The API refused this token').waitFor({ timeout: 20_000 });
  expect(await page.getByRole('heading', { name: 'Overview' }).count()).toBe(0);
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

  await screenshot(page, 'wrong-token');
  expect(errors()).toEqual([]);
});

test('an expired session returns to sign-in', async () => {
  const { page, errors } = await open();
  const shortLived = e2e.stack.adminToken('short-lived', 8);
  await signIn(page, e2e.stack.baseUrl, shortLived);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Event log' }).click();
  await page.getByRole('heading', { name: 'Event log', level: 1 }).waitFor();

  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 30_000 });
  await page.getByText('Your session expired').waitFor();
  const url = new URL(page.url());
  expect(url.pathname).toBe('/sign-in');
  expect(url.searchParams.get('next')).toBe('/events');
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

  await screenshot(page, 'session-expired');
  expect(errors()).toEqual([]);
});
