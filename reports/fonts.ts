// The report's web font: Noto Sans JP from the npm package @fontsource/noto-sans-jp, embedded in the HTML as
// data: URLs so the page (and the PDF printed from it) looks the same on every machine, with or without
// Japanese system fonts. The package splits the font by unicode-range into ~120 slices (as Google Fonts
// serves it); we embed only the slices holding a character the page uses (typically 10–30 of them, a few
// hundred KB), each with its unicode-range, so the browser picks glyphs exactly as it would online.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export const WEB_FONT_FAMILY = 'Noto Sans JP';
/** Weights the report uses: body text and bold (headings, table heads, figures). */
const WEIGHTS = [400, 700] as const;

interface Slice {
  weight: number;
  file: string;
  ranges: [number, number][];
}

const require = createRequire(import.meta.url);
let slicesCache: Slice[] | null | undefined;

/** The package folder, or null when it is not installed (the page then falls back to system fonts). */
function packageDir(): string | null {
  try {
    return path.dirname(require.resolve('@fontsource/noto-sans-jp/400.css'));
  } catch {
    return null;
  }
}

function parseRanges(spec: string): [number, number][] {
  return spec.split(',').map((part) => {
    const [a, b] = part.trim().replace(/^U\+/i, '').split('-');
    const lo = parseInt(a!.replace(/\?/g, '0'), 16);
    const hi = b !== undefined ? parseInt(b, 16) : a!.includes('?') ? parseInt(a!.replace(/\?/g, 'f'), 16) : lo;
    return [lo, hi];
  });
}

/** Reads the package's CSS once: every woff2 slice with its weight and unicode-range. */
function slices(): Slice[] | null {
  if (slicesCache !== undefined) return slicesCache;
  const dir = packageDir();
  if (!dir) return (slicesCache = null);
  const out: Slice[] = [];
  for (const weight of WEIGHTS) {
    const css = readFileSync(path.join(dir, `${weight}.css`), 'utf8');
    for (const block of css.split('@font-face').slice(1)) {
      const src = /url\(\.\/files\/([^)]+\.woff2)\)/.exec(block)?.[1];
      const range = /unicode-range:\s*([^;]+);/.exec(block)?.[1];
      if (!src || !range || !existsSync(path.join(dir, 'files', src))) continue;
      out.push({ weight, file: path.join(dir, 'files', src), ranges: parseRanges(range) });
    }
  }
  return (slicesCache = out.length > 0 ? out : null);
}

/**
 * `@font-face` rules embedding every slice of Noto Sans JP (400 and 700) that covers a character of `text`;
 * the empty string when the font package is not installed.
 */
export function embeddedFontCss(text: string): string {
  const all = slices();
  if (!all) return '';
  const used = new Set<number>();
  for (const ch of text) used.add(ch.codePointAt(0)!);
  const codepoints = [...used].sort((a, b) => a - b);
  const covers = (s: Slice) => codepoints.some((cp) => s.ranges.some(([lo, hi]) => cp >= lo && cp <= hi));
  return all
    .filter(covers)
    .map((s) => {
      const data = readFileSync(s.file).toString('base64');
      const range = s.ranges.map(([lo, hi]) => (lo === hi ? `U+${lo.toString(16)}` : `U+${lo.toString(16)}-${hi.toString(16)}`)).join(',');
      return `@font-face{font-family:'${WEB_FONT_FAMILY}';font-style:normal;font-weight:${s.weight};font-display:block;src:url(data:font/woff2;base64,${data}) format('woff2');unicode-range:${range};}`;
    })
    .join('\n');
}
