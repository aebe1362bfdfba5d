// A plain-text summary table of a report for the terminal (`mailcensus report`, `npm run demo`).
import type { Figure, Report } from './aggregate.ts';
import { textWidthEm } from './charts.ts';
import { CRITERIA } from '../lib/criteria.ts';
import { CRITERION_LABELS, SPF_DKIM_LABELS, VERDICT_ORDER, verdictLabel, type Lang } from './labels.ts';

/** Display columns of a string in a terminal: wide (CJK) characters take two. */
function cols(s: string): number {
  let n = 0;
  for (const ch of s) n += textWidthEm(ch) >= 1 ? 2 : 1;
  return n;
}
const pad = (s: string, w: number) => s + ' '.repeat(Math.max(0, w - cols(s)));
const lpad = (s: string, w: number) => ' '.repeat(Math.max(0, w - cols(s))) + s;

function line(label: string, f: Figure): string {
  const p = f.pct === null ? '—' : `${f.pct}%`;
  const d = f.delta === null || f.delta === undefined ? '' : `  ${f.delta > 0 ? '+' : f.delta < 0 ? '−' : '±'}${Math.abs(f.delta)}pt`;
  const ci = f.wilson ? `  [${f.wilson.low}–${f.wilson.high}]` : '';
  return `  ${pad(label, 26)}${lpad(`${f.n}/${f.total}`, 11)}${lpad(p, 6)}${ci}${d}\n`;
}

export function terminalSummary(r: Report, lang: Lang): string {
  let out = `\n${r.period.label[lang]} — ${r.domains} ${lang === 'ja' ? 'ドメイン' : 'domains'}` + (r.previous ? ` (${lang === 'ja' ? '前期' : 'previous'}: ${r.previous.domains})` : '') + '\n';
  if (r.domains === 0) return out + `  n = 0: ${lang === 'ja' ? 'この期間の診断はありません' : 'no diagnoses in this period'}\n\n`;
  for (const v of VERDICT_ORDER) out += line(verdictLabel(v, lang), r.verdicts[v]);
  out += '\n';
  for (const k of ['both_ok', 'spf_only', 'dkim_only', 'both_ng', 'unknown'] as const) out += line(`SPF×DKIM ${SPF_DKIM_LABELS[k][lang]}`, r.spf_dkim[k]);
  out += line(lang === 'ja' ? 'SSL/TLS送信または受信NG' : 'TLS send or receive NG', r.tls_send_or_receive_ng);
  out += '\n';
  for (const c of CRITERIA) out += line(`${CRITERION_LABELS[c][lang]} OK`, r.criteria[c].ok);
  out += '\n';
  for (const s of r.summary?.[lang] ?? []) out += `  ${s}\n`;
  return out + breakdownLines(r, lang) + '\n';
}

/** One line per trend series of the verdicts, the cohorts' safe shares and the domain-by-domain totals. */
function breakdownLines(r: Report, lang: Lang): string {
  const ja = lang === 'ja';
  let out = '';
  if (r.trend) {
    out += `\n  ${ja ? '経年推移' : 'Trend'} (${r.trend.periods.map((p) => `${p.label} n=${p.domains}`).join(', ')})\n`;
    for (const s of r.trend.series.filter((x) => x.metric === 'verdict')) {
      const pts = s.points.map((p) => (p.pct === null ? '—' : `${p.pct}%${p.change?.distinguishable ? '*' : ''}`)).join(' → ');
      out += `  ${pad(verdictLabel(s.value, lang), 26)}${pts}\n`;
    }
    out += `  ${ja ? '* 前期間との差が0と区別できる（Newcombe 95%）' : '* change from the period before distinguishable from zero (Newcombe 95%)'}\n`;
  }
  if (r.cohorts) {
    out += `\n  ${ja ? `${({ industry: '業種', tag: 'タグ', organization: '組織' } as const)[r.cohorts.by]}別の「安全」` : `Safe by ${r.cohorts.by}`} (${ja ? `${r.cohorts.min_cell}未満は伏せ字` : `cells under ${r.cohorts.min_cell} suppressed`})\n`;
    for (const g of r.cohorts.groups) {
      const f = g.verdicts.safe;
      out += `  ${pad(g.key === '' ? (ja ? '（未設定）' : '(not given)') : g.key, 26)}${lpad(f.suppressed ? f.display : `${f.n}/${f.total}`, 11)}${lpad(f.pct === null ? '' : `${f.pct}%`, 6)}  n=${g.domains_display}\n`;
    }
  }
  if (r.changes) {
    const c = r.changes;
    out += `\n  ${c.from.label} → ${c.to.label}: ${ja ? `両期間のドメイン${c.paired}、改善${c.improved}、悪化${c.regressed}、変化なし${c.unchanged}` : `${c.paired} paired domains, ${c.improved} improved, ${c.regressed} regressed, ${c.unchanged} unchanged`} (McNemar p = ${c.verdict_test.p ?? '—'})\n`;
  }
  return out;
}
