// Builds the report object (report.json) from the metric queries of queries.ts. Everything a chart, the HTML,
// the summary or an aggregate CSV shows comes from this object: they never query again. The per-domain CSV
// reads the snapshot the figures were computed from, inside the same transaction (BuildOptions.onSnapshot).
import { sql } from 'kysely';
import type { Db } from '../lib/db.ts';
import { CRITERIA, type Criterion, type Label, type Source, type Status } from '../lib/criteria.ts';
import type { Verdict } from '../lib/verdict.ts';
import { InputError } from '../lib/errors.ts';
import * as q from './queries.ts';
import { REPORTED_FINDINGS } from '../lib/checks/registry.ts';
import * as b from './breakdowns.ts';
import { newcombe, pct1, wilsonRaw, type Difference } from './stats.ts';
import { endExclusive, isRun, previousPeriod, periodLabel, shortLabel, type Period, type Span } from './period.ts';

export const SCHEMA_VERSION = 2;

/** A figure: n of total, the rounded percentage as printed, the Wilson 95% interval, the change from the previous period. */
export interface Figure {
  n: number;
  total: number;
  /** Rounded half-up to an integer (the release's style); null when total = 0. */
  pct: number | null;
  /** Wilson score interval, 95%, in percent with one decimal; null when total = 0. */
  wilson: { low: number; high: number } | null;
  /** pct minus the previous period's pct, in points (difference of the printed values); null if not comparable. */
  delta: number | null;
  /** The share's range (percent, one decimal) if every unknown resolved to the best / the worst case (verdicts and criteria). */
  bounds?: b.Bounds | null;
  /** n of the previous period, or null. */
  previous_n?: number | null;
  previous_pct?: number | null;
  /** The change from the previous period unrounded, in points, with Newcombe's 95% interval and whether it excludes 0 (schema 2). */
  change?: Difference | null;
}

export type FigureMap<K extends string> = Record<K, Figure>;

export interface Figures {
  period: PeriodOut;
  domains: number;
  diagnoses: number;
  verdicts: FigureMap<Verdict>;
  /** The verdicts over mail domains: all domains but the non-mail ones (`domains` is the denominator). */
  verdicts_mail_domains: { domains: number; verdicts: FigureMap<Verdict> };
  criteria: Record<Criterion, FigureMap<Status>>;
  spf_dkim: FigureMap<q.SpfDkim>;
  tls_send_or_receive_ng: Figure;
  /** Every reported finding of the check registry, by id (dmarc_policy, mta_sts, …). */
  findings: Record<string, FigureMap<string>>;
  coverage: {
    sources: FigureMap<Source>;
    domains_with_both_sources: number;
    incomplete: { n: number; reasons: q.IncompleteReason[] };
    unknown_reasons: q.UnknownReason[];
    runs: q.RunUsed[];
    /** Test-mail domains counted per provenance (`none`: diagnosed before provenance was recorded). */
    provenance?: Record<'requested' | 'authenticated' | 'unverified' | 'none', number>;
    /** For a survey report: how many of the survey's listed domains were diagnosed in the period. */
    survey_domains: Figure | null;
  };
}

export interface PeriodOut {
  kind: Period['kind'];
  from: string;
  to: string;
  timezone: string;
  label: Label;
}

export interface Report extends Figures {
  schema_version: number;
  generated_at: string;
  source: { kind: 'survey' | Source; survey: string | null; source: Source | null };
  denominator: string;
  rounding: string;
  previous: Figures | null;
  /** `--by`: every share per cohort, small cells suppressed (schema 2). */
  cohorts: b.Cohorts | null;
  /** `--trend`: every share over the periods with year-on-year differences (schema 2). */
  trend: b.Trend | null;
  /** `--changes-from`: domain by domain between that period and this one (schema 2). */
  changes: b.Changes | null;
  summary?: { ja: string[]; en: string[] };
}

/** The Wilson score interval (Wilson 1927, z = 1.96 for 95%) in percent with one decimal, as reports print it. */
export function wilson(n: number, total: number): { low: number; high: number } | null {
  const w = wilsonRaw(n, total);
  return w ? { low: pct1(w.low), high: pct1(w.high) } : null;
}

