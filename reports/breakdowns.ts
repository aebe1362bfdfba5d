// What a survey reader asks beyond one period's shares (issue 16): the shares per cohort (industry, tag,
// organisation) against the rest, the series over several periods with year-on-year differences, the change
// domain by domain between two periods (transitions, fixed / broken criteria, McNemar), how much of a change
// is the rules' rather than the domains', and every share's range if its unknowns resolved best or worst.
// Everything is computed from rows grouped in SQL by the columns the verdict reads (the statuses of every
// criterion, the source, the stored verdict), then counted here; test/report-breakdowns.test.ts recomputes
// each figure with independent SQL.
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../lib/db.ts';
import { CRITERIA, STATUSES, finding, type Criterion, type CriterionFindings, type Source, type Status } from '../lib/criteria.ts';
import { judgeVerdict, LEVELS, RULES_VERSION, VERDICTS, type Verdict } from '../lib/verdict.ts';
import { InputError } from '../lib/errors.ts';
import { mcnemar, newcombe, pct1, wilsonRaw, type Difference, type McNemar } from './stats.ts';

/** One grouped row: a combination of statuses (and source, stored verdict, rules version) and how many domains have it. */
export interface StatusGroup {
  source: Source;
  verdict: Verdict;
  rules_version: number;
  statuses: Record<Criterion, Status>;
  n: number;
}

const STATUS_COLUMNS = sql.join(CRITERIA.map((c) => sql`${sql.ref(`r.${c}`)}::text AS ${sql.id(c)}`));
const STATUS_GROUP_BY = sql.join(CRITERIA.map((c) => sql.ref(`r.${c}`)));

function toGroup(row: Record<string, unknown>): StatusGroup {
  const statuses = {} as Record<Criterion, Status>;
  for (const c of CRITERIA) statuses[c] = row[c] as Status;
  return { source: row.source as Source, verdict: row.verdict as Verdict, rules_version: Number(row.rules_version ?? RULES_VERSION), statuses, n: Number(row.n) };
}

/**
 * The status groups of a report set (a report_diagnoses(...) call, with its rules versions when `withRules`),
 * or of a report's tally (already grouped, `n` domains per row; `tally`), taken as judged by the current rules.
 */
export async function statusGroups(db: Db, set: RawBuilder<unknown>, options: { withRules?: boolean; tally?: boolean } = {}): Promise<StatusGroup[]> {
  const rules = options.withRules ? sql`r.rules_version` : sql`${RULES_VERSION}::int`;
  const n = options.tally ? sql`sum(r.n)::int` : sql`count(*)::int`;
  const { rows } = await sql<Record<string, unknown>>`
    SELECT r.source::text AS source, r.verdict::text AS verdict, ${rules} AS rules_version, ${STATUS_COLUMNS}, ${n} AS n
      FROM ${set} AS r GROUP BY r.source, r.verdict, 3, ${STATUS_GROUP_BY}`.execute(db);
  return rows.map(toGroup);
}

function findingsOf(statuses: Record<Criterion, Status>, replaceUnknown?: Status): CriterionFindings {
  const f = {} as CriterionFindings;
  for (const c of CRITERIA) {
    const s = statuses[c];
    f[c] = finding(s === 'unknown' && replaceUnknown ? replaceUnknown : s, 'report');
  }
  return f;
}

/** The verdict under the current rules, optionally with every unknown resolved to ok (best) or ng (worst). */
export function rejudge(g: { statuses: Record<Criterion, Status>; source: Source }, unknownAs?: 'ok' | 'ng'): Verdict {
  return judgeVerdict(findingsOf(g.statuses, unknownAs), g.source).verdict;
}

/** Counts of one population: its verdicts, every criterion's statuses, and the best/worst-case verdicts. */
export interface Counts {
  total: number;
  verdicts: Record<Verdict, number>;
  criteria: Record<Criterion, Record<Status, number>>;
  /** Verdicts if every unknown were ok / were ng. */
  best: Record<Verdict, number>;
  worst: Record<Verdict, number>;
  /** Verdicts re-judged with the current rules (differs from `verdicts` only for older rules versions). */
  rejudged: Record<Verdict, number>;
  /** How many counted diagnoses were judged under another rules version than the current one. */
  other_rules: number;
}

const zeroVerdicts = () => Object.fromEntries(VERDICTS.map((v) => [v, 0])) as Record<Verdict, number>;

