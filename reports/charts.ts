// The report's charts: Vega-Lite specs built from the saved report object (never a second computation),
// compiled to Vega and rendered to SVG in Node. Without a canvas, vega estimates text width as 0.8 em per
// character, which is too narrow for CJK (1 em) and too wide for Latin; we install a CJK-aware estimate so
// label limits, legends and padding are laid out for the font the SVG names (Noto Sans CJK JP).
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Report, Figures } from './aggregate.ts';
import { CRITERIA } from '../lib/criteria.ts';
import {
  CRITERION_LABELS, STATUS_COLORS, STATUS_LABELS, SPF_DKIM_COLORS, SPF_DKIM_LABELS, VERDICT_COLORS, VERDICT_ORDER,
  findingLabel, findingValueLabel, verdictLabel, T, type Lang,
} from './labels.ts';

/** The embedded web font first (reports/fonts.ts): the same glyphs on every machine; system fonts after it. */
export const FONT = '"Noto Sans JP", "Noto Sans CJK JP", "Hiragino Sans", "Yu Gothic", sans-serif';

/** True for characters drawn full-width (1 em) in a CJK font: CJK ideographs, kana, Hangul, full-width forms. */
function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    cp >= 0x20000
  );
}

/** Width of `text` in em, for Noto Sans CJK JP: wide characters 1 em, Latin by rough glyph classes. */
export function textWidthEm(text: string): number {
  let w = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (isWide(cp)) w += 1;
    else if (ch === ' ') w += 0.25;
    else if ('iljI.,:;|!\'()[]'.includes(ch)) w += 0.3;
    else if ('mwMW%@'.includes(ch)) w += 0.85;
    else if (ch >= 'A' && ch <= 'Z') w += 0.65;
    else w += 0.56;
  }
  return w;
}

let installed = false;
/** Replaces vega's text width estimate with the CJK-aware one (vega supports a user-defined textMetrics.width). */
function installTextMetrics(): void {
  if (installed) return;
  installed = true;
  // vega exports textMetrics at runtime; types/vega.d.ts declares it.
  vega.textMetrics.width = (item: any, text?: unknown) => {
    const t = text ?? item.text;
    const size = item.fontSize ?? 11;
    const lines = Array.isArray(t) ? t.map(String) : [t == null ? '' : String(t)];
    return Math.max(0, ...lines.map((l) => textWidthEm(l) * size));
  };
}

/** Compiles a Vega-Lite spec and renders it to an SVG string, headless. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  installTextMetrics();
  const vgSpec = compile(spec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    // Give each chart an accessible name (Vega emits role="graphics-document" already).
    return svg.replace('<svg ', `<svg aria-label="${escapeAttr(String((spec as any).description ?? 'chart'))}" `);
  } finally {
    view.finalize();
  }
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}

/** The Vega-Lite version every chart is written in (and vega-lite in package.json renders). */
const VEGA_LITE = 'https://vega.github.io/schema/vega-lite/v6.json';

const config = (lang: Lang) => ({
  font: FONT,
  view: { stroke: null },
  axis: { labelFontSize: 12, titleFontSize: 12, labelColor: '#333', titleColor: '#333', gridColor: '#e6e6e6', domainColor: '#999', tickColor: '#999' },
  legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 0, symbolType: 'square' },
  text: { fontSize: 12 },
  locale: lang === 'ja' ? undefined : undefined,
});

/** Parentheses as each language writes them: full-width in Japanese. */
export const P = (lang: Lang, s: string) => (lang === 'ja' ? `（${s}）` : ` (${s})`);

const fmtPct = (p: number | null) => (p === null ? '—' : `${p}%`);

/** The share axis of a bar chart, its title naming the denominator. */
const shareAxis = (denominator: number, lang: Lang) => ({ format: '%', title: `${T.share[lang]}${P(lang, `${T.denominator[lang]}: ${denominator}`)}`, tickCount: 5 });

