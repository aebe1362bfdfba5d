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
  return out + '\n';
}