export function countGroups(groups: StatusGroup[]): Counts {
  const criteria = {} as Counts['criteria'];
  for (const c of CRITERIA) criteria[c] = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<Status, number>;
  const out: Counts = { total: 0, verdicts: zeroVerdicts(), criteria, best: zeroVerdicts(), worst: zeroVerdicts(), rejudged: zeroVerdicts(), other_rules: 0 };
  for (const g of groups) {
    out.total += g.n;
    out.verdicts[g.verdict] += g.n;
    for (const c of CRITERIA) criteria[c][g.statuses[c]] += g.n;
    out.best[rejudge(g, 'ok')] += g.n;
    out.worst[rejudge(g, 'ng')] += g.n;
    const now = g.rules_version === RULES_VERSION ? g.verdict : rejudge(g);
    out.rejudged[now] += g.n;
    if (g.rules_version !== RULES_VERSION) out.other_rules += g.n;
  }
  return out;
}

/** The range of a share (percent, one decimal) over the best and the worst resolution of its unknowns. */
export interface Bounds {
  low: number;
  high: number;
}

function range(a: number, b: number, total: number): Bounds | null {
  if (total === 0) return null;
  return { low: pct1(Math.min(a, b) / total), high: pct1(Math.max(a, b) / total) };
}

/** Bounds of each verdict share: its count with every unknown ok, and with every unknown ng. */
export function verdictBounds(c: Counts, v: Verdict): Bounds | null {
  // Once every unknown is resolved nothing is incomplete: its range is 0 to 0.
  return range(c.best[v], c.worst[v], c.total);
}

/** Bounds of a criterion's status share: ok and ng may each gain every unknown; unknown resolves to none. */
export function statusBounds(c: Counts, criterion: Criterion, s: Status): Bounds | null {
  const k = c.criteria[criterion];
  if (s === 'ok' || s === 'ng') return range(k[s], k[s] + k.unknown, c.total);
  if (s === 'unknown') return range(0, 0, c.total);
  return range(k.na, k.na, c.total);
}

/* ---------------------------------------------------------------------------------------------------------
 * Cohorts
 * ------------------------------------------------------------------------------------------------------- */

export const COHORT_KEYS = ['industry', 'tag', 'organization'] as const;
export type CohortKey = (typeof COHORT_KEYS)[number];

export function parseCohortKey(raw: string): CohortKey {
  const k = raw.trim().toLowerCase();
  const alias: Record<string, CohortKey> = { industry: 'industry', tag: 'tag', tags: 'tag', organization: 'organization', organisation: 'organization' };
  if (!alias[k]) throw new InputError(`--by: unknown column "${raw}" (use industry, tag or organization, the columns ingest reads)`);
  return alias[k]!;
}

/** A cohort's share: `n`/`pct`/`wilson` are null when suppressed (n below the minimum cell size). */
export interface CohortFigure {
  n: number | null;
  total: number | null;
  pct: number | null;
  wilson: { low: number; high: number } | null;
  bounds: Bounds | null;
  suppressed: boolean;
  /** What every output prints: the count, or "<10" when suppressed. */
  display: string;
  /** This cohort minus the rest of the report set, with Newcombe's interval; null when suppressed. */
  vs_rest: Difference | null;
}

export interface Cohort {
  key: string;
  /** Domains in the cohort, or null when the cohort itself is smaller than the minimum. */
  domains: number | null;
  domains_display: string;
  suppressed: boolean;
  verdicts: Record<Verdict, CohortFigure>;
  criteria: Record<Criterion, Record<Status, CohortFigure>>;
}

export interface Cohorts {
  by: CohortKey;
  min_cell: number;
  note: string;
  groups: Cohort[];
}

function cohortFigure(n: number, total: number, restN: number, restTotal: number, min: number, bounds: Bounds | null, cohortSuppressed: boolean): CohortFigure {
  if (cohortSuppressed || n < min) {
    return { n: null, total: cohortSuppressed ? null : total, pct: null, wilson: null, bounds: null, suppressed: true, display: `<${min}`, vs_rest: null };
  }
  const w = wilsonRaw(n, total);
  return {
    n,
    total,
    pct: total === 0 ? null : Math.round((100 * n) / total),
    wilson: w ? { low: pct1(w.low), high: pct1(w.high) } : null,
    bounds,
    suppressed: false,
    display: String(n),
    vs_rest: restTotal > 0 ? newcombe(n, total, restN, restTotal) : null,
  };
}

