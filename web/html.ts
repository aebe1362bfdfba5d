// Server-rendered HTML with escaping by construction: every value interpolated into `html\`…\`` is escaped
// unless it is itself an Html fragment, so a banner, PTR name, HELO or CSV cell from the network can only
// ever show as text (OWASP XSS cheat sheet, rule 1: escape before inserting into element content/attributes).

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"'`]/g, (c) => ESCAPES[c]);
}

/** A fragment already safe to emit. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type Part = Html | string | number | boolean | null | undefined | Part[];

function render(part: Part): string {
  if (part === null || part === undefined || part === false) return '';
  if (Array.isArray(part)) return part.map(render).join('');
  if (part instanceof Html) return part.value;
  return escapeHtml(part);
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
  return new Html(out);
}

/** Trusted markup written in our own code (never with a network string in it). */
export const trusted = (s: string): Html => new Html(s);

export interface PageOptions {
  title: string;
  lang: 'ja' | 'en';
  body: Html;
  /** Navigation shown in the header. */
  nav?: Html;
  /** Scripts from /static (CSP allows 'self' only). */
  scripts?: string[];
}

export function page(o: PageOptions): string {
  return `<!doctype html>\n${html`<html lang="${o.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${o.title}</title>
<link rel="stylesheet" href="/static/app.css">
${(o.scripts ?? []).map((s) => html`<script src="/static/${s}" defer></script>`)}
</head>
<body>
<header class="top"><a class="brand" href="/">mailcensus</a>${o.nav ?? ''}</header>
<main>
${o.body}
</main>
</body>
</html>`.value}\n`;
}
