// The HTML sections of the schema-2 parts of a report: cohorts, trend, domain-by-domain changes and the
// rules/domains split. Every share shows n / denominator; suppressed cells show "<10"; intervals are shown.
import type { Report } from './aggregate.ts';
import type { CohortFigure } from './breakdowns.ts';
import type { Difference } from './stats.ts';
import { CRITERIA } from '../lib/criteria.ts';
import { VERDICTS } from '../lib/verdict.ts';
import { CRITERION_LABELS, VERDICT_COLORS, verdictLabel, type Lang } from './labels.ts';
import { P } from './charts.ts';

const esc = (s: unknown) => String(s ?? '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const diff = (d: Difference | null | undefined, lang: Lang) =>
  !d ? '<span class="muted">—</span>' : `${d.points > 0 ? '+' : d.points < 0 ? '−' : '±'}${Math.abs(d.points).toFixed(1)}${lang === 'ja' ? 'pt' : ' pt'} <span class="muted">[${d.low.toFixed(1)}, ${d.high.toFixed(1)}]</span>${d.distinguishable ? ' *' : ''}`;
const cell = (f: CohortFigure) => (f.suppressed ? `<span class="muted">${esc(f.display)}</span>` : `${f.n} / ${f.total} <b>${f.pct ?? '—'}%</b>`);

export interface BreakdownCharts {
  cohorts: string | null;
  trend: string | null;
}

function cohortsSection(r: Report, lang: Lang, chart: string | null): string {
  const c = r.cohorts!;
  const ja = lang === 'ja';
  const name = c.by === 'industry' ? (ja ? '業種' : 'industry') : c.by === 'tag' ? (ja ? 'タグ' : 'tag') : ja ? '組織' : 'organization';
  const keyLabel = (k: string) => (k === '' ? (ja ? '（未設定）' : '(not given)') : esc(k));
  const verdictTable = `<table><thead><tr><th>${esc(name)}</th><th>${ja ? 'ドメイン数' : 'Domains'}</th>${VERDICTS.map((v) => `<th>${verdictLabel(v, lang)}</th>`).join('')}<th>${ja ? '「安全」の差（他との比較）' : 'Safe vs the rest'}</th></tr></thead><tbody>${c.groups
    .map((g) => `<tr><td>${keyLabel(g.key)}</td><td>${esc(g.domains_display)}</td>${VERDICTS.map((v) => `<td>${cell(g.verdicts[v])}</td>`).join('')}<td>${diff(g.verdicts.safe.vs_rest, lang)}</td></tr>`)
    .join('')}</tbody></table>`;
  const ngTable = `<table><thead><tr><th>${esc(name)}</th>${CRITERIA.map((cr) => `<th>${esc(CRITERION_LABELS[cr][lang])} NG</th>`).join('')}</tr></thead><tbody>${c.groups
    .map((g) => `<tr><td>${keyLabel(g.key)}</td>${CRITERIA.map((cr) => `<td>${cell(g.criteria[cr].ng)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
  return `<section><h2>${ja ? `${esc(name)}別の結果` : `Results by ${esc(name)}`}</h2>
${chart ? `<figure>${chart}<figcaption>${ja ? `「安全」の割合と95%信頼区間（${esc(name)}別）。点線は全体。` : `Share of "safe" with its 95% interval per ${esc(name)}; the dotted line is all domains.`}</figcaption></figure>` : ''}
<h3>${ja ? '総合評価' : 'Verdicts'}</h3>${verdictTable}
<h3>${ja ? '項目別のNG' : 'NG per check'}</h3><div class="wide">${ngTable}</div>
<p class="note">${ja ? `${c.min_cell}ドメイン未満のセル（および${c.min_cell}ドメイン未満の区分のすべてのセル）は「&lt;${c.min_cell}」と表示し、数値を伏せています。差は「その区分 − それ以外」のポイント差で、[ ]はNewcombeの95%信頼区間、* は0と区別できる差です。` : `Cells counting fewer than ${c.min_cell} domains (and every cell of a cohort smaller than that) are shown as "&lt;${c.min_cell}". Differences are the cohort minus the rest, in points; [ ] is Newcombe's 95% interval and * marks a difference distinguishable from zero.`}</p></section>`;
}

function trendSection(r: Report, lang: Lang, chart: string | null): string {
  const t = r.trend!;
  const ja = lang === 'ja';
  const wanted = t.series.filter((s) => s.metric === 'verdict' || s.value === 'ng');
  const head = `<tr><th>${ja ? '指標' : 'Share'}</th>${t.periods.map((p) => `<th>${esc(p.label)}${P(lang, `n=${p.domains}`)}</th>`).join('')}</tr>`;
  const body = wanted
    .map((s) => {
      const label = s.metric === 'verdict' ? verdictLabel(s.value, lang) : `${CRITERION_LABELS[s.metric][lang]} NG`;
      return `<tr><td>${esc(label)}</td>${s.points
        .map((p) => `<td>${p.total === 0 ? '—' : `<b>${p.pct}%</b> <span class="muted">(${p.n})</span>`}${p.change ? `<br><small>${diff(p.change, lang)}</small>` : ''}</td>`)
        .join('')}</tr>`;
    })
    .join('');
  return `<section><h2>${ja ? '経年推移' : 'Over the years'}</h2>
${chart ? `<figure>${chart}<figcaption>${ja ? '各判定の割合と95%信頼区間（Wilson）' : 'Share of each verdict with its 95% Wilson interval'}</figcaption></figure>` : ''}
<div class="wide"><table><thead>${head}</thead><tbody>${body}</tbody></table></div>
<p class="note">${ja ? '各期間の分母はその期間に診断されたドメイン数です。下段は前期間からのポイント差で、[ ]はNewcombeの95%信頼区間、* は0と区別できる差です。すべての系列（OK／NG／測定不能／対象外）は trend.csv と report.json にあります。' : 'The denominator of each period is the domains diagnosed in it. Below each share: the change from the period before, in points, with Newcombe\'s 95% interval in [ ]; * marks a change distinguishable from zero. Every series (ok / ng / unknown / N/A) is in trend.csv and report.json.'}</p></section>`;
}

function changesSection(r: Report, lang: Lang): string {
  const c = r.changes!;
  const ja = lang === 'ja';
  const matrix = `<table><thead><tr><th>${esc(c.from.label)} ＼ ${esc(c.to.label)}</th>${VERDICTS.map((v) => `<th>${verdictLabel(v, lang)}</th>`).join('')}</tr></thead><tbody>${VERDICTS.map(
    (v) => `<tr><td><span class="swatch" style="background:${VERDICT_COLORS[v]}"></span>${verdictLabel(v, lang)}</td>${VERDICTS.map((w) => `<td>${v === w ? `<b>${c.transitions[v][w]}</b>` : c.transitions[v][w]}</td>`).join('')}</tr>`,
  ).join('')}</tbody></table>`;
  const p = (x: number | null) => (x === null ? '—' : x < 0.001 ? '&lt;0.001' : x.toFixed(3));
  const crit = `<table><thead><tr><th>${ja ? '項目' : 'Check'}</th><th>${ja ? '改善（NG→OK）' : 'Fixed (NG→OK)'}</th><th>${ja ? '悪化（OK→NG）' : 'Broken (OK→NG)'}</th><th>${ja ? '変化なし' : 'Unchanged'}</th><th>${ja ? 'その他' : 'Other'}</th><th>McNemar p</th></tr></thead><tbody>${CRITERIA.map(
    (cr) => `<tr><td>${esc(CRITERION_LABELS[cr][lang])}</td><td>${c.criteria[cr].fixed}</td><td>${c.criteria[cr].broken}</td><td>${c.criteria[cr].unchanged}</td><td>${c.criteria[cr].other}</td><td>${p(c.criteria[cr].mcnemar.p)}${c.criteria[cr].mcnemar.significant ? ' *' : ''}</td></tr>`,
  ).join('')}</tbody></table>`;
  const list = (dir: 'improved' | 'regressed') => {
    const rows = c.domains.filter((d) => d.direction === dir);
    if (rows.length === 0) return `<p class="note">${ja ? 'なし' : 'None'}</p>`;
    const shown = rows.slice(0, 50);
    const name = (l: string[]) => l.map((x) => esc(CRITERION_LABELS[x as keyof typeof CRITERION_LABELS][lang])).join('、');
    return `<table><thead><tr><th>${ja ? 'ドメイン' : 'Domain'}</th><th>${esc(c.from.label)}</th><th>${esc(c.to.label)}</th><th>${ja ? '改善した項目' : 'Fixed'}</th><th>${ja ? '悪化した項目' : 'Broken'}</th></tr></thead><tbody>${shown
      .map((d) => `<tr><td>${esc(d.domain)}</td><td>${verdictLabel(d.from, lang)}</td><td>${verdictLabel(d.to, lang)}</td><td>${name(d.fixed)}</td><td>${name(d.broken)}</td></tr>`)
      .join('')}</tbody></table>${rows.length > shown.length ? `<p class="note">${ja ? `ほか${rows.length - shown.length}件は changes.csv にあります。` : `${rows.length - shown.length} more in changes.csv.`}</p>` : ''}`;
  };
  const rules = c.rules
    ? `<h3>${ja ? '変化の内訳：判定基準の変更とドメインの変化' : 'What changed: the rules or the domains'}</h3>
<p class="note">${ja ? `${esc(c.from.label)}の診断のうち${c.rules.rejudged}件は判定基準バージョン${c.rules.earlier_rules_versions.join('・')}で判定されていました。保存済みの観測結果を現行の基準（バージョン${c.rules.current_rules_version}）でメモリ上で再判定し（保存はしません）、変化を分けています。` : `${c.rules.rejudged} diagnoses of ${esc(c.from.label)} were judged under rules version ${c.rules.earlier_rules_versions.join(', ')}; their stored observations were re-judged in memory with the current rules (version ${c.rules.current_rules_version}; nothing written) to split each change.`}</p>
<table><thead><tr><th>${ja ? '判定' : 'Verdict'}</th><th>${ja ? '変化（pt）' : 'Change (pt)'}</th><th>${ja ? 'うち基準の変更' : 'of which rules'}</th><th>${ja ? 'うちドメインの変化' : 'of which domains'}</th></tr></thead><tbody>${VERDICTS.map(
        (v) => `<tr><td>${verdictLabel(v, lang)}</td><td>${c.rules!.verdicts[v].total_points ?? '—'}</td><td>${c.rules!.verdicts[v].rules_points ?? '—'}</td><td>${c.rules!.verdicts[v].domains_points ?? '—'}</td></tr>`,
      ).join('')}</tbody></table>`
    : '';
  return `<section><h2>${ja ? `ドメインごとの変化（${esc(c.from.label)} → ${esc(c.to.label)}）` : `Domain by domain (${esc(c.from.label)} → ${esc(c.to.label)})`}</h2>
<p class="note">${ja ? `両方の期間で診断された${c.paired}ドメインを比べています（前期間のみ${c.only_before}、今期間のみ${c.only_after}）。改善${c.improved}、悪化${c.regressed}、変化なし${c.unchanged}、判定不能を含む${c.unclear}。改善と悪化の差のMcNemar検定: p = ${p(c.verdict_test.p)}。` : `The ${c.paired} domains diagnosed in both periods are compared (${c.only_before} only before, ${c.only_after} only after): ${c.improved} improved, ${c.regressed} regressed, ${c.unchanged} unchanged, ${c.unclear} involving an incomplete verdict. McNemar's test of improved against regressed: p = ${p(c.verdict_test.p)}.`}</p>
<h3>${ja ? '判定の遷移' : 'Verdict transitions'}</h3>${matrix}
<h3>${ja ? '項目ごとの改善・悪化' : 'Fixed and broken per check'}</h3>${crit}
<p class="note">${ja ? 'McNemar検定（正確検定）は改善と悪化の件数の差を検定します。* は p &lt; 0.05。' : 'McNemar\'s exact test compares the fixed and the broken counts; * marks p &lt; 0.05.'}</p>
<h3>${ja ? '改善したドメイン' : 'Improved domains'}</h3>${list('improved')}
<h3>${ja ? '悪化したドメイン' : 'Regressed domains'}</h3>${list('regressed')}
${rules}</section>`;
}

/** The schema-2 sections, in order; the empty string when none was asked for. */
export function breakdownSections(r: Report, lang: Lang, charts: BreakdownCharts | null): string {
  return [r.cohorts ? cohortsSection(r, lang, charts?.cohorts ?? null) : '', r.trend ? trendSection(r, lang, charts?.trend ?? null) : '', r.changes ? changesSection(r, lang) : ''].join('\n');
}