function figure(s: q.Share): Figure {
  return { n: s.n, total: s.total, pct: s.pct, wilson: wilson(s.n, s.total), delta: null };
}
function figures<K extends string>(m: Record<K, q.Share>): FigureMap<K> {
  const out = {} as FigureMap<K>;
  for (const k of Object.keys(m) as K[]) out[k] = figure(m[k]);
  return out;
}

export interface ReportRequest {
  period: Period;
  /** IANA time zone the period's dates are in. @defaultValue Asia/Tokyo */
  timezone?: string;
  source: Source | null;
  survey: string | null;
  /** Only test-mail diagnoses of these provenance classes (`--provenance`). @defaultValue all */
  provenance?: string[] | null;
  /** Break every share down by this survey-list column. */
  by?: b.CohortKey | null;
  /** Minimum cell size of a cohort table. @defaultValue 10 */
  minCell?: number;
  /** The periods of a trend, oldest first (the report's own period among them, usually last). */
  trend?: { kind: 'year' | 'fiscal-year' | 'run'; periods: Span[] } | null;
  /** The earlier period (or run) domain-by-domain changes are measured from. */
  changesFrom?: Span | null;
  /** The later side of the changes, when not the report's own period: another period or run. */
  changesTo?: Span | null;
}

function scopeOf(period: Period, r: ReportRequest): q.Scope {
  return { from: period.from, toExclusive: endExclusive(period), timezone: r.timezone ?? 'Asia/Tokyo', source: r.source, survey: r.survey, provenance: r.provenance ?? null };
}

/** What a period's figures read from its diagnoses themselves rather than from its snapshot or tally. */
interface PeriodCounts {
  diagnoses: number;
  /** Only for the current period of a report of both sources (0 otherwise: not shown, or one source). */
  bothSources: number;
}

async function periodCounts(trx: Db, scope: q.Scope, withBothSources: boolean): Promise<PeriodCounts> {
  return {
    diagnoses: await q.diagnosesInPeriod(trx, scope),
    // With a source filter every domain has one source: no query needed.
    bothSources: withBothSources && scope.source === null ? await q.domainsWithBothSources(trx, scope) : 0,
  };
}

/**
 * Computes every figure of one period inside `trx` from the period's tally and `counts`; `set`, the period's
 * snapshot, is given for the current period only, whose coverage (incomplete reasons, runs, survey list) is shown.
 */
async function computeFigures(trx: Db, period: Period, req: ReportRequest, tally: q.Tally, set: q.SetRef | null, counts: PeriodCounts): Promise<Figures> {
  const scope = scopeOf(period, req);
  const total = await q.domainsCounted(trx, tally);
  const criteria = {} as Record<Criterion, FigureMap<Status>>;
  for (const c of CRITERIA) criteria[c] = figures(await q.criterionStatusShares(trx, tally, c, total));
  const verdicts = figures(await q.verdictShares(trx, tally, total));
  const mail = await q.verdictSharesMailDomains(trx, tally);
  return {
    period: {
      kind: period.kind,
      from: period.from,
      to: period.to,
      timezone: scope.timezone,
      label: { ja: periodLabel(period, 'ja'), en: periodLabel(period, 'en') },
    },
    domains: total,
    diagnoses: counts.diagnoses,
    verdicts,
    verdicts_mail_domains: { domains: mail.domains, verdicts: figures(mail.verdicts) },
    criteria,
    spf_dkim: figures(await q.spfDkimShares(trx, tally, total)),
    tls_send_or_receive_ng: figure(await q.tlsSendOrReceiveNgShare(trx, tally, total)),
    findings: await findingFigures(trx, tally, total, req.source),
    // The previous period's coverage is not shown, so it is not computed.
    coverage: {
      sources: figures(await q.sourceShares(trx, tally, total)),
      domains_with_both_sources: counts.bothSources,
      incomplete: { n: verdicts.incomplete.n, reasons: set ? await q.incompleteReasons(trx, set) : [] },
      unknown_reasons: set ? await q.unknownReasons(trx, tally, CRITERIA) : [],
      runs: set ? await q.runsUsed(trx, tally) : [],
      ...(set ? { provenance: await q.provenanceCounts(trx, set) } : {}),
      survey_domains: set && req.survey ? figure(await q.surveyDomainsDiagnosed(trx, set, req.survey)) : null,
    },
  };
}