/** Verdict donut: the share of each verdict, with n, from report.verdicts. */
export function verdictDonutSpec(r: Figures, lang: Lang): TopLevelSpec {
  const values = VERDICT_ORDER.map((v, i) => ({
    key: v,
    order: i,
    label: `${verdictLabel(v, lang)}  ${fmtPct(r.verdicts[v].pct)}${P(lang, `${r.verdicts[v].n}`)}`,
    n: r.verdicts[v].n,
    pctLabel: r.verdicts[v].pct !== null && r.verdicts[v].pct! >= 4 ? `${r.verdicts[v].pct}%` : '',
  }));
  const domain = values.map((v) => v.label);
  const range = VERDICT_ORDER.map((v) => VERDICT_COLORS[v]);
  return {
    $schema: VEGA_LITE,
    description: T.overall[lang],
    width: 230,
    height: 230,
    config: config(lang),
    data: { values: values.filter((v) => v.n > 0) },
    encoding: {
      theta: { field: 'n', type: 'quantitative', stack: true },
      order: { field: 'order', type: 'ordinal' },
      color: {
        field: 'label',
        type: 'nominal',
        scale: { domain, range },
        legend: { title: `n = ${r.domains}`, orient: 'right' },
      },
    },
    layer: [
      { mark: { type: 'arc', innerRadius: 62, outerRadius: 112, stroke: '#fff', strokeWidth: 1.5 } },
      {
        mark: { type: 'text', radius: 88, fontSize: 13, fontWeight: 'bold', fill: '#fff' },
        encoding: { text: { field: 'pctLabel', type: 'nominal' } },
      },
    ],
  } as TopLevelSpec;
}

/** Stacked bars per criterion: ok / ng / unknown / na as shares of all domains, from report.criteria. */
export function criteriaBarsSpec(r: Figures, lang: Lang): TopLevelSpec {
  const statuses = ['ok', 'ng', 'unknown', 'na'] as const;
  const values: Record<string, unknown>[] = [];
  for (const c of CRITERIA) {
    let start = 0;
    for (const s of statuses) {
      const f = r.criteria[c][s];
      const share = f.total === 0 ? 0 : f.n / f.total;
      values.push({
        criterion: CRITERION_LABELS[c][lang],
        status: STATUS_LABELS[s][lang],
        start,
        end: start + share,
        mid: start + share / 2,
        label: f.pct !== null && share >= 0.07 ? `${f.pct}%` : '',
        textColor: s === 'na' || s === 'unknown' ? '#222' : '#fff',
      });
      start += share;
    }
  }
  const y = { field: 'criterion', type: 'nominal', sort: CRITERIA.map((c) => CRITERION_LABELS[c][lang]), title: null };
  return {
    $schema: VEGA_LITE,
    description: T.perCriterion[lang],
    width: 440,
    height: { step: 26 },
    config: config(lang),
    data: { values },
    encoding: { y: y as any },
    layer: [
      {
        mark: { type: 'bar', height: 18 },
        encoding: {
          x: { field: 'start', type: 'quantitative', scale: { domain: [0, 1] }, axis: shareAxis(r.domains, lang) },
          x2: { field: 'end' },
          color: {
            field: 'status',
            type: 'nominal',
            scale: { domain: statuses.map((s) => STATUS_LABELS[s][lang]), range: statuses.map((s) => STATUS_COLORS[s]) },
            legend: { title: null, orient: 'top', direction: 'horizontal' },
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 11 },
        encoding: {
          x: { field: 'mid', type: 'quantitative' },
          text: { field: 'label', type: 'nominal' },
          color: { field: 'textColor', type: 'nominal', scale: null },
        },
      },
    ],
  } as TopLevelSpec;
}

const FINDING_COLOR = '#1565c0';

interface ShareBar {
  key: string;
  figure: { n: number; total: number; pct: number | null };
  color: string;
}

/** Horizontal bars of shares of one denominator, each labelled "pct% (n)"; the axis title names the denominator. */
function shareBarsSpec(bars: readonly ShareBar[], description: string, denominator: number, lang: Lang): TopLevelSpec {
  const values = bars.map((b) => ({
    key: b.key,
    share: b.figure.total === 0 ? 0 : b.figure.n / b.figure.total,
    label: `${fmtPct(b.figure.pct)}${P(lang, `${b.figure.n}`)}`,
    color: b.color,
  }));
  return {
    $schema: VEGA_LITE,
    description,
    width: 360,
    height: { step: 28 },
    config: config(lang),
    data: { values },
    encoding: {
      // Whole labels, never cut with an ellipsis: the width follows them (textWidthEm).
      y: { field: 'key', type: 'nominal', sort: values.map((v) => v.key), title: null, axis: { labelLimit: 0 } },
      x: { field: 'share', type: 'quantitative', scale: { domain: [0, 1] }, axis: shareAxis(denominator, lang) },
    },
    layer: [
      { mark: { type: 'bar', height: 18 }, encoding: { color: { field: 'color', type: 'nominal', scale: null } } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 12 }, encoding: { text: { field: 'label', type: 'nominal' } } },
    ],
  } as TopLevelSpec;
}