/** The SQL array of cohort keys of a domain: '' when the ingest gave none. */
function cohortKeysSql(by: CohortKey): RawBuilder<unknown> {
  if (by === 'tag') return sql`CASE WHEN cardinality(coalesce(sd.tags, '{}'::text[])) = 0 THEN ARRAY['']::text[] ELSE sd.tags END`;
  return sql`ARRAY[coalesce(nullif(btrim(${sql.ref(`sd.${by}`)}), ''), '')]`;
}

/**
 * The figures of every cohort of a survey report. A domain belongs to the cohort(s) its survey list gives
 * it (a domain with two tags is in both); "the rest" of a cohort is every other counted domain.
 */
export async function computeCohorts(db: Db, set: RawBuilder<unknown>, overall: Counts, by: CohortKey, minCell: number): Promise<Cohorts> {
  const { rows } = await sql<Record<string, unknown>>`
    SELECT k AS cohort, r.source::text AS source, r.verdict::text AS verdict, ${STATUS_COLUMNS}, count(*)::int AS n
      FROM ${set} AS r
      LEFT JOIN survey_domains sd ON sd.survey_id = r.survey_id AND sd.domain = r.domain
      CROSS JOIN LATERAL unnest(${cohortKeysSql(by)}) AS k
     GROUP BY 1, r.source, r.verdict, ${STATUS_GROUP_BY}`.execute(db);
  const byKey = new Map<string, StatusGroup[]>();
  for (const row of rows) {
    const key = String(row.cohort);
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key)!.push(toGroup(row));
  }
  const groups: Cohort[] = [];
  for (const [key, list] of [...byKey.entries()].sort(([a], [b]) => (a === '' ? 1 : b === '' ? -1 : a.localeCompare(b, 'ja')))) {
    const c = countGroups(list);
    const small = c.total < minCell;
    const restTotal = overall.total - c.total;
    const verdicts = {} as Cohort['verdicts'];
    for (const v of VERDICTS) verdicts[v] = cohortFigure(c.verdicts[v], c.total, overall.verdicts[v] - c.verdicts[v], restTotal, minCell, verdictBounds(c, v), small);
    const criteria = {} as Cohort['criteria'];
    for (const cr of CRITERIA) {
      criteria[cr] = {} as Record<Status, CohortFigure>;
      for (const s of STATUSES) {
        criteria[cr][s] = cohortFigure(c.criteria[cr][s], c.total, overall.criteria[cr][s] - c.criteria[cr][s], restTotal, minCell, statusBounds(c, cr, s), small);
      }
    }
    groups.push({ key, domains: small ? null : c.total, domains_display: small ? `<${minCell}` : String(c.total), suppressed: small, verdicts, criteria });
  }
  return {
    by,
    min_cell: minCell,
    note: `cells counting fewer than ${minCell} domains are suppressed (shown as "<${minCell}"), and so is every cell of a cohort smaller than that; key "" is the domains the list gave no ${by}`,
    groups,
  };
}

/* ---------------------------------------------------------------------------------------------------------
 * Trends
 * ------------------------------------------------------------------------------------------------------- */

export interface TrendPoint {
  label: string;
  n: number;
  total: number;
  pct: number | null;
  wilson: { low: number; high: number } | null;
  bounds: Bounds | null;
  /** The change from the previous point (points, with Newcombe's interval); null for the first or an empty one. */
  change: Difference | null;
}

/** One share over the periods: of a verdict, or of one status of a criterion. */
export type TrendSeries =
  | { metric: 'verdict'; value: Verdict; points: TrendPoint[] }
  | { metric: Criterion; value: Status; points: TrendPoint[] };

export interface Trend {
  kind: 'year' | 'fiscal-year' | 'run';
  periods: { label: string; from: string; to: string; domains: number; rules_versions_other: number }[];
  series: TrendSeries[];
}

function point(label: string, n: number, total: number, bounds: Bounds | null, prev: { n: number; total: number } | null): TrendPoint {
  const w = wilsonRaw(n, total);
  return {
    label,
    n,
    total,
    pct: total === 0 ? null : Math.round((100 * n) / total),
    wilson: w ? { low: pct1(w.low), high: pct1(w.high) } : null,
    bounds,
    change: prev && prev.total > 0 && total > 0 ? newcombe(n, total, prev.n, prev.total) : null,
  };
}