/** Walks two figure trees in parallel and fills `delta`, `previous_n`, `previous_pct` of the current one. */
function attachDeltas(cur: unknown, prev: unknown): void {
  if (!cur || typeof cur !== 'object' || Array.isArray(cur)) return;
  const c = cur as Record<string, unknown>;
  if ('n' in c && 'total' in c && 'pct' in c && 'wilson' in c) {
    const p = prev as Figure | undefined;
    const f = cur as Figure; // the shape was checked on the line above
    f.previous_n = p ? p.n : 0;
    f.previous_pct = p ? p.pct : null;
    f.delta = f.pct !== null && p && p.pct !== null ? f.pct - p.pct : null;
    f.change = p ? newcombe(f.n, f.total, p.n, p.total) : null;
    return;
  }
  for (const k of Object.keys(c)) {
    if (k === 'coverage' || k === 'period') continue;
    attachDeltas(c[k], (prev as Record<string, unknown> | undefined)?.[k]);
  }
}

/** Settings of a report's transaction, on each of its connections. */
async function tune(trx: Db): Promise<void> {
  // The DISTINCT ON of a large period sorts hundreds of thousands of rows: give it room to do so in memory.
  await sql`SET LOCAL work_mem = '256MB'`.execute(trx);
  // JIT compiling costs tens of milliseconds per statement and gains nothing on a sort and a grouping.
  await sql`SET LOCAL jit = off`.execute(trx);
  // The report already computes on two connections at once (the previous period on the second); parallel
  // workers on top of them compete for the same cores, and a parallel hash join builds its table even for
  // an empty outer side (domainsWithBothSources of a survey report: 1.2 s in three processes instead of 0.4 s
  // in one; issue 18). PostgreSQL, "Parallel Query": max_parallel_workers_per_gather = 0 disables it.
  await sql`SET LOCAL max_parallel_workers_per_gather = 0`.execute(trx);
  // Room for the snapshot and the tallies in memory: 1,000,000 domains make a 280 MB snapshot, which 256 MB
  // of temp_buffers left partly on disk (each of its four scans 270 ms instead of 180 ms; issue 18). Local
  // buffers are taken as used, up to this bound.
  // temp_buffers can only change before a session's first temporary table (a pooled connection may have
  // had one): the exception block keeps that refusal from aborting the transaction.
  await sql`DO $$ BEGIN PERFORM set_config('temp_buffers', '512MB', true); EXCEPTION WHEN others THEN NULL; END $$`.execute(trx);
}

interface Helper<T> {
  /** True once the helper's transaction has imported the snapshot (the exporting one may then end). */
  readonly imported: boolean;
  readonly result: Promise<T>;
  /** Tells a helper that has not started yet not to. */
  abandon(): void;
}

/**
 * Runs `work` in a REPEATABLE READ transaction of its own connection that sees exactly the data of the
 * exporting transaction (SET TRANSACTION SNAPSHOT; that transaction must stay open until `imported`).
 */
function onSnapshotOf<T>(db: Db, snapshot: string, work: (trx: Db) => Promise<T>): Helper<T> {
  let imported = false;
  let abandoned = false;
  const result = db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      if (abandoned) throw new Error('report: the parallel helper was not needed');
      await sql`SET TRANSACTION SNAPSHOT ${sql.lit(snapshot)}`.execute(trx);
      imported = true;
      if (abandoned) throw new Error('report: the parallel helper was not needed');
      await tune(trx);
      return work(trx);
    });
  // Awaited by the exporting transaction when used; an abandoned helper's failure is nobody's concern.
  result.catch(() => {});
  return {
    get imported() {
      return imported;
    },
    result,
    abandon() {
      abandoned = true;
    },
  };
}

export interface BuildOptions {
  /**
   * Runs inside the report's transaction once the figures are computed, with the current period's snapshot
   * (one row per counted domain): the per-domain CSV reads it, so it lists exactly the diagnoses counted.
   */
  onSnapshot?: (trx: Db, set: q.SetRef) => Promise<void>;
}

