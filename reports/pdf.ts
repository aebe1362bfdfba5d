// Prints the report's HTML to an A4 PDF with headless Chromium (lib/browser.ts: Debian's chromium, else the
// one inside the npm package @sparticuz/chromium). The page embeds its Japanese web font (reports/fonts.ts)
// and numbers its pages with CSS @page margin boxes, so no system font is needed; it may load nothing.
import { withChromiumPage, type ChromiumChoice } from '../lib/browser.ts';

export type { ChromiumChoice };

/** Writes `html` as an A4 PDF to `out`; returns which browser printed it. */
export async function htmlToPdf(html: string, out: string, chromium: ChromiumChoice = 'auto'): Promise<{ executable: string; kind: string }> {
  return withChromiumPage(
    async (page, launched) => {
      page.setDefaultTimeout(120_000);
      await page.setContent(html, { waitUntil: 'load' });
      // Every embedded font slice decoded before printing (font-display: block would otherwise print blanks).
      await page.evaluate(() => document.fonts.ready.then(() => undefined));
      await page.emulateMedia({ media: 'print' });
      await page.pdf({ path: out, format: 'A4', printBackground: true, preferCSSPageSize: true });
      return { executable: launched.executable, kind: launched.kind };
    },
    { chromium },
  );
}