/** The series of every verdict share and every criterion status share over the periods, in order. */
export function buildTrend(kind: Trend['kind'], periods: { label: string; from: string; to: string; counts: Counts }[]): Trend {
  const series: TrendSeries[] = [];
  const pointsOf = (get: (c: Counts) => number, bounds: (c: Counts) => Bounds | null): TrendPoint[] =>
    periods.map((p, i) => {
      const prev = i > 0 ? { n: get(periods[i - 1]!.counts), total: periods[i - 1]!.counts.total } : null;
      return point(p.label, get(p.counts), p.counts.total, bounds(p.counts), prev);
    });
  for (const v of VERDICTS) series.push({ metric: 'verdict', value: v, points: pointsOf((c) => c.verdicts[v], (c) => verdictBounds(c, v)) });
  for (const cr of CRITERIA) for (const s of STATUSES) series.push({ metric: cr, value: s, points: pointsOf((c) => c.criteria[cr][s], (c) => statusBounds(c, cr, s)) });
  return {
    kind,
    periods: periods.map((p) => ({ label: p.label, from: p.from, to: p.to, domains: p.counts.total, rules_versions_other: p.counts.other_rules })),
    series,
  };
}

/* ---------------------------------------------------------------------------------------------------------
 * Domain by domain
 * ------------------------------------------------------------------------------------------------------- */

const SEVERITY: Record<string, number> = { safe: 0, review: 1, needs_improvement: 2, danger: 3 };

export interface DomainChange {
  domain: string;
  from: Verdict;
  to: Verdict;
  direction: 'improved' | 'regressed' | 'unchanged' | 'unclear';
  fixed: Criterion[];
  broken: Criterion[];
}

export interface CriterionChange {
  /** NG → OK. */
  fixed: number;
  /** OK → NG. */
  broken: number;
  /** Same status in both periods. */
  unchanged: number;
  /** Any other move (to or from unknown or N/A). */
  other: number;
  mcnemar: McNemar;
}

export interface Changes {
  from: { label: string; from: string; to: string; domains: number };
  to: { label: string; from: string; to: string; domains: number };
  /** Domains counted in both periods (the paired domains). */
  paired: number;
  only_before: number;
  only_after: number;
  /** transitions[before][after] = domains. */
  transitions: Record<Verdict, Record<Verdict, number>>;
  improved: number;
  regressed: number;
  unchanged: number;
  unclear: number;
  /** McNemar (sign) test on improved vs regressed paired domains. */
  verdict_test: McNemar;
  criteria: Record<Criterion, CriterionChange>;
  /** When the earlier period was judged under other rules: each verdict share's change split into rules and domains. */
  rules: RulesSplit | null;
  /** Improved and regressed domains (the full list is changes.csv). */
  domains: DomainChange[];
}

export interface RulesSplit {
  current_rules_version: number;
  earlier_rules_versions: number[];
  /** Earlier diagnoses judged under another version. */
  rejudged: number;
  verdicts: Record<Verdict, { total_points: number | null; rules_points: number | null; domains_points: number | null }>;
}

/** The per-domain pairs of two report sets: each domain's counted diagnosis in both. */
export async function pairedRows(db: Db, before: RawBuilder<unknown>, after: RawBuilder<unknown>): Promise<Record<string, unknown>[]> {
  const cols = (alias: string, suffix: string) =>
    sql.join([sql`${sql.ref(`${alias}.verdict`)}::text AS ${sql.id(`verdict${suffix}`)}`, ...CRITERIA.map((c) => sql`${sql.ref(`${alias}.${c}`)}::text AS ${sql.id(`${c}${suffix}`)}`)]);
  const { rows } = await sql<Record<string, unknown>>`
    SELECT a.domain, ${cols('b', '_before')}, ${cols('a', '_after')}
      FROM ${after} AS a JOIN ${before} AS b ON b.domain = a.domain
     ORDER BY a.domain`.execute(db);
  return rows;
}