/**
 * The report of a period: each domain once (its latest diagnosis in the period), every figure with its
 * denominator, and the previous period of the same length when it has data.
 */
/**
 * Every reported finding's shares, one query each, in registry order (the transaction's one connection). A
 * report of one source leaves out the findings that source never measures (non_mail for test mails): their
 * "0 of n" would read as a measurement.
 */
async function findingFigures(db: Db, tally: q.Tally, total: number, source: Source | null): Promise<Record<string, FigureMap<string>>> {
  const out: Record<string, FigureMap<string>> = {};
  for (const f of REPORTED_FINDINGS) if (source === null || f.sources.includes(source)) out[f.id] = figures(await q.findingShares(db, tally, f, total));
  return out;
}

export async function buildReport(db: Db, req: ReportRequest, options: BuildOptions = {}): Promise<Report> {
  const timezone = req.timezone ?? 'Asia/Tokyo';
  if (req.survey === null && req.source === null) throw new InputError('give --survey NAME or --source test-mail|scan');
  try {
    await sql`SELECT now() AT TIME ZONE ${timezone}`.execute(db);
  } catch {
    throw new InputError(`--timezone: unknown time zone "${timezone}" (use an IANA name such as Asia/Tokyo or UTC)`);
  }
  if (req.survey !== null && !(await q.surveyExists(db, req.survey))) {
    throw new InputError(`--survey: no survey named "${req.survey}" (see \`mailcensus survey list\`)`);
  }
  const request = { ...req, timezone };
  const previousOf = previousPeriod(req.period);
  /** The previous period only needs figures: its tally straight from report_diagnoses(), no snapshot. */
  const previousFigures = async (trx: Db) => {
    const scope = scopeOf(previousOf, request);
    const tally = await q.createTally(trx, 'report_tally_previous', q.reportSetColumns(scope), { coverage: false });
    return computeFigures(trx, previousOf, request, tally, null, await periodCounts(trx, scope, false));
  };
  const currentScope = scopeOf(req.period, request);
  // The current period's counts over its diagnoses read no snapshot: the helper computes them first, while
  // this connection writes the snapshot (the current period has more to do than the previous one).
  let settleCounts: { resolve: (c: PeriodCounts) => void; reject: (err: unknown) => void } | null = null;
  const helperCounts = new Promise<PeriodCounts>((resolve, reject) => {
    settleCounts = { resolve, reject };
  });
  helperCounts.catch(() => {}); // awaited below when used; a helper's failure is reported through its result
  const helperWork = async (trx: Db) => {
    settleCounts!.resolve(await periodCounts(trx, currentScope, true));
    return previousFigures(trx);
  };
  let helper: Helper<Figures> | null = null;
  // One REPEATABLE READ transaction: every query below sees the same committed data, so diagnoses stored
  // while the report runs change none of its numbers. It writes temporary tables only, yet cannot be READ
  // ONLY (Postgres refuses CREATE TABLE AS there).
  const [current, previous, extra] = await db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      await tune(trx);
      // The previous period is computed meanwhile on a second connection that imports this transaction's
      // snapshot (pg_export_snapshot, as pg_dump's parallel jobs do): the same data, the other core.
      const { rows } = await sql<{ id: string }>`SELECT pg_export_snapshot() AS id`.execute(trx);
      helper = onSnapshotOf(db, rows[0]!.id, helperWork);
      helper.result.catch((err: unknown) => settleCounts!.reject(err));
      // The current period: its snapshot (one row per counted domain: the coverage and the CSV read it) and
      // the tally of that snapshot (the figures read it).
      const set = await q.createSnapshot(trx, 'report_set_current', currentScope);
      const tally = await q.createTally(trx, 'report_tally_current', set, { coverage: true });
      // A helper that has not imported the snapshot by now waits for a connection this pool does not have.
      const counts = helper.imported ? await helperCounts : await periodCounts(trx, currentScope, true);
      const cur = await computeFigures(trx, req.period, request, tally, set, counts);
      const extra = await computeBreakdowns(trx, set, tally, cur, request);
      if (options.onSnapshot) await options.onSnapshot(trx, set);
      // A helper that has not even imported the snapshot by now is waiting for a connection this pool does
      // not have (a pool of one): compute the previous period here instead.
      const prev = helper.imported ? await helper.result : (helper.abandon(), await previousFigures(trx));
      return [cur, prev, extra] as const;
    })
    .finally(async () => {
      // Not left running behind a failed report; an abandoned helper that only now gets its connection (once
      // this transaction is over) gives up at once.
      const h = helper as Helper<Figures> | null;
      h?.abandon();
      await h?.result.catch(() => {});
    });
  const hasPrevious = previous.domains > 0;
  if (hasPrevious) attachDeltas(current, previous);
  return {
    schema_version: SCHEMA_VERSION,
    generated_at: new Date().toISOString(),
    source: { kind: req.survey !== null ? 'survey' : req.source!, survey: req.survey, source: req.source },
    denominator: 'domains: each domain counted once, by its latest diagnosis in the period; every pct is n / total of that figure',
    rounding: 'pct is rounded half-up to an integer, as the release prints it, so shares may not sum to 100; delta is the difference of the printed pcts, in points',
    ...current,
    previous: hasPrevious ? previous : null,
    ...extra,
  };
}

