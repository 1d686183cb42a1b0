/**
 * The dashboard in a real browser against the whole system (test/e2e/stack.ts: NATS, Postgres, the
 * services as processes, HAProxy behind the Data Plane API emulator, proxy-sync): signing in, agents and
 * routes appearing live without a reload, a route turning active once HAProxy applied it, a rebuild
 * started from the Replay page, a refused token, an expired session. Any console error fails a test.
 */
import { generateKeyPairSync } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import type { Browser, Page } from 'playwright-core';
import { TokenSigner } from '#auth';
import { createCsr, generateRsaKeyPair } from '#pki-client';
import { DOMAIN, E2eStack } from '../e2e/stack.js';
import { waitFor } from '../harness/processes.js';
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

let e2e: E2eStack;
let browser: Browser;
let watched: WatchedPage | undefined;
// Kept so that afterAll stops what started even when beforeAll failed or timed out half-way.
let starting: Promise<E2eStack> | undefined;
let launching: Promise<Browser> | undefined;

beforeAll(async () => {
  starting = E2eStack.start({ reconcileIntervalMs: 1_000 });
  launching = launchBrowser();
  [e2e, browser] = await Promise.all([starting, launching]);
}, 180_000);

afterEach(async () => {
  await watched?.close().catch(() => undefined);
  watched = undefined;
});

afterAll(async () => {
  await launching?.then((launched) => launched.close()).catch(() => undefined);
  await starting?.then((started) => started.stop()).catch(() => undefined);
});

async function open(expected: RegExp[] = []): Promise<WatchedPage> {
  watched = await openPage(browser, expected);
  return watched;
}