export function buildChanges(
  pairs: Record<string, unknown>[],
  before: { label: string; from: string; to: string; counts: Counts; versions: number[] },
  after: { label: string; from: string; to: string; counts: Counts },
): Changes {
  const transitions = {} as Changes['transitions'];
  for (const v of VERDICTS) transitions[v] = zeroVerdicts();
  const criteria = {} as Record<Criterion, CriterionChange>;
  for (const c of CRITERIA) criteria[c] = { fixed: 0, broken: 0, unchanged: 0, other: 0, mcnemar: mcnemar(0, 0) };
  const domains: DomainChange[] = [];
  let improved = 0;
  let regressed = 0;
  let unchanged = 0;
  let unclear = 0;
  for (const p of pairs) {
    const from = p.verdict_before as Verdict;
    const to = p.verdict_after as Verdict;
    transitions[from][to]++;
    const fixed: Criterion[] = [];
    const broken: Criterion[] = [];
    for (const c of CRITERIA) {
      const b = p[`${c}_before`];
      const a = p[`${c}_after`];
      const k = criteria[c];
      if (b === a) k.unchanged++;
      else if (b === 'ng' && a === 'ok') (k.fixed++, fixed.push(c));
      else if (b === 'ok' && a === 'ng') (k.broken++, broken.push(c));
      else k.other++;
    }
    let direction: DomainChange['direction'];
    if (from === to) direction = 'unchanged';
    else if (from === 'incomplete' || to === 'incomplete') direction = 'unclear';
    else direction = SEVERITY[to]! < SEVERITY[from]! ? 'improved' : 'regressed';
    if (direction === 'improved') improved++;
    else if (direction === 'regressed') regressed++;
    else if (direction === 'unchanged') unchanged++;
    else unclear++;
    if (direction !== 'unchanged' || fixed.length > 0 || broken.length > 0) domains.push({ domain: String(p.domain), from, to, direction, fixed, broken });
  }
  for (const c of CRITERIA) criteria[c].mcnemar = mcnemar(criteria[c].fixed, criteria[c].broken);
  const b = before.counts;
  const a = after.counts;
  const otherVersions = before.versions.filter((v) => v !== RULES_VERSION);
  let rules: RulesSplit | null = null;
  if (otherVersions.length > 0) {
    const share = (n: number, t: number) => (t === 0 ? null : (100 * n) / t);
    const diff = (x: number | null, y: number | null) => (x === null || y === null ? null : Math.round((x - y) * 10) / 10);
    const verdicts = {} as RulesSplit['verdicts'];
    for (const v of VERDICTS) {
      const stored = share(b.verdicts[v], b.total);
      const rejudged = share(b.rejudged[v], b.total);
      const now = share(a.verdicts[v], a.total);
      verdicts[v] = { total_points: diff(now, stored), rules_points: diff(rejudged, stored), domains_points: diff(now, rejudged) };
    }
    rules = { current_rules_version: RULES_VERSION, earlier_rules_versions: before.versions, rejudged: b.other_rules, verdicts };
  }
  return {
    from: { label: before.label, from: before.from, to: before.to, domains: b.total },
    to: { label: after.label, from: after.from, to: after.to, domains: a.total },
    paired: pairs.length,
    only_before: b.total - pairs.length,
    only_after: a.total - pairs.length,
    transitions,
    improved,
    regressed,
    unchanged,
    unclear,
    verdict_test: mcnemar(improved, regressed),
    criteria,
    rules,
    domains,
  };
}

/**
 * The set of a survey run: each domain once, its latest diagnosis of that run (a retried domain has one).
 * The run must exist and, for a survey report, belong to that survey.
 */
export async function runSetCall(db: Db, run: number, survey: string | null): Promise<RawBuilder<unknown>> {
  const { rows } = await sql<{ survey: string }>`SELECT s.name AS survey FROM runs r JOIN surveys s ON s.id = r.survey_id WHERE r.id = ${run}`.execute(db);
  if (rows.length === 0) throw new InputError(`run:${run}: there is no run ${run} (see \`mailcensus status\`)`);
  if (survey !== null && rows[0]!.survey !== survey) throw new InputError(`run:${run} belongs to survey "${rows[0]!.survey}", not "${survey}"`);
  return sql`(SELECT DISTINCT ON (d.domain) d.* FROM diagnosis_results d WHERE d.run_id = ${run}::int ORDER BY d.domain, d.observed_at DESC, d.id DESC)`;
}

/** The first and last day (UTC) a run's diagnoses were observed on, for labels. */
export async function runBounds(db: Db, run: number): Promise<{ from: string; to: string }> {
  const { rows } = await sql<{ f: string | null; t: string | null }>`
    SELECT to_char(min(observed_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS f, to_char(max(observed_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS t FROM diagnoses WHERE run_id = ${run}::int`.execute(db);
  return { from: rows[0]?.f ?? '', to: rows[0]?.t ?? '' };
}

/** Rules versions among the diagnoses of a set. */
export async function rulesVersions(db: Db, set: RawBuilder<unknown>): Promise<number[]> {
  const { rows } = await sql<{ v: number }>`SELECT DISTINCT r.rules_version AS v FROM ${set} AS r ORDER BY 1`.execute(db);
  return rows.map((r) => Number(r.v));
}

export { LEVELS };