/**
 * The schema-2 additions, inside the report's transaction: unknowns as bounds on every verdict and criterion
 * share of `cur`, and the cohorts, the trend and the domain-by-domain changes when asked for.
 */
async function computeBreakdowns(trx: Db, set: q.SetRef, tally: q.Tally, cur: Figures, req: ReportRequest): Promise<Pick<Report, 'cohorts' | 'trend' | 'changes'>> {
  const overall = b.countGroups(await b.statusGroups(trx, tally.relation, { tally: true }));
  for (const v of Object.keys(cur.verdicts) as Verdict[]) cur.verdicts[v].bounds = b.verdictBounds(overall, v);
  for (const c of CRITERIA) for (const s of Object.keys(cur.criteria[c]) as Status[]) cur.criteria[c][s].bounds = b.statusBounds(overall, c, s);
  const label = (p: Span) => shortLabel(p, 'en');
  const isOwn = (p: Span) => !isRun(p) && p.from === req.period.from && p.to === req.period.to;
  const setOf = async (p: Span) => (isRun(p) ? b.runSetCall(trx, p.run, req.survey) : q.reportSetCall(scopeOf(p, req)));
  const countsOf = async (p: Span) => (isOwn(p) ? overall : b.countGroups(await b.statusGroups(trx, await setOf(p), { withRules: true })));
  const bounds = async (p: Span) => (isRun(p) ? b.runBounds(trx, p.run) : { from: p.from, to: p.to });
  let cohorts: b.Cohorts | null = null;
  if (req.by) {
    if (req.survey === null) throw new InputError('--by needs --survey NAME: the cohorts come from the survey\'s domain list');
    cohorts = await b.computeCohorts(trx, set, overall, req.by, req.minCell ?? 10);
  }
  let trend: b.Trend | null = null;
  if (req.trend) {
    const periods = [];
    for (const p of req.trend.periods) periods.push({ label: label(p), ...(await bounds(p)), counts: await countsOf(p) });
    trend = b.buildTrend(req.trend.kind, periods);
  }
  let changes: b.Changes | null = null;
  if (req.changesFrom) {
    const p = req.changesFrom;
    const to = req.changesTo ?? req.period;
    if (!isRun(p) && !isRun(to) && p.from >= to.from) throw new InputError(`--changes-from ${p.from}..${p.to} must start before the later period (${to.from})`);
    const beforeSet = await setOf(p);
    const afterSet = req.changesTo ? await setOf(req.changesTo) : set;
    const beforeCounts = b.countGroups(await b.statusGroups(trx, beforeSet, { withRules: true }));
    const afterCounts = req.changesTo ? await countsOf(req.changesTo) : overall;
    const pairs = await b.pairedRows(trx, beforeSet, afterSet);
    changes = b.buildChanges(
      pairs,
      { label: label(p), ...(await bounds(p)), counts: beforeCounts, versions: await b.rulesVersions(trx, beforeSet) },
      { label: label(to), ...(await bounds(to)), counts: afterCounts },
    );
  }
  return { cohorts, trend, changes };
}