/** SPF×DKIM combinations as horizontal bars, from report.spf_dkim. */
export function spfDkimBarsSpec(r: Figures, lang: Lang): TopLevelSpec {
  const keys = ['both_ok', 'spf_only', 'dkim_only', 'both_ng', 'unknown'] as const;
  return shareBarsSpec(keys.map((k) => ({ key: SPF_DKIM_LABELS[k][lang], figure: r.spf_dkim[k], color: SPF_DKIM_COLORS[k] })), T.spfDkim[lang], r.domains, lang);
}

/**
 * One finding beyond MSchecker (report.findings[id]) as bars, one per value in the registry's order, each the
 * share of the finding's own denominator (a domain of a multi-valued finding counts under each of its
 * values). One colour: a finding's values are not ranked as OK/NG are; unknown is grey, as in the criteria
 * chart, and always drawn, so what could not be measured stays visible.
 */
export function findingBarsSpec(r: Figures, id: string, lang: Lang): TopLevelSpec | null {
  const figures = r.findings[id];
  const entries = figures ? Object.entries(figures) : [];
  if (entries.length === 0) return null;
  const bars = entries.map(([v, f]) => ({ key: findingValueLabel(id, v, lang), figure: f, color: v === 'unknown' ? STATUS_COLORS.unknown : FINDING_COLOR }));
  return shareBarsSpec(bars, findingLabel(id, lang), entries[0][1].total, lang);
}

/** The headline figures of both periods side by side, from report and report.previous. */
export function yearOverYearSpec(r: Report, lang: Lang): TopLevelSpec | null {
  const prev = r.previous;
  if (!prev) return null;
  const short = (f: Figures) => (f.period.kind === 'year' ? f.period.from.slice(0, 4) : f.period.kind === 'fiscal-year' ? (lang === 'ja' ? `${f.period.from.slice(0, 4)}年度` : `FY${f.period.from.slice(0, 4)}`) : `${f.period.from}〜${f.period.to}`);
  const metrics: { label: string; get: (f: Figures) => { n: number; total: number; pct: number | null } }[] = [
    ...VERDICT_ORDER.map((v) => ({ label: verdictLabel(v, lang), get: (f: Figures) => f.verdicts[v] })),
    { label: lang === 'ja' ? 'SPF・DKIM両方NG' : 'SPF & DKIM both NG', get: (f) => f.spf_dkim.both_ng },
    { label: lang === 'ja' ? 'SSL/TLS送信または受信NG' : 'TLS send or receive NG', get: (f) => f.tls_send_or_receive_ng },
    { label: lang === 'ja' ? '送信元DNS逆引きOK' : 'Reverse DNS OK', get: (f) => f.criteria.reverse_dns.ok },
  ];
  const values: Record<string, unknown>[] = [];
  for (const [f, which] of [[prev, 0], [r, 1]] as const) {
    for (const m of metrics) {
      const s = m.get(f);
      values.push({ metric: m.label, period: `${short(f)}${P(lang, `n=${f.domains}`)}`, which, share: s.total === 0 ? 0 : s.n / s.total, label: fmtPct(s.pct) });
    }
  }
  const periods = [`${short(prev)}${P(lang, `n=${prev.domains}`)}`, `${short(r)}${P(lang, `n=${r.domains}`)}`];
  return {
    $schema: VEGA_LITE,
    description: T.yoy[lang],
    width: 420,
    height: metrics.length * 40,
    config: config(lang),
    data: { values },
    encoding: {
      y: { field: 'metric', type: 'nominal', sort: metrics.map((m) => m.label), title: null },
      yOffset: { field: 'period', type: 'nominal', sort: periods },
      x: { field: 'share', type: 'quantitative', scale: { domain: [0, 1] }, axis: { format: '%', title: T.share[lang], tickCount: 5 } },
    },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          color: { field: 'period', type: 'nominal', sort: periods, scale: { domain: periods, range: ['#b0bec5', '#1565c0'] }, legend: { title: null, orient: 'top' } },
        },
      },
      { mark: { type: 'text', align: 'left', dx: 3, fontSize: 10 }, encoding: { text: { field: 'label', type: 'nominal' } } },
    ],
  } as TopLevelSpec;
}

export interface Charts {
  verdicts: string;
  criteria: string;
  spfDkim: string;
  yearOverYear: string | null;
  cohorts: string | null;
  trend: string | null;
  /** One chart per finding beyond MSchecker, by check id. */
  findings: Record<string, string>;
}