test(
  'agents and routes created through the API appear without a reload; the route turns active',
  async () => {
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
      body: {
        agentId: 'dash-web',
        kind: 'http',
        subdomain: 'dash',
        target: { host: '127.0.0.2', port: 8081 },
      },
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
    await screenshot(page, 'live-routes');

    // The agent's page: its routes and its own events.
    await routeRow.getByRole('link', { name: 'dash-web' }).click();
    await page.getByRole('heading', { name: 'Agent dash-web', level: 1 }).waitFor();
    await page
      .locator(`tr[data-route="dash.apps.${DOMAIN}"][data-status="active"]`)
      .waitFor({ timeout: 20_000 });
    const events = page.getByRole('table', { name: 'Events of dash-web' });
    await events.getByText('AgentEnrolled').waitFor({ timeout: 20_000 });
    await events.getByText('RouteRequested').waitFor();
    expect(await stillSameDocument(page)).toBe(true);

    await screenshot(page, 'live-agents-and-routes');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

/** Waits for the rebuild named in the address (`?rebuild=`) to be started, and returns its id. */
async function startedRebuild(page: Page, previous: string | null): Promise<string> {
  let id: string | null = null;
  await page.waitForFunction(
    (before) => {
      const current = new URL(window.location.href).searchParams.get('rebuild');
      return current !== null && current !== before;
    },
    previous,
    { timeout: 20_000 },
  );
  id = new URL(page.url()).searchParams.get('rebuild');
  expect(id).toMatch(/^[0-9]{14}_[0-9a-f]{6}$/);
  return id!;
}

test(
  'a rebuild started from the Replay page reaches done; a time-travel view opens as of a sequence',
  async () => {
    const { page, errors } = await open();
    await signIn(page, e2e.stack.baseUrl, e2e.admin);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Replay' }).click();
    await page.getByRole('heading', { name: 'Replay', level: 1 }).waitFor();
    await page.getByText('End of the log').waitFor({ timeout: 20_000 });
    await page.getByLabel('Projection').selectOption('all');
    await page.getByRole('button', { name: 'Start rebuild' }).click();

    const swap = await startedRebuild(page, null);
    const progress = page.locator(`.progress[data-rebuild="${swap}"]`);
    await progress.waitFor({ timeout: 20_000 });
    await page.locator(`.progress[data-rebuild="${swap}"][data-phase="done"]`).waitFor({ timeout: 90_000 });
    expect(await progress.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('100');
    expect(await progress.textContent()).toMatch(/events\/s/);

    // Time travel: the routes projection as of sequence 2, in a view of its own.
    await page.getByLabel('Projection').selectOption('routes');
    await page.getByLabel('Mode').selectOption('inspect');
    await page.getByLabel('As of').selectOption('sequence');
    await page.getByLabel('Sequence').fill('2');
    await page.getByLabel('View name (optional)').fill('dash_two');
    await page.getByRole('button', { name: 'Start rebuild' }).click();
    const inspect = await startedRebuild(page, swap);
    await page
      .locator(`.progress[data-rebuild="${inspect}"][data-phase="done"]`)
      .waitFor({ timeout: 90_000 });
    await page.getByRole('link', { name: 'Open the time-travel view asof_dash_two' }).click();
    await page.getByRole('heading', { name: 'Time travel: asof_dash_two', level: 1 }).waitFor();
    await page.getByText('as they were at event #2 of the log').waitFor({ timeout: 20_000 });

    await screenshot(page, 'replay-rebuild-done');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

test(
  'a wrong token shows a clear error and does not sign in',
  async () => {
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
    const foreign = new TokenSigner(
      privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    ).adminToken('intruder', 600).token;
    await page.getByLabel('Admin token').fill(foreign);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('The API refused this token').waitFor({ timeout: 20_000 });
    expect(await page.getByRole('heading', { name: 'Overview' }).count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    await screenshot(page, 'wrong-token');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

test(
  'signing out forgets the token',
  async () => {
    const { page, errors } = await open();
    await signIn(page, e2e.stack.baseUrl, e2e.admin);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(1);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByText('You signed out').waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    // A reload or another page of the dashboard asks for the token again.
    await page.goto(`${e2e.stack.baseUrl}/agents`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(new URL(page.url()).searchParams.get('next')).toBe('/agents');

    await screenshot(page, 'signed-out');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

test(
  'an expired session returns to sign-in',
  async () => {
    const { page, errors } = await open();
    const shortLived = e2e.stack.adminToken('short-lived', 12);
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
  },
  TEST_TIMEOUT_MS,
);

test(
  'routes are created, edited and removed from the Routes page; bad input names the field',
  async () => {
    await e2e.stack.enroll('dash-ui', {}, '127.0.0.3');
    const { page, errors } = await open([/status of 400/]);
    await signIn(page, e2e.stack.baseUrl, e2e.admin);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Routes' }).click();
    await page.getByRole('heading', { name: 'Routes', level: 1 }).waitFor();

    await page.getByRole('button', { name: 'New route' }).click();
    const form = page.getByRole('dialog', { name: 'New route' });
    await form.getByLabel('Agent').selectOption('dash-ui');
    await form.getByLabel('Subdomain or hostname').fill('ui');
    await form.getByLabel('Target address').fill('not-an-address');
    await form.getByLabel('Port').fill('9000');
    await form.getByRole('button', { name: 'Create route' }).click();
    await form.locator('.field-error').waitFor({ timeout: 20_000 });
    expect(await form.getByLabel('Target address').getAttribute('aria-invalid')).toBe('true');
    expect((await form.locator('.field-error').textContent())?.length).toBeGreaterThan(5);

    await form.getByLabel('Target address').fill('127.0.0.3');
    await form.getByRole('button', { name: 'Create route' }).click();
    await form.waitFor({ state: 'hidden', timeout: 20_000 });
    const hostname = `ui.apps.${DOMAIN}`;
    const row = page.locator(`tr[data-route="${hostname}"]`);
    await page.locator(`tr[data-route="${hostname}"][data-status="active"]`).waitFor({ timeout: 45_000 });
    expect(await row.textContent()).toContain('127.0.0.3:9000');

    // The host name filter takes a whole name: a part is refused before anything is sent.
    const filters = page.getByRole('search');
    await filters.getByLabel('Hostname').fill('ui');
    await filters.getByRole('button', { name: 'Filter' }).click();
    await filters.getByText('Give a whole host name').waitFor();
    expect(new URL(page.url()).searchParams.get('hostname')).toBeNull();
    await filters.getByLabel('Hostname').fill(hostname);
    await filters.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL((url) => url.searchParams.get('hostname') === hostname);
    await row.waitFor();
    expect(await page.locator('tbody tr').count()).toBe(1);

    await page.getByRole('button', { name: `Edit ${hostname}` }).click();
    const edit = page.getByRole('dialog', { name: `Edit ${hostname}` });
    await edit.getByLabel('Port').fill('9001');
    await edit.getByRole('button', { name: 'Save' }).click();
    await edit.waitFor({ state: 'hidden', timeout: 20_000 });
    await row.getByText('revision 2').waitFor({ timeout: 20_000 });
    expect(await row.textContent()).toContain('127.0.0.3:9001');
    await page.locator(`tr[data-route="${hostname}"][data-status="active"]`).waitFor({ timeout: 45_000 });

    await page.getByRole('button', { name: `Remove ${hostname}` }).click();
    const remove = page.getByRole('dialog', { name: `Remove ${hostname}` });
    await remove.getByLabel('Reason (optional)').fill('dashboard test');
    await remove.getByRole('button', { name: 'Remove route' }).click();
    // Removed routes leave the default list; the status filter shows them.
    await row.waitFor({ state: 'detached', timeout: 20_000 });
    await page.getByLabel('Status').selectOption('removed');
    await page.locator(`tr[data-route="${hostname}"][data-status="removed"]`).waitFor({ timeout: 20_000 });
    expect(new URL(page.url()).searchParams.get('status')).toBe('removed');
    const stored = await e2e.request('GET', `routes?hostname=${hostname}&status=removed`);
    expect((stored.body.routes as { status: string; target: { port: number } }[])[0]).toMatchObject({
      status: 'removed',
      target: { port: 9001 },
    });

    await screenshot(page, 'routes-create-edit-remove');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

test(
  'the event log filters by type and opens an event as JSON',
  async () => {
    const { page, errors } = await open();
    await signIn(page, e2e.stack.baseUrl, e2e.admin);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Event log' }).click();
    await page.getByRole('heading', { name: 'Event log', level: 1 }).waitFor();
    await page.getByLabel('Type', { exact: true }).fill('AgentEnrolled');
    await page.getByRole('button', { name: 'Filter', exact: true }).click();
    await page.waitForURL(/type=AgentEnrolled/);
    const types = page.locator('tbody tr td:nth-child(2) code');
    await page.waitForFunction(
      () => {
        const cells = Array.from(document.querySelectorAll('tbody tr td:nth-child(2) code'));
        return cells.length > 0 && cells.every((cell) => cell.textContent === 'AgentEnrolled');
      },
      undefined,
      { timeout: 20_000 },
    );
    expect(new Set(await types.allTextContents())).toEqual(new Set(['AgentEnrolled']));

    await page
      .getByRole('button', { name: /^Open event \d+ \(AgentEnrolled\)$/ })
      .first()
      .click();
    const dialog = page.getByRole('dialog', { name: /^Event #\d+$/ });
    const json = dialog.locator('pre.json');
    await json.waitFor({ timeout: 20_000 });
    const event = JSON.parse((await json.textContent()) ?? '{}') as {
      type?: string;
      aggregate?: { type?: string };
    };
    expect(event).toMatchObject({ type: 'AgentEnrolled', aggregate: { type: 'agent' } });

    await screenshot(page, 'event-log-json');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    expect(new URL(page.url()).searchParams.get('open')).toBeNull();
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

test(
  'the live indicator shows when the connection drops, and changes flow again after it reconnects',
  async () => {
    // The browser logs the cut stream and the refused connections while the API is down: those are expected.
    const { page, errors } = await open([
      /net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE|INCOMPLETE_CHUNKED_ENCODING)/,
    ]);
    await signIn(page, e2e.stack.baseUrl, e2e.admin);
    await waitLive(page);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents' }).click();
    await page.getByRole('heading', { name: 'Agents', level: 1 }).waitFor();
    await markDocument(page);

    await e2e.stack.stopService('api');
    const indicator = page.locator('[data-live-status="reconnecting"]');
    await indicator.waitFor({ timeout: 30_000 });
    expect(await indicator.textContent()).toMatch(/Reconnecting/);
    e2e.stack.startService('api');
    await e2e.stack.ready();
    // The client retries with a growing delay (at most 30 s): give it that long to come back.
    await waitLive(page, 60_000);
    // A change made after the reconnection arrives without a reload.
    await e2e.stack.enroll('dash-late', {}, '127.0.0.4');
    await page.locator('tr[data-agent="dash-late"]').waitFor({ timeout: 30_000 });
    expect(await stillSameDocument(page)).toBe(true);

    await screenshot(page, 'live-reconnected');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

test(
  'certificates show on the expiry timeline and are revoked from the Certificates page',
  async () => {
    await e2e.stack.enroll('dash-db', {}, '127.0.0.5');
    const key = await generateRsaKeyPair(2048);
    const csr = createCsr({ privateKey: key.privateKeyPem, names: [`dash-db.mongodb.${DOMAIN}`] });
    const issued = await waitFor(
      'the certificates service to issue',
      async () => {
        const answer = await e2e.request('POST', 'agents/dash-db/certificates', { body: { csr } });
        if (answer.status === 503) return undefined;
        if (answer.status !== 201) throw new Error(`issue: ${answer.status} ${JSON.stringify(answer.body)}`);
        return answer.body as { certificate: { serial: string } };
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const serial = issued.certificate.serial;

    const { page, errors } = await open();
    await signIn(page, e2e.stack.baseUrl, e2e.admin);
    // Under CI load the shortcut can arrive before the page listens for it: press it again until it works.
    const heading = page.getByRole('heading', { name: 'Certificates', level: 1 });
    for (let attempt = 1; ; attempt++) {
      await page.keyboard.press('g');
      await page.keyboard.press('c');
      const shown = await heading.waitFor({ timeout: 5_000 }).then(
        () => true,
        () => false,
      );
      if (shown) break;
      if (attempt === 6) throw new Error('g c did not open the Certificates page');
    }
    const timeline = page.getByRole('list', { name: /expiry timeline/ });
    await timeline.getByText('dash-db').waitFor({ timeout: 20_000 });
    const row = page.locator(`tr[data-serial="${serial}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain(`dash-db.mongodb.${DOMAIN}`);

    await row.getByRole('button', { name: `Revoke certificate ${serial}` }).click();
    const dialog = page.getByRole('dialog', { name: 'Revoke certificate' });
    await dialog.getByLabel('Reason').selectOption('keyCompromise');
    await dialog.getByRole('button', { name: 'Revoke', exact: true }).click();
    await dialog.waitFor({ state: 'hidden', timeout: 20_000 });
    await row.getByText('revoked', { exact: true }).waitFor({ timeout: 20_000 });
    expect(await row.textContent()).toContain('keyCompromise');
    const stored = await e2e.request('GET', `certificates/${serial}`);
    expect(stored.body).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });

    await screenshot(page, 'certificates-revoked');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

test(
  'dead letters are listed on the Replay page and a retry says what happened',
  async () => {
    // Not an event, on an agent subject: routing's consumer and the projector dead-letter it, for real.
    const poison = await jetstream(e2e.stack.service).publish('events.agent.poison', '{"not": "an event"}');
    const { page, errors } = await open();
    await signIn(page, e2e.stack.baseUrl, e2e.admin);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Replay' }).click();
    await page.getByRole('heading', { name: 'Dead letters' }).waitFor();
    // The list reads again every 10 s: the dead letter shows up without a reload.
    const letter = page.locator(`tr[data-consumer="routing"][data-sequence="${poison.seq}"]`);
    await letter.waitFor({ timeout: 60_000 });
    expect(await letter.getAttribute('data-status')).toBe('open');

    await letter.getByRole('button', { name: /^Retry dead letter/ }).click();
    const outcome = page.locator('#dead-letters').getByRole('status');
    await outcome.getByText('failed again').waitFor({ timeout: 30_000 });
    expect(await letter.getAttribute('data-status')).toBe('open');

    await screenshot(page, 'replay-dead-letters');

    // Grouped by message: one row for the poison event, naming each consumer; dismissing them all
    // needs a reason and leaves nothing of it waiting.
    await page.getByLabel('Group by message').check();
    const message = page.locator(`tr[data-sequence="${poison.seq}"]`);
    await message.getByText('routing (open)').waitFor({ timeout: 30_000 });
    await message.getByRole('button', { name: `Dismiss the dead letters of event ${poison.seq}` }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Reason').fill('poison written by a test');
    await dialog.getByRole('button', { name: 'Dismiss', exact: true }).click();
    await outcome.getByText(`of event #${poison.seq}`).waitFor({ timeout: 30_000 });
    await message.waitFor({ state: 'detached', timeout: 30_000 });
    const rows: { status: string }[] = await e2e.stack.db.dataSource.query(
      'SELECT status FROM dead_letters WHERE sequence = $1',
      [poison.seq],
    );
    expect(rows.length).toBeGreaterThan(1);
    expect(rows.every((row) => row.status === 'dismissed')).toBe(true);
    await screenshot(page, 'replay-dead-letters-dismissed');
    expect(errors()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);
