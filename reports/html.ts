// The report as one self-contained HTML page (inline CSS and SVG, no scripts, no network), laid out as a
// press-release appendix and printable to A4 (pdf.ts prints this same page).
import type { Figure, Figures, Report } from './aggregate.ts';
import type { Charts } from './charts.ts';
import { FONT, P } from './charts.ts';
import { embeddedFontCss } from './fonts.ts';
import { breakdownSections } from './html-breakdowns.ts';
import { CRITERIA } from '../lib/criteria.ts';
import {
  CRITERION_LABELS, findingLabel, findingValueLabel, SOURCE_LABELS, SPF_DKIM_LABELS, STATUS_LABELS, T, VERDICT_COLORS, VERDICT_ORDER,
  verdictLabel, type Lang,
} from './labels.ts';

export function esc(s: unknown): string {
  return String(s ?? '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const pct = (f: Figure) => (f.pct === null ? '—' : `${f.pct}%`);
const ci = (f: Figure) => (f.wilson ? `${f.wilson.low.toFixed(1)}–${f.wilson.high.toFixed(1)}%` : '—');
function delta(f: Figure, lang: Lang): string {
  if (f.delta === null || f.delta === undefined) return '<span class="muted">—</span>';
  const unit = lang === 'ja' ? 'pt' : ' pt';
  const ci = f.change ? ` <span class="muted">[${f.change.low.toFixed(1)}, ${f.change.high.toFixed(1)}]</span>${f.change.distinguishable ? ' *' : ''}` : '';
  if (f.delta === 0) return `±0${unit}${ci}`;
  return `${f.delta > 0 ? '+' : '−'}${Math.abs(f.delta)}${unit}${ci}`;
}

const CSS = `
@page { size: A4; margin: 14mm 14mm 16mm; @bottom-center { content: counter(page) " / " counter(pages); font-family: ${FONT}; font-size: 8px; color: #777; } }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: ${FONT}; color: #1f2328; margin: 0; background: #f3f4f6; font-size: 13px; line-height: 1.65; }
main { max-width: 860px; margin: 0 auto; background: #fff; padding: 36px 44px 44px; }
header.cover { border-bottom: 3px solid #0d47a1; padding-bottom: 14px; margin-bottom: 22px; }
header.cover .kicker { color: #0d47a1; font-weight: 700; letter-spacing: .08em; font-size: 12px; }
h1 { font-size: 24px; margin: 4px 0 8px; line-height: 1.35; }
.meta { display: flex; flex-wrap: wrap; gap: 6px 22px; color: #555; font-size: 12.5px; }
.meta b { color: #1f2328; }
h2 { font-size: 17px; margin: 30px 0 10px; padding: 4px 0 4px 10px; border-left: 5px solid #0d47a1; background: #f5f8fc; }
h3 { font-size: 14px; margin: 18px 0 6px; }
.summary { background: #f5f8fc; border: 1px solid #d6e2f0; border-radius: 6px; padding: 12px 18px; }
.summary ul { margin: 6px 0; padding-left: 1.3em; }
.summary li { margin: 4px 0; }
.figure-row { display: flex; gap: 20px; align-items: flex-start; flex-wrap: wrap; }
figure { margin: 8px 0 4px; break-inside: avoid; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 11.5px; color: #555; margin-top: 2px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 12.5px; break-inside: avoid; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e1e4e8; padding: 5px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; }
thead th { background: #eef2f7; color: #333; font-weight: 700; border-bottom: 2px solid #c8d1dc; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: baseline; }
.note { font-size: 11.5px; color: #555; margin: 4px 0; }
.muted { color: #8a8f98; }
.empty { border: 2px dashed #c62828; color: #b71c1c; padding: 14px 18px; border-radius: 6px; font-weight: 700; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin: 14px 0 4px; }
.kpi { border: 1px solid #e1e4e8; border-radius: 6px; padding: 8px 12px; }
.kpi .v { font-size: 24px; font-weight: 700; line-height: 1.2; }
.kpi .l { font-size: 11.5px; color: #555; }
pre { background: #f6f8fa; padding: 8px 10px; font-size: 11px; white-space: pre-wrap; word-break: break-all; border-radius: 4px; }
details summary { cursor: pointer; }
footer { margin-top: 32px; border-top: 1px solid #e1e4e8; padding-top: 8px; font-size: 11px; color: #777; }
section { break-inside: auto; }
.wide { overflow-x: auto; }
.wide table { font-size: 11px; }
.wide th, .wide td { padding: 4px 5px; white-space: normal; }
.wide td:first-child, .wide th:first-child { white-space: nowrap; }
h2, h3 { break-after: avoid; }
@media print { body { background: #fff; } main { padding: 0; max-width: none; } details { display: block; } }
`;

function figureTable(rows: { label: string; color?: string; f: Figure }[], lang: Lang, hasPrev: boolean, cls = ''): string {
  const hasBounds = rows.some((r) => r.f.bounds);
  const bounds = (f: Figure) => (hasBounds ? `<td>${f.bounds ? `${f.bounds.low.toFixed(1)}–${f.bounds.high.toFixed(1)}%` : '—'}</td>` : '');
  const head = `<tr><th>${T.category[lang]}</th><th>${T.domains[lang]}</th><th>${T.share[lang]}</th><th>${T.ci[lang]}</th>${hasBounds ? `<th>${lang === 'ja' ? '測定不能が最良／最悪の場合' : 'If unknowns were best / worst'}</th>` : ''}${
    hasPrev ? `<th>${T.previous[lang]}</th><th>${T.change[lang]}</th>` : ''
  }</tr>`;
  const body = rows
    .map(
      (r) =>
        `<tr><td>${r.color ? `<span class="swatch" style="background:${r.color}"></span>` : ''}${esc(r.label)}</td><td>${r.f.n} / ${r.f.total}</td><td><b>${pct(r.f)}</b></td><td>${ci(r.f)}</td>${bounds(r.f)}${
          hasPrev ? `<td>${r.f.previous_pct == null ? '—' : `${r.f.previous_pct}%`}</td><td>${delta(r.f, lang)}</td>` : ''
        }</tr>`,
    )
    .join('');
  return `<table class="${cls}"><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function criteriaTable(r: Figures, lang: Lang, hasPrev: boolean): string {
  const cell = (f: Figure) => `${f.n}<span class="muted"> (${pct(f)})</span>`;
  const head = `<tr><th>${lang === 'ja' ? 'チェック項目' : 'Check'}</th>${(['ok', 'ng', 'unknown', 'na'] as const)
    .map((s) => `<th>${STATUS_LABELS[s][lang]}</th>`)
    .join('')}${hasPrev ? `<th>OK ${T.change[lang]}</th>` : ''}</tr>`;
  const body = CRITERIA.map(
    (c) =>
      `<tr><td>${esc(CRITERION_LABELS[c][lang])}</td>${(['ok', 'ng', 'unknown', 'na'] as const).map((s) => `<td>${cell(r.criteria[c][s])}</td>`).join('')}${
        hasPrev ? `<td>${delta(r.criteria[c].ok, lang)}</td>` : ''
      }</tr>`,
  ).join('');
  return `<table><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function findingsTables(r: Figures, lang: Lang, hasPrev: boolean, charts: Record<string, string>): string {
  return Object.keys(r.findings)
    .map((k) => {
      const rows = Object.entries(r.findings[k]).map(([v, f]) => ({ label: findingValueLabel(k, v, lang), f }));
      const chart = charts[k] ? `<figure>${charts[k]}</figure>` : '';
      return `<h3>${findingLabel(k, lang)}</h3>${chart}${figureTable(rows, lang, hasPrev)}`;
    })
    .join('');
}

function coverage(r: Report, lang: Lang): string {
  const ja = lang === 'ja';
  const c = r.coverage;
  const parts: string[] = [];
  const srcRows = (Object.keys(c.sources) as (keyof typeof c.sources)[]).map((s) => ({ label: SOURCE_LABELS[s][lang], f: c.sources[s] }));
  parts.push(`<h3>${ja ? '集計に使った診断の種類（各ドメインの最新の診断）' : 'Source of each counted (latest) diagnosis'}</h3>${figureTable(srcRows, lang, false)}`);
  parts.push(
    `<p class="note">${
      ja
        ? `期間内の診断は全${r.diagnoses}件。複数回診断されたドメインは最新の1件のみを数えています${P(lang, `${r.domains}ドメイン`)}。テストメールとスキャンの両方で診断されたドメイン: ${c.domains_with_both_sources}。`
        : `${r.diagnoses} diagnoses were made in the period; a domain diagnosed more than once counts once, by its latest diagnosis (${r.domains} domains). Domains diagnosed by both test mail and scan: ${c.domains_with_both_sources}.`
    }</p>`,
  );
  if (c.survey_domains) {
    parts.push(
      `<p class="note">${
        ja
          ? `調査「${esc(r.source.survey)}」の登録ドメイン${c.survey_domains.total}件のうち、期間内に診断されたのは${c.survey_domains.n}件${P(lang, `${pct(c.survey_domains)}`)}。`
          : `${c.survey_domains.n} of the ${c.survey_domains.total} domains listed in survey "${esc(r.source.survey)}" were diagnosed in the period (${pct(c.survey_domains)}).`
      }</p>`,
    );
  }
  parts.push(`<h3>${ja ? '判定不能の理由' : 'Why diagnoses were incomplete'}${P(lang, `${c.incomplete.n}`)}</h3>`);
  parts.push(
    c.incomplete.reasons.length === 0
      ? `<p class="note">${ja ? '判定不能の診断はありません。' : 'No diagnosis was incomplete.'}</p>`
      : `<table><thead><tr><th>${ja ? '測定できなかった項目' : 'Unmeasured check'}</th><th>${ja ? '理由コード' : 'Reason code'}</th><th>${T.domains[lang]}</th></tr></thead><tbody>${c.incomplete.reasons
          .map((x) => `<tr><td>${esc(CRITERION_LABELS[x.criterion as keyof typeof CRITERION_LABELS]?.[lang] ?? x.criterion)}</td><td><code>${esc(x.reason)}</code></td><td>${x.n}</td></tr>`)
          .join('')}</tbody></table>`,
  );
  if (c.unknown_reasons.length > 0) {
    parts.push(
      `<h3>${ja ? '測定不能（unknown）の内訳' : 'Unknown statuses by reason'}</h3><table><thead><tr><th>${ja ? '項目' : 'Check'}</th><th>${ja ? '理由コード' : 'Reason code'}</th><th>${T.domains[lang]}</th></tr></thead><tbody>${c.unknown_reasons
        .map((x) => `<tr><td>${esc(CRITERION_LABELS[x.criterion as keyof typeof CRITERION_LABELS]?.[lang] ?? x.criterion)}</td><td><code>${esc(x.reason)}</code></td><td>${x.n}</td></tr>`)
        .join('')}</tbody></table>`,
    );
  }
  if (c.provenance && Object.values(c.provenance).some((n) => n > 0)) {
    // CRITERIA.md "Test-mail provenance": how many test-mail domains each class contributes.
    const pv = c.provenance;
    parts.push(`<h3>${ja ? 'テストメールの出所' : 'Test-mail provenance'}</h3><table><thead><tr><th>${ja ? '区分' : 'Class'}</th><th>${T.domains[lang]}</th></tr></thead><tbody>${(['requested', 'authenticated', 'unverified', 'none'] as const)
      .filter((k) => k !== 'none' || pv.none > 0)
      .map((k) => `<tr><td><code>${k}</code></td><td>${pv[k]}</td></tr>`)
      .join('')}</tbody></table>`);
  }
  parts.push(`<h3>${ja ? '測定に使った実行設定' : 'Run configurations'}</h3>`);
  parts.push(
    c.runs.length === 0
      ? `<p class="note">${ja ? 'スキャン実行による診断は含まれていません。' : 'No diagnosis came from a survey run.'}</p>`
      : c.runs
          .map(
            (run) =>
              `<details><summary>run #${run.id}${run.survey ? ` (${esc(run.survey)})` : ''} — ${run.state}, ${run.domains} ${ja ? 'ドメイン' : 'domains'}, ${esc(run.created_at.slice(0, 10))}</summary><pre>${esc(JSON.stringify(run.config, null, 2))}</pre></details>`,
          )
          .join(''),
  );
  return parts.join('');
}

function method(r: Report, lang: Lang): string {
  if (lang === 'ja') {
    return `<ul class="note">
<li>各ドメインは期間内の最新の診断1件のみを数えます${P(lang, `期間: ${esc(r.period.from)}〜${esc(r.period.to)}、${esc(r.period.timezone)}`)}。</li>
<li>すべての割合の分母は、その表に示した「n / 分母」の分母です。測定できなかった項目は「測定不能」、対象とならない項目${P(lang, `MXのないドメイン等`)}は「対象外」として、隠さずに表示しています。</li>
<li>${T.roundingNote.ja}前期比は表示した割合どうしの差${P(lang, `ポイント`)}です。[ ]は丸める前の差のNewcombe 95%信頼区間で、* は0と区別できる差です。</li>
<li>「測定不能が最良／最悪の場合」は、測定不能の項目がすべてOKだった場合とすべてNGだった場合の割合の範囲です。</li>
<li>95%信頼区間はWilsonのスコア区間です。</li>
<li>評価は最も悪い判定を採用します: 危険＝メール不正中継NG／改善が必要＝SPFとDKIMの両方NG、SSL/TLS送信・受信NG、送信元DNS逆引きNG／見直しを推奨＝DNSSEC・DNSBL NG／安全＝いずれにも該当しない。より悪い判定につながりうる項目が測定不能の場合は「判定不能」です。</li>
<li>本レポートの数値はすべてデータベース関数 <code>report_diagnoses()</code> から再現できます${P(lang, `docs/reports.md`)}。</li></ul>`;
  }
  return `<ul class="note">
<li>Each domain counts once, by its latest diagnosis in the period (${esc(r.period.from)} – ${esc(r.period.to)}, ${esc(r.period.timezone)}).</li>
<li>Every percentage is n / denominator as shown next to it. Checks that could not be measured are shown as Unknown and checks that do not apply (e.g. a domain without MX) as N/A; neither is hidden.</li>
<li>${T.roundingNote.en} Changes are the difference of the printed percentages, in points; [ ] is Newcombe's 95% interval of the unrounded difference and * marks a change distinguishable from zero.</li>
<li>"If unknowns were best / worst" is the range of a share if every unmeasured check had been OK, and if every one had been NG.</li>
<li>95% confidence intervals are Wilson score intervals.</li>
<li>The verdict is the worst level proven: danger = open relay NG; needs improvement = SPF and DKIM both NG, TLS send or receive NG, or reverse DNS NG; review = DNSSEC or DNSBL NG; safe = none of these. When an unmeasured check could still make it worse, the verdict is Incomplete.</li>
<li>Every figure can be reproduced with the SQL function <code>report_diagnoses()</code> (docs/reports.md).</li></ul>`;
}

/** The whole page. `charts` null: no charts (empty period). */
export function renderHtml(r: Report, charts: Charts | null, lang: Lang): string {
  const ja = lang === 'ja';
  const hasPrev = r.previous !== null;
  const sourceText =
    r.source.kind === 'survey'
      ? `${ja ? '調査' : 'survey'} ${esc(r.source.survey)}${r.source.source ? ` (${SOURCE_LABELS[r.source.source][lang]})` : ''}`
      : SOURCE_LABELS[r.source.kind][lang];
  const summary = r.summary?.[lang] ?? [];
  const head = `<header class="cover"><div class="kicker">${ja ? '統計レポート　付属資料' : 'STATISTICS REPORT · APPENDIX'}</div>
<h1>${T.title[lang]}</h1>
<div class="meta"><span>${ja ? '対象期間' : 'Period'}: <b>${esc(r.period.label[lang])}</b></span><span>${ja ? 'データ' : 'Data'}: <b>${sourceText}</b></span><span>${ja ? '全ドメイン数' : 'Domains'}: <b>${r.domains}</b></span><span>${ja ? '作成日' : 'Generated'}: ${esc(r.generated_at.slice(0, 10))}</span></div></header>`;

  if (r.domains === 0) {
    // A trend or a domain-by-domain comparison still has something to show when this period is empty.
    return page(lang, `${head}<p class="empty">${esc(summary[0] ?? 'n = 0')}</p>${breakdownSections(r, lang, charts)}<h2>${T.method[lang]}</h2>${method(r, lang)}`);
  }

  const v = r.verdicts;
  const kpi = (val: string, label: string) => `<div class="kpi"><div class="v">${val}</div><div class="l">${label}</div></div>`;
  const kpis = `<div class="kpis">${kpi(pct(v.safe), `${verdictLabel('safe', lang)}${P(lang, `n=${v.safe.n}`)}`)}${kpi(pct(v.needs_improvement), `${verdictLabel('needs_improvement', lang)}${P(lang, `n=${v.needs_improvement.n}`)}`)}${kpi(
    pct(r.spf_dkim.both_ng),
    `${ja ? 'SPF・DKIM両方NG' : 'SPF & DKIM both NG'}${P(lang, `n=${r.spf_dkim.both_ng.n}`)}`,
  )}${kpi(pct(r.tls_send_or_receive_ng), `${ja ? 'SSL/TLS送信または受信NG' : 'TLS send or receive NG'}${P(lang, `n=${r.tls_send_or_receive_ng.n}`)}`)}</div>
<p class="note">${ja ? `分母はいずれも全${r.domains}ドメイン。` : `Denominator of each: all ${r.domains} domains.`}</p>`;

  const body = `${head}
<section class="summary"><b>${T.summary[lang]}</b><ul>${summary.map((s) => `<li>${esc(s)}</li>`).join('')}</ul></section>
${kpis}
<section><h2>1. ${T.overall[lang]}</h2>
<div class="figure-row"><figure>${charts?.verdicts ?? ''}<figcaption>${T.overall[lang]}${P(lang, `n=${r.domains}`)}</figcaption></figure></div>
${figureTable(VERDICT_ORDER.map((k) => ({ label: verdictLabel(k, lang), color: VERDICT_COLORS[k], f: v[k] })), lang, hasPrev)}
${mailDomainVerdicts(r, lang, hasPrev)}
<p class="note">${T.roundingNote[lang]}</p></section>
<section><h2>2. ${T.perCriterion[lang]}</h2>
<figure>${charts?.criteria ?? ''}<figcaption>${ja ? `各項目のOK／NG／測定不能／対象外の割合${P(lang, `分母: 全${r.domains}ドメイン`)}` : `OK / NG / unknown / N/A per check (denominator: all ${r.domains} domains)`}</figcaption></figure>
${criteriaTable(r, lang, hasPrev)}</section>
<section><h2>3. ${T.spfDkim[lang]}</h2>
<figure>${charts?.spfDkim ?? ''}</figure>
${figureTable((['both_ok', 'spf_only', 'dkim_only', 'both_ng', 'unknown'] as const).map((k) => ({ label: SPF_DKIM_LABELS[k][lang], f: r.spf_dkim[k] })), lang, hasPrev)}
<p class="note">${ja ? 'SPFまたはDKIMの一方がOKであれば、送信元ドメイン認証は「安全」の条件を満たします。「判定不能」は一方が測定不能などで組み合わせが確定しないものです。' : 'One of SPF or DKIM passing is enough for a safe verdict. Unknown: the combination is not proven (one side unmeasured or N/A).'}</p></section>
<section><h2>4. ${T.tls[lang]}</h2>
${figureTable(
  [
    { label: ja ? 'SSL/TLS送信または受信がNG' : 'TLS send or receive NG', f: r.tls_send_or_receive_ng },
    { label: `${CRITERION_LABELS.tls_receive[lang]} NG`, f: r.criteria.tls_receive.ng },
    { label: `${CRITERION_LABELS.tls_send[lang]} NG`, f: r.criteria.tls_send.ng },
  ],
  lang,
  hasPrev,
)}</section>
<section><h2>5. ${T.yoy[lang]}</h2>
${
  hasPrev && charts?.yearOverYear
    ? `<figure>${charts.yearOverYear}<figcaption>${esc(r.previous!.period.label[lang])}${P(lang, `n=${r.previous!.domains}`)} → ${esc(r.period.label[lang])}${P(lang, `n=${r.domains}`)}</figcaption></figure>`
    : `<p class="note">${ja ? '前期間（同じ長さの直前の期間）のデータがないため、比較していません。' : 'The previous period of the same length has no data, so nothing is compared.'}</p>`
}</section>
<section><h2>6. ${T.findings[lang]}</h2><p class="note">${ja ? 'MScheckerの評価には影響しない追加の測定項目です。' : 'Additional measurements; they do not change the verdict.'}</p>${findingsTables(r, lang, hasPrev, charts?.findings ?? {})}</section>
<section><h2>7. ${T.coverage[lang]}</h2>${coverage(r, lang)}</section>
${breakdownSections(r, lang, charts)}
<section><h2>8. ${T.method[lang]}</h2>${method(r, lang)}</section>
<footer>mailcensus · report.json schema_version ${r.schema_version} · ${esc(r.generated_at)}</footer>`;
  return page(lang, body);
}

function page(lang: Lang, body: string): string {
  const title = T.title[lang];
  // The font slices covering every character of the page (text, charts, page numbers) are embedded.
  const fonts = embeddedFontCss(`${title}${body}${CSS}0123456789/ `);
  return `<!DOCTYPE html>
<html lang="${lang}"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><style>${fonts}</style><style>${CSS}</style></head>
<body><main>${body}</main></body></html>
`;
}

/** Non-mail domains on a line of their own, then the verdicts over mail domains with their denominator. */
function mailDomainVerdicts(r: Report, lang: Lang, hasPrev: boolean): string {
  const ja = lang === 'ja';
  const nm = r.findings.non_mail?.non_mail;
  const m = r.verdicts_mail_domains;
  if (!nm || !m) return '';
  const line = `<p class="non-mail">${ja ? 'メール不使用ドメイン（null MX／MXなし＋v=spf1 -all）' : 'Non-mail domains (null or no MX and v=spf1 -all)'}: <b>${nm.n}</b>${P(lang, `${pct(nm)}, ${ja ? `分母: 全${r.domains}ドメイン` : `of all ${r.domains} domains`}`)}</p>`;
  const caption = `<h3>${ja ? `メールドメインのみの評価${P(lang, `分母: ${m.domains}ドメイン`)}` : `Verdicts over mail domains (denominator: ${m.domains} domains)`}</h3>`;
  return `${line}${caption}${figureTable(VERDICT_ORDER.map((k) => ({ label: verdictLabel(k, lang), color: VERDICT_COLORS[k], f: m.verdicts[k] })), lang, hasPrev)}`;
}
