// CSV output: UTF-8 with a byte-order mark and CRLF line ends (RFC 4180), so Excel opens Japanese text
// correctly on double-click. Aggregate tables come from the report object; the per-domain table from the
// same report set the figures were computed from.
import type { Figure, Figures, Report } from './aggregate.ts';
import { CRITERIA } from '../lib/criteria.ts';
import { breakdownCsvs } from './csv-breakdowns.ts';
import { CRITERION_LABELS, SPF_DKIM_LABELS, STATUS_LABELS, VERDICT_ORDER, verdictLabel, findingLabel, findingValueLabel, type Lang } from './labels.ts';

import { csvFile as toCsv } from '../lib/csv-cell.ts';
import { REPORTED_FINDINGS } from '../lib/checks/registry.ts';


const FIGURE_COLUMNS = ['n', 'total', 'pct', 'wilson_low', 'wilson_high', 'previous_n', 'previous_pct', 'delta_points', 'bounds_low', 'bounds_high'];
const figureCells = (f: Figure) => [f.n, f.total, f.pct, f.wilson?.low ?? null, f.wilson?.high ?? null, f.previous_n ?? null, f.previous_pct ?? null, f.delta, f.bounds?.low ?? null, f.bounds?.high ?? null];

/** The aggregate tables, one CSV each: file name → contents. */
export function aggregateCsvs(r: Report, lang: Lang): Record<string, string> {
  const f: Figures = r;
  return {
    'verdicts.csv': toCsv(['verdict', 'label', ...FIGURE_COLUMNS], VERDICT_ORDER.map((v) => [v, verdictLabel(v, lang), ...figureCells(f.verdicts[v])])),
    // Over mail domains only (all but the non_mail ones): `total` is that denominator.
    // (absent from a report.json written before it existed).
    ...(f.verdicts_mail_domains
      ? { 'verdicts_mail_domains.csv': toCsv(['verdict', 'label', ...FIGURE_COLUMNS], VERDICT_ORDER.map((v) => [v, verdictLabel(v, lang), ...figureCells(f.verdicts_mail_domains.verdicts[v])])) }
      : {}),
    'criteria.csv': toCsv(
      ['criterion', 'label', 'status', 'status_label', ...FIGURE_COLUMNS],
      CRITERIA.flatMap((c) =>
        (['ok', 'ng', 'unknown', 'na'] as const).map((s) => [c, CRITERION_LABELS[c][lang], s, STATUS_LABELS[s][lang], ...figureCells(f.criteria[c][s])]),
      ),
    ),
    'spf_dkim.csv': toCsv(
      ['combination', 'label', ...FIGURE_COLUMNS],
      (Object.keys(f.spf_dkim) as (keyof Figures['spf_dkim'])[]).map((k) => [k, SPF_DKIM_LABELS[k][lang], ...figureCells(f.spf_dkim[k])]),
    ),
    'findings.csv': toCsv(
      ['finding', 'label', 'value', 'value_label', ...FIGURE_COLUMNS],
      [
        ['tls_send_or_receive_ng', lang === 'ja' ? 'SSL/TLS送信または受信NG' : 'TLS send or receive NG', 'yes', '', ...figureCells(f.tls_send_or_receive_ng)],
        ...Object.keys(f.findings).flatMap((k) =>
          Object.entries(f.findings[k]).map(([v, fig]) => [k, findingLabel(k, lang), v, findingValueLabel(k, v, lang), ...figureCells(fig)]),
        ),
      ],
    ),
    ...breakdownCsvs(r, lang),
  };
}

/** The per-domain CSV: the counted diagnosis of each domain, every criterion with its reason code. */
export function domainsCsv(rows: Record<string, unknown>[]): string {
  const header = [
    'domain', 'organization', 'industry', 'source', 'survey', 'observed_at', 'verdict',
    ...CRITERIA.flatMap((c) => [c, `${c}_reason`]),
    'spf_dkim', ...REPORTED_FINDINGS.map((f) => f.id), 'diagnosis_id',
  ];
  return toCsv(header, rows.map((r) => header.map((h) => r[h])));
}
