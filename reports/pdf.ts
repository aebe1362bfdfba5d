// Prints the report's HTML to PDF with Debian's headless Chromium, driven by playwright-core. Japanese text
// comes from Debian's fonts-noto-cjk (the HTML names "Noto Sans CJK JP"). Chromium gets a throwaway profile
// and every background service off; the page may load nothing (its CSP forbids it and we abort any request).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ServiceUnavailableError } from '../lib/errors.ts';

/** @defaultValue /usr/bin/chromium (Debian's `chromium` package) */
export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export class ChromiumMissingError extends ServiceUnavailableError {
  constructor(executable: string) {
    super(`chromium not found at ${executable}: install it (Debian/Ubuntu: \`sudo apt-get install chromium fonts-noto-cjk\`) or pass --chromium PATH; the other formats were written`);
    this.name = 'ChromiumMissingError';
  }
}

/** Opens Chromium with a temporary profile, runs `fn` on a fresh page, and always cleans up. */
export async function withChromiumPage<T>(
  executable: string,
  fn: (page: import('playwright-core').Page) => Promise<T>,
): Promise<T> {
  if (!existsSync(executable)) throw new ChromiumMissingError(executable);
  const { chromium } = await import('playwright-core');
  const profile = await mkdtemp(path.join(tmpdir(), 'mailcensus-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: executable,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
  try {
    // The report is self-contained; anything it would fetch is a bug, never a reason to touch the network.
    await context.route('**/*', (route) => (route.request().url().startsWith('data:') ? route.continue() : route.abort()));
    const page = context.pages()[0] ?? (await context.newPage());
    return await fn(page);
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

/** Writes `html` as an A4 PDF to `out`. */
export async function htmlToPdf(html: string, out: string, executable = DEFAULT_CHROMIUM): Promise<void> {
  await withChromiumPage(executable, async (page) => {
    await page.setContent(html, { waitUntil: 'load' });
    await page.emulateMedia({ media: 'print' });
    await page.pdf({
      path: out,
      format: 'A4',
      printBackground: true,
      preferCSSPageSize: true,
      displayHeaderFooter: true,
      headerTemplate: '<span></span>',
      footerTemplate:
        '<div style="font-size:8px;width:100%;text-align:center;color:#777;font-family:\'Noto Sans CJK JP\',sans-serif"><span class="pageNumber"></span> / <span class="totalPages"></span></div>',
    });
  });
}
