// Headless Chromium for the web tests, through lib/browser.ts (Debian's chromium, else the bundled one), so the
// browser tests run on a machine without system Chromium too. A fresh context, and no request leaves loopback.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../../lib/browser.ts';

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Console errors and CSP violations the pages reported. */
  consoleErrors: string[];
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const { browser } = await launchChromium((process.env.MAILCENSUS_CHROMIUM as string | undefined) || 'auto');
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 900 } });
  // Only our server on loopback: anything else (a CDN, a font service) is a bug and is refused.
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    return u.hostname === '127.0.0.1' || u.protocol === 'data:' ? route.continue() : route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  return {
    context,
    page,
    consoleErrors,
    async close() {
      await context.close().catch(() => {});
      await browser.close().catch(() => {});
    },
  };
}

/** Where screenshots go: MAILCENSUS_ARTEFACTS, else a folder under the system temp dir (never the repository). */
export function artefactDir(): string {
  const dir = process.env.MAILCENSUS_ARTEFACTS || path.join(os.tmpdir(), 'mailcensus-web-artefacts');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function screenshot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<string> {
  const file = path.join(artefactDir(), `${name}.png`);
  await page.screenshot({ path: file, fullPage: options.fullPage ?? true });
  return file;
}