/** Every chart of a report, as SVG strings. An empty period gets no charts (there is nothing to draw). */
export async function renderCharts(r: Report, lang: Lang): Promise<Charts | null> {
  if (r.domains === 0) {
    // Nothing of this period to draw; a trend over other periods still has its chart.
    const trend = trendSpec(r, lang);
    return trend ? { verdicts: '', criteria: '', spfDkim: '', yearOverYear: null, cohorts: null, trend: await renderSvg(trend), findings: {} } : null;
  }
  const yoy = yearOverYearSpec(r, lang);
  const cohortSpec = cohortDotSpec(r, lang);
  const trend = trendSpec(r, lang);
  const findings: Record<string, string> = {};
  for (const id of Object.keys(r.findings)) {
    const spec = findingBarsSpec(r, id, lang);
    if (spec) findings[id] = await renderSvg(spec);
  }
  return {
    findings,
    verdicts: await renderSvg(verdictDonutSpec(r, lang)),
    criteria: await renderSvg(criteriaBarsSpec(r, lang)),
    spfDkim: await renderSvg(spfDkimBarsSpec(r, lang)),
    yearOverYear: yoy ? await renderSvg(yoy) : null,
    cohorts: cohortSpec ? await renderSvg(cohortSpec) : null,
    trend: trend ? await renderSvg(trend) : null,
  };
}

/** Cohorts as a dot plot: the share of "safe" per cohort with its Wilson interval, the overall share as a rule. */
export function cohortDotSpec(r: Report, lang: Lang): TopLevelSpec | null {
  const c = r.cohorts;
  if (!c) return null;
  const values = c.groups
    .filter((g) => !g.verdicts.safe.suppressed && g.verdicts.safe.wilson)
    .map((g) => ({
      cohort: `${g.key === '' ? (lang === 'ja' ? '（未設定）' : '(not given)') : g.key}${P(lang, `n=${g.domains}`)}`,
      share: g.verdicts.safe.n! / g.verdicts.safe.total!,
      low: g.verdicts.safe.wilson!.low / 100,
      high: g.verdicts.safe.wilson!.high / 100,
    }));
  if (values.length === 0) return null;
  const overall = r.domains === 0 ? 0 : r.verdicts.safe.n / r.domains;
  return {
    $schema: VEGA_LITE,
    description: lang === 'ja' ? '区分別の「安全」の割合' : 'Share of safe per cohort',
    width: 420,
    height: { step: 26 },
    config: config(lang),
    layer: [
      {
        data: { values },
        encoding: {
          y: { field: 'cohort', type: 'nominal', sort: null, title: null },
          x: { field: 'low', type: 'quantitative', scale: { domain: [0, 1] }, axis: { format: '%', title: `${verdictLabel('safe', lang)} · 95% CI`, tickCount: 5 } },
          x2: { field: 'high' },
        },
        mark: { type: 'rule', strokeWidth: 2, color: '#90a4ae' },
      },
      {
        data: { values },
        encoding: { y: { field: 'cohort', type: 'nominal', sort: null }, x: { field: 'share', type: 'quantitative' } },
        mark: { type: 'point', filled: true, size: 60, color: VERDICT_COLORS.safe },
      },
      { data: { values: [{ overall }] }, encoding: { x: { field: 'overall', type: 'quantitative' } }, mark: { type: 'rule', strokeDash: [4, 3], color: '#555' } },
    ],
  } as TopLevelSpec;
}

/** The trend: each verdict's share per period as a line with its Wilson interval as a band. */
export function trendSpec(r: Report, lang: Lang): TopLevelSpec | null {
  const t = r.trend;
  if (!t) return null;
  const values: Record<string, unknown>[] = [];
  for (const s of t.series.filter((x) => x.metric === 'verdict')) {
    for (const p of s.points) {
      if (p.total === 0) continue;
      values.push({ period: p.label, verdict: verdictLabel(s.value, lang), share: p.n / p.total, low: p.wilson!.low / 100, high: p.wilson!.high / 100 });
    }
  }
  if (values.length === 0) return null;
  const domain = VERDICT_ORDER.map((v) => verdictLabel(v, lang));
  const range = VERDICT_ORDER.map((v) => VERDICT_COLORS[v]);
  const color = { field: 'verdict', type: 'nominal', scale: { domain, range }, legend: { title: null, orient: 'top' } };
  const x = { field: 'period', type: 'ordinal', sort: t.periods.map((p) => p.label), title: null, axis: { labelAngle: 0 } };
  return {
    $schema: VEGA_LITE,
    description: lang === 'ja' ? '経年推移' : 'Over the years',
    width: 460,
    height: 240,
    config: config(lang),
    data: { values },
    layer: [
      { mark: { type: 'area', opacity: 0.18 }, encoding: { x, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' }, color } },
      { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'share', type: 'quantitative', scale: { domain: [0, 1] }, axis: { format: '%', title: T.share[lang] } }, color } },
    ],
  } as TopLevelSpec;
}
