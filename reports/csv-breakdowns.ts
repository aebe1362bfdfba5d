// The CSVs of the schema-2 sections (cohorts, trend, domain-by-domain changes), written like the others
// (csv.ts: UTF-8 with BOM, CRLF). Suppressed cohort cells carry "<10" in `n` and nothing in the figures.
import type { Report } from './aggregate.ts';
import { CRITERIA, STATUSES } from '../lib/criteria.ts';
import { VERDICTS } from '../lib/verdict.ts';
import { CRITERION_LABELS, STATUS_LABELS, verdictLabel, type Lang } from './labels.ts';
import { csvFile as toCsv } from '../lib/csv-cell.ts';
import type { CohortFigure } from './breakdowns.ts';
import type { Difference } from './stats.ts';

const diffCells = (d: Difference | null | undefined) => [d?.points ?? null, d?.low ?? null, d?.high ?? null, d ? (d.distinguishable ? 'yes' : 'no') : null];
const cohortCells = (f: CohortFigure) => [f.display, f.total, f.pct, f.wilson?.low ?? null, f.wilson?.high ?? null, f.bounds?.low ?? null, f.bounds?.high ?? null, ...diffCells(f.vs_rest)];

export function breakdownCsvs(r: Report, lang: Lang): Record<string, string> {
  const out: Record<string, string> = {};
  if (r.cohorts) {
    const head = [r.cohorts.by, 'cohort_domains', 'metric', 'value', 'label', 'n', 'total', 'pct', 'wilson_low', 'wilson_high', 'bounds_low', 'bounds_high', 'vs_rest_points', 'vs_rest_low', 'vs_rest_high', 'vs_rest_distinguishable'];
    const rows: unknown[][] = [];
    for (const g of r.cohorts.groups) {
      for (const v of VERDICTS) rows.push([g.key, g.domains_display, 'verdict', v, verdictLabel(v, lang), ...cohortCells(g.verdicts[v])]);
      for (const c of CRITERIA) for (const s of STATUSES) rows.push([g.key, g.domains_display, c, s, `${CRITERION_LABELS[c][lang]} ${STATUS_LABELS[s][lang]}`, ...cohortCells(g.criteria[c][s])]);
    }
    out['cohorts.csv'] = toCsv(head, rows);
  }
  if (r.trend) {
    const head = ['metric', 'value', 'period', 'n', 'total', 'pct', 'wilson_low', 'wilson_high', 'bounds_low', 'bounds_high', 'change_points', 'change_low', 'change_high', 'change_distinguishable'];
    const rows: unknown[][] = [];
    for (const s of r.trend.series) {
      for (const p of s.points) rows.push([s.metric, s.value, p.label, p.n, p.total, p.pct, p.wilson?.low ?? null, p.wilson?.high ?? null, p.bounds?.low ?? null, p.bounds?.high ?? null, ...diffCells(p.change)]);
    }
    out['trend.csv'] = toCsv(head, rows);
  }
  if (r.changes) {
    const ch = r.changes;
    out['transitions.csv'] = toCsv(['before', ...VERDICTS.map((v) => `after_${v}`)], VERDICTS.map((v) => [v, ...VERDICTS.map((w) => ch.transitions[v][w])]));
    out['criteria_changes.csv'] = toCsv(
      ['criterion', 'label', 'fixed', 'broken', 'unchanged', 'other', 'mcnemar_p', 'significant'],
      CRITERIA.map((c) => [c, CRITERION_LABELS[c][lang], ch.criteria[c].fixed, ch.criteria[c].broken, ch.criteria[c].unchanged, ch.criteria[c].other, ch.criteria[c].mcnemar.p, ch.criteria[c].mcnemar.significant ? 'yes' : 'no']),
    );
    out['changes.csv'] = toCsv(
      ['domain', 'direction', 'verdict_before', 'verdict_after', 'fixed', 'broken'],
      ch.domains.map((d) => [d.domain, d.direction, d.from, d.to, d.fixed.join(' '), d.broken.join(' ')]),
    );
  }
  return out;
}
