/**
 * Headless Chromium from Debian (/usr/bin/chromium, never a downloaded browser) driven by playwright-core,
 * for the dashboard's tests: a page that records every console error and uncaught exception, signing in,
 * and a screenshot of the final state under test-artifacts/dashboard/ (kept out of git).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot } from '../harness/apps.js';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = join(repoRoot, 'test-artifacts', 'dashboard');

export function launchBrowser(): Promise<Browser> {
  if (!existsSync(join(repoRoot, 'apps', 'dashboard', 'dist', 'index.html'))) {
    throw new Error(
      'apps/dashboard/dist is missing: run `npm run build` first (npm test does it in pretest)',
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught exceptions so far, except those `expected` names. */
  errors(): string[];
  close(): Promise<void>;
}

/**
 * A fresh browser context (no storage shared with other tests) on a laptop-sized window. `expected`:
 * console errors the test causes on purpose (the browser logs a refused request as an error).
 */
export async function openPage(browser: Browser, expected: RegExp[] = []): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1366, height: 860 }, locale: 'en-GB' });
  const page = await context.newPage();
  const seen: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'assert') {
      const location = message.location();
      seen.push(`console.${message.type()}: ${message.text()} (${location.url}:${location.lineNumber})`);
    }
  });
  page.on('pageerror', (error) => seen.push(`uncaught: ${error.stack ?? error.message}`));
  page.on('crash', () => seen.push('the page crashed'));
  return {
    context,
    page,
    errors: () => seen.filter((text) => !expected.some((pattern) => pattern.test(text))),
    close: () => context.close(),
  };
}

/** Signs in through the form and waits for the overview. */
export async function signIn(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl}/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor({ timeout: 20_000 });
}

/** Waits until the live indicator says the stream is connected. */
export async function waitLive(page: Page, timeout = 20_000): Promise<void> {
  await page.locator('[data-live-status="live"]').waitFor({ timeout });
}

/** Marks the document; `stillSameDocument` is false after any reload or full navigation. */
export async function markDocument(page: Page): Promise<void> {
  await page.evaluate(() => {
    (window as unknown as { dashboardTestMark?: boolean }).dashboardTestMark = true;
  });
}

export function stillSameDocument(page: Page): Promise<boolean> {
  return page.evaluate(
    () => (window as unknown as { dashboardTestMark?: boolean }).dashboardTestMark === true,
  );
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
