/**
 * A real browser for the console tests: Debian's headless Chromium driven by playwright-core,
 * with a fresh profile in a temp dir. One browser per test file (it takes seconds to start).
 * Every page records what a security test needs: dialogs opened, CSP violations and other
 * console errors, and each request (URL and whether it carried the token header).
 */
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { tempDir } from './daemon.js';

export const chromiumPath = process.env.LOCKBOX_CHROMIUM ?? '/usr/bin/chromium';

export interface WatchedPage {
  page: Page;
  dialogs: string[];
  cspViolations: string[];
  consoleErrors: string[];
  requests: Array<{ url: string; authorization: string | undefined }>;
}

export async function launchBrowser(t: { teardown(fn: () => unknown): void }): Promise<BrowserContext> {
  const context = await chromium.launchPersistentContext(tempDir(t, 'lockbox-chromium-'), {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    viewport: { width: 1280, height: 800 },
  });
  context.setDefaultTimeout(20_000);
  t.teardown(() => context.close());
  return context;
}

export async function watchedPage(context: BrowserContext): Promise<WatchedPage> {
  const page = context.pages()[0] ?? (await context.newPage());
  const watched: WatchedPage = { page, dialogs: [], cspViolations: [], consoleErrors: [], requests: [] };
  page.on('dialog', (dialog) => {
    watched.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (/Content.Security.Policy/i.test(message.text())) watched.cspViolations.push(message.text());
    else watched.consoleErrors.push(message.text());
  });
  page.on('request', (request) => watched.requests.push({ url: request.url(), authorization: request.headers().authorization }));
  return watched;
}
