// One query per metric, named after the question it answers (HTTP Archive Almanac style). Every figure is
// computed from a "report set": each domain once, its latest diagnosis in the period, as SQL function
// report_diagnoses() (migrations/20261129000100_views.ts) returns it. aggregate.ts snapshots that set once per
// period into a temporary table (createSnapshot) and groups it by the columns the figures read (createTally),
// so the figures, the coverage and the per-domain CSV share one snapshot and one DISTINCT ON, and each figure
// reads a few thousand grouped rows instead of every domain. docs/reports.md shows the same questions as
// count(*) queries over report_diagnoses(...) directly, so any figure can be reproduced in psql.
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../lib/db.ts';
import type { Criterion, Source, Status } from '../lib/criteria.ts';
import { CRITERIA, STATUSES } from '../lib/criteria.ts';
import { VERDICTS, type Verdict } from '../lib/verdict.ts';
import type { FindingCheck } from '../lib/checks/contract.ts';
import { REPORTED_FINDINGS } from '../lib/checks/registry.ts';
import { nonMailCheck } from '../lib/checks/non-mail/index.ts';

/** A count with its denominator. `pct` is rounded half-up to an integer, as the release prints it; null when total = 0. */
export interface Share {
  n: number;
  total: number;
  pct: number | null;
}

export function share(n: number, total: number): Share {
  return { n, total, pct: total === 0 ? null : Math.round((100 * n) / total) };
}

/** What a report counts: the period bounds (half-open, in `timezone`) and the optional source/survey filters. */
export interface Scope {
  /** First day, YYYY-MM-DD, inclusive. */
  from: string;
  /** The day after the last day, YYYY-MM-DD, exclusive. */
  toExclusive: string;
  timezone: string;
  source: Source | null;
  survey: string | null;
  /** Only test-mail diagnoses of these provenance classes (`--provenance`); null = all. */
  provenance?: string[] | null;
}

/** The SQL call that yields the report set of a scope. */
export function reportSetCall(s: Scope): RawBuilder<unknown> {
  if (s.provenance && s.provenance.length > 0) {
    return sql`report_diagnoses((${s.from}::timestamp AT TIME ZONE ${s.timezone}), (${s.toExclusive}::timestamp AT TIME ZONE ${s.timezone}), ${s.source}::diagnosis_source, ${s.survey}::text, ${sql.val(s.provenance)}::text[])`;
  }
  return sql`report_diagnoses((${s.from}::timestamp AT TIME ZONE ${s.timezone}), (${s.toExclusive}::timestamp AT TIME ZONE ${s.timezone}), ${s.source}::diagnosis_source, ${s.survey}::text)`;
}

/**
 * A relation with one row per counted domain (the report set): the per-period snapshot (a temporary table
 * written by `createSnapshot`) or the `report_diagnoses(...)` call itself.
 */
export type SetRef = RawBuilder<unknown>;

/**
 * A relation with the report set grouped by every column a figure reads, and `n`, the number of domains in
 * each group: a few thousand rows instead of one per domain. `count(*)` over the set is `sum(n)` over its
 * tally, so every figure is the same number either way (test/report-figures.test.ts checks it).
 */
export interface Tally {
  readonly relation: RawBuilder<unknown>;
}

type Row = Record<string, unknown>;
const int = (v: unknown) => Number(v ?? 0);

async function rows<T = Row>(db: Db, q: RawBuilder<unknown>): Promise<T[]> {
  return (await q.execute(db)).rows as T[];
}

/** Turns "key, n" rows into a share per key, with 0 for keys absent from the data. */
function shares<K extends string>(list: Row[], keys: readonly K[], total: number): Record<K, Share> {
  const out = {} as Record<K, Share>;
  for (const k of keys) out[k] = share(0, total);
  for (const r of list) out[r.key as K] = share(int(r.n), total);
  return out;
}

const ref = (column: string) => sql.ref(`r.${column}`);

/**
 * The snapshot column a finding is counted from: its legacy column of `diagnoses` where it has one, else
 * `f_<id>` read from `findings.<id>.value`, so a new check is counted without a migration of its own: text
 * for a single-valued finding; for a multi-valued one the JSON value as stored (jsonb), which the tally and
 * the per-domain CSV turn into text[] with `multiValues` (the snapshot does not, see SNAPSHOT_COLUMNS).
 */
export function findingColumn(f: FindingCheck): string {
  return f.column ?? `f_${f.id}`;
}

/** A registry-only multi-valued finding: its snapshot column is jsonb, read through `multiValues`. */
const storedAsJson = (f: FindingCheck) => !f.column && !!f.multi;

/** The values of a multi-valued finding's stored JSON value (`findings.<id>.value`) as text[]: none unless an array. */
function multiValues(value: RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`ARRAY(SELECT jsonb_array_elements_text(CASE jsonb_typeof(${value}) WHEN 'array' THEN ${value} ELSE '[]'::jsonb END))`;
}

/** A finding's column of a snapshot row `r`, as text or text[] (multi-valued). */
function findingValues(f: FindingCheck): RawBuilder<unknown> {
  return storedAsJson(f) ? multiValues(ref(findingColumn(f))) : ref(findingColumn(f));
}

function findingSnapshotColumn(f: FindingCheck): RawBuilder<unknown> {
  if (f.column) return ref(f.column);
  const value = sql`r.findings -> ${sql.lit(f.id)} -> 'value'`;
  return f.multi ? sql`${value} AS ${sql.id(findingColumn(f))}` : sql`(${value} #>> '{}') AS ${sql.id(findingColumn(f))}`;
}

/**
 * What the snapshot keeps of each counted diagnosis: what a figure, the coverage and the per-domain CSV read,
 * no more. Naming the columns (rather than `r.*`) lets the planner drop the rest, the surveys join included,
 * before the DISTINCT ON sort. verdict_reasons is kept for incomplete diagnoses only, the only ones a
 * figure reads it for (incompleteReasons). A multi-valued finding of the registry is kept as its JSON value:
 * turning it into text[] took a subquery per row and finding (three per row, 1.5 s of CPU for 1,000,000
 * domains, issue 18), where the tally does it once per group.
 */
const SNAPSHOT_COLUMNS = sql.join([
  ...['id', 'domain', 'source', 'survey_id', 'run_id', 'observed_at', 'verdict', 'provenance'].map(ref),
  ...CRITERIA.flatMap((c) => [ref(c), ref(`${c}_reason`)]),
  ...['spf_dkim', 'tls_send_or_receive_ng'].map(ref),
  ...REPORTED_FINDINGS.map(findingSnapshotColumn),
  sql`CASE WHEN r.verdict = 'incomplete' THEN r.verdict_reasons END AS verdict_reasons`,
]);

/** The report set of a scope with the snapshot's columns (what a tally reads), without writing a snapshot. */
export function reportSetColumns(scope: Scope): SetRef {
  return sql`(SELECT ${SNAPSHOT_COLUMNS} FROM ${reportSetCall(scope)} AS r)`;
}

/**
 * Writes the report set of `scope` into a temporary table dropped at commit (call it inside a transaction),
 * so that every figure, the coverage and the per-domain CSV read one set, computed once.
 */
export async function createSnapshot(db: Db, table: string, scope: Scope): Promise<SetRef> {
  await sql`CREATE TEMP TABLE ${sql.id(table)} ON COMMIT DROP AS SELECT ${SNAPSHOT_COLUMNS} FROM ${reportSetCall(scope)} AS r`.execute(db);
  return sql`${sql.id(table)}`;
}

/** A column of a tally: its name, and what it is in a snapshot row `r` (as grouped; `outer`: as the tally keeps it). */
interface TallyColumn {
  name: string;
  inner: RawBuilder<unknown>;
  outer: RawBuilder<unknown>;
}

const asIs = (name: string, inner: RawBuilder<unknown> = ref(name)): TallyColumn => ({ name, inner, outer: ref(name) });

/**
 * The columns a tally groups by: what the figures count and, when the coverage is wanted, the run (runsUsed)
 * and, for each criterion, the reason code when its status is unknown (unknownReasons). Each takes a handful
 * of values, so the groups stay few (3,700 for the benchmark's 400,000 domains).
 */
function tallyColumns(coverage: boolean): TallyColumn[] {
  return [
    asIs('verdict'),
    asIs('source'),
    ...CRITERIA.map((c) => asIs(c)),
    ...['spf_dkim', 'tls_send_or_receive_ng'].map((c) => asIs(c)),
    ...REPORTED_FINDINGS.map((f) => ({ name: findingColumn(f), inner: ref(findingColumn(f)), outer: findingValues(f) })),
    ...(coverage
      ? [asIs('run_id'), ...CRITERIA.map((c) => asIs(`${c}_unknown_reason`, sql`CASE WHEN ${ref(c)} = 'unknown' THEN ${ref(`${c}_reason`)} END`))]
      : []),
  ];
}

/**
 * Writes the tally of a report set (a snapshot or a report_diagnoses(...) call) into a temporary table dropped
 * at commit. `coverage`: also keep what runsUsed and unknownReasons read (the previous period does not show them).
 * The set is grouped as it is stored, then its groups by the values the figures read (the multi-valued
 * findings' text[]): the second grouping sees a few thousand rows, not one per domain.
 */
export async function createTally(db: Db, table: string, set: SetRef, options: { coverage: boolean }): Promise<Tally> {
  const columns = tallyColumns(options.coverage);
  const groups = sql.join(columns.map((_, i) => sql.lit(i + 1)));
  await sql`CREATE TEMP TABLE ${sql.id(table)} ON COMMIT DROP AS
              SELECT ${sql.join(columns.map((c) => sql`${c.outer} AS ${sql.id(c.name)}`))}, sum(r.n)::int AS n
                FROM (SELECT ${sql.join(columns.map((c) => sql`${c.inner} AS ${sql.id(c.name)}`))}, count(*) AS n
                        FROM ${set} AS r GROUP BY ${groups}) AS r
               GROUP BY ${groups}`.execute(db);
  return { relation: sql`${sql.id(table)}` };
}

/** How many domains does the report count? */
export async function domainsCounted(db: Db, t: Tally): Promise<number> {
  const [r] = await rows(db, sql`SELECT coalesce(sum(n), 0)::int AS n FROM ${t.relation} AS r`);
  return int(r?.n);
}

/** What verdict did each domain get (safe / review / needs improvement / danger / incomplete)? */
export async function verdictShares(db: Db, t: Tally, total: number): Promise<Record<Verdict, Share>> {
  const list = await rows(db, sql`SELECT verdict::text AS key, sum(n)::int AS n FROM ${t.relation} AS r GROUP BY 1`);
  return shares(list, VERDICTS, total);
}

/**
 * The verdicts over mail domains only: every counted domain except those the `non_mail` finding classifies
 * `non_mail` (null or no MX and `v=spf1 -all`; test-mail diagnoses and unknown ones count as mail domains).
 * Its denominator is that number of domains, returned with the shares.
 */
export async function verdictSharesMailDomains(db: Db, t: Tally): Promise<{ domains: number; verdicts: Record<Verdict, Share> }> {
  const list = await rows(
    db,
    sql`SELECT verdict::text AS key, sum(n)::int AS n FROM ${t.relation} AS r WHERE ${ref(findingColumn(nonMailCheck))} IS DISTINCT FROM 'non_mail' GROUP BY 1`,
  );
  const domains = list.reduce((s, r) => s + int(r.n), 0);
  return { domains, verdicts: shares(list, VERDICTS, domains) };
}

/** How many domains are ok / ng / unknown / na on this criterion? */
export async function criterionStatusShares(db: Db, t: Tally, criterion: Criterion, total: number): Promise<Record<Status, Share>> {
  const list = await rows(db, sql`SELECT ${ref(criterion)}::text AS key, sum(n)::int AS n FROM ${t.relation} AS r GROUP BY 1`);
  return shares(list, STATUSES, total);
}

export const SPF_DKIM = ['both_ok', 'spf_only', 'dkim_only', 'both_ng', 'unknown'] as const;
export type SpfDkim = (typeof SPF_DKIM)[number];

/** How many domains pass both SPF and DKIM, only one, or neither (anything not proven either way: unknown)? */
export async function spfDkimShares(db: Db, t: Tally, total: number): Promise<Record<SpfDkim, Share>> {
  const list = await rows(db, sql`SELECT spf_dkim AS key, sum(n)::int AS n FROM ${t.relation} AS r GROUP BY 1`);
  return shares(list, SPF_DKIM, total);
}

/** How many domains are NG on send TLS or on receive TLS (the release's "25% still need improvement")? */
export async function tlsSendOrReceiveNgShare(db: Db, t: Tally, total: number): Promise<Share> {
  const [r] = await rows(db, sql`SELECT coalesce(sum(n) FILTER (WHERE tls_send_or_receive_ng), 0)::int AS n FROM ${t.relation} AS r`);
  return share(int(r?.n), total);
}

/**
 * How many domains took each value of a finding? Single-valued: its values plus `not_recorded` (the diagnosis
 * did not record it). Multi-valued: a domain counts under every value it has, under `multi.empty` when it has
 * none, and under `multi.any` when it has at least one.
 */
export async function findingShares(db: Db, t: Tally, f: FindingCheck, total: number): Promise<Record<string, Share>> {
  const col = ref(findingColumn(f));
  if (!f.multi) {
    const list = await rows(db, sql`SELECT coalesce(${col}, 'not_recorded') AS key, sum(n)::int AS n FROM ${t.relation} AS r GROUP BY 1`);
    return shares(list, [...f.values, 'not_recorded'], total);
  }
  const empty = f.multi.empty === null ? sql`'{}'::text[]` : sql`ARRAY[${sql.lit(f.multi.empty)}]`;
  const withAny = f.multi.any === null ? col : sql`${col} || ARRAY[${sql.lit(f.multi.any)}]`;
  const list = await rows(
    db,
    sql`SELECT v AS key, sum(r.n)::int AS n
          FROM ${t.relation} AS r, unnest(CASE WHEN cardinality(${col}) = 0 THEN ${empty} ELSE ${withAny} END) AS v
         GROUP BY 1`,
  );
  const special = new Set([f.multi.empty, f.multi.any].filter((k): k is string => k !== null));
  const seen = list.map((r) => String(r.key)).filter((k) => !special.has(k) && !f.values.includes(k));
  const keys = f.multi.sort === 'desc' ? [...f.values, ...seen].sort().reverse() : [...f.values, ...seen];
  return shares(list, [...keys, ...[f.multi.empty, f.multi.any].filter((k): k is string => k !== null)], total);
}

/** Which source did the counted diagnosis (each domain's latest) come from? */
export async function sourceShares(db: Db, t: Tally, total: number): Promise<Record<Source, Share>> {
  const list = await rows(db, sql`SELECT source::text AS key, sum(n)::int AS n FROM ${t.relation} AS r GROUP BY 1`);
  return shares(list, ['test-mail', 'scan'] as const, total);
}

/**
 * The diagnoses of a scope's period, before the latest-per-domain rule, read from the table itself (the view's
 * surveys join is not needed to filter by survey), so the (survey_id, observed_at) and BRIN indexes apply.
 */
function periodDiagnoses(scope: Scope): RawBuilder<unknown> {
  return sql`(SELECT d.domain, d.source FROM diagnoses d
               WHERE d.observed_at >= (${scope.from}::timestamp AT TIME ZONE ${scope.timezone})
                 AND d.observed_at < (${scope.toExclusive}::timestamp AT TIME ZONE ${scope.timezone})
                 AND (${scope.source}::diagnosis_source IS NULL OR d.source = ${scope.source}::diagnosis_source)
                 AND (${scope.survey}::text IS NULL OR d.survey_id = (SELECT id FROM surveys WHERE name = ${scope.survey}::text)))`;
}

/**
 * How many domains had diagnoses of both sources in the period (before the latest one was picked)? Test-mail
 * diagnoses are the rarer kind: each is checked for a scan of its domain through (domain, observed_at).
 */
export async function domainsWithBothSources(db: Db, scope: Scope): Promise<number> {
  const [r] = await rows(
    db,
    sql`SELECT count(DISTINCT t.domain)::int AS n
          FROM ${periodDiagnoses(scope)} AS t
         WHERE t.source = 'test-mail'
           AND EXISTS (SELECT 1 FROM ${periodDiagnoses(scope)} AS s WHERE s.domain = t.domain AND s.source = 'scan')`,
  );
  return int(r?.n);
}

/** How many diagnoses were stored in the period in all (a domain diagnosed twice counts twice)? */
export async function diagnosesInPeriod(db: Db, scope: Scope): Promise<number> {
  const [r] = await rows(db, sql`SELECT count(*)::int AS n FROM ${periodDiagnoses(scope)} AS p`);
  return int(r?.n);
}

export interface IncompleteReason {
  criterion: string;
  reason: string;
  n: number;
}

/** Why were the incomplete diagnoses incomplete (which unknown criterion, with which reason code)? */
export async function incompleteReasons(db: Db, set: SetRef): Promise<IncompleteReason[]> {
  const list = await rows(
    db,
    sql`SELECT e->>'criterion' AS criterion, e->>'reason' AS reason, count(*)::int AS n
          FROM ${set} AS r, jsonb_array_elements(coalesce(r.verdict_reasons->'reasons', '[]'::jsonb)) AS e
         WHERE r.verdict = 'incomplete'
         GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2`,
  );
  return list.map((r) => ({ criterion: String(r.criterion), reason: String(r.reason), n: int(r.n) }));
}

export interface UnknownReason {
  criterion: string;
  reason: string;
  n: number;
}

/** Why was each criterion unknown (reason codes of every `unknown` status)? */
export async function unknownReasons(db: Db, t: Tally, criteria: readonly Criterion[]): Promise<UnknownReason[]> {
  // One pass over the tally: each group fans out into one (criterion, reason) pair per criterion; the reason
  // is set only where that criterion's status is unknown.
  const pairs = criteria.map((c) => sql`(${c}::text, ${ref(`${c}_unknown_reason`)})`);
  const list = await rows(
    db,
    sql`SELECT u.criterion, u.reason, sum(r.n)::int AS n
          FROM ${t.relation} AS r, LATERAL (VALUES ${sql.join(pairs)}) AS u(criterion, reason)
         WHERE u.reason IS NOT NULL
         GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2`,
  );
  return list.map((r) => ({ criterion: String(r.criterion), reason: String(r.reason), n: int(r.n) }));
}

export interface RunUsed {
  id: number;
  survey: string | null;
  state: string;
  domains: number;
  created_at: string;
  config: unknown;
}

/** Which survey runs did the counted diagnoses come from, and how were they configured? */
export async function runsUsed(db: Db, t: Tally): Promise<RunUsed[]> {
  const list = await rows(
    db,
    sql`SELECT ru.id, s.name AS survey, ru.state::text AS state, x.domains, ru.created_at, ru.config
          FROM (SELECT run_id, sum(n)::int AS domains FROM ${t.relation} AS r WHERE run_id IS NOT NULL GROUP BY 1) x
          JOIN runs ru ON ru.id = x.run_id
          LEFT JOIN surveys s ON s.id = ru.survey_id
         ORDER BY ru.id`,
  );
  return list.map((r) => ({
    id: int(r.id),
    survey: (r.survey as string | null) ?? null,
    state: String(r.state),
    domains: int(r.domains),
    created_at: new Date(r.created_at as string).toISOString(),
    config: publishableRunConfig(r.config),
  }));
}

/**
 * A run configuration as a report may publish it: the opt-out list (domains and IPs that asked not to be
 * probed) becomes the number of its entries, never the entries.
 */
export function publishableRunConfig(config: unknown): unknown {
  if (!config || typeof config !== 'object' || !('optOut' in config)) return config;
  const { optOut, ...rest } = config as { optOut: unknown };
  return { ...rest, optOut: { entries: Array.isArray(optOut) ? optOut.length : 0 } };
}

/** How many counted domains each test-mail provenance class contributes (CRITERIA.md "Test-mail provenance"). */
export async function provenanceCounts(db: Db, set: SetRef): Promise<Record<'requested' | 'authenticated' | 'unverified' | 'none', number>> {
  const list = await rows(db, sql`SELECT coalesce(r.provenance, 'none') AS key, count(*)::int AS n FROM ${set} AS r WHERE r.source = 'test-mail' GROUP BY 1`);
  const out = { requested: 0, authenticated: 0, unverified: 0, none: 0 };
  for (const r of list) out[String(r.key) as keyof typeof out] = int(r.n);
  return out;
}

/** How many of the survey's listed domains have a diagnosis in the period? (null when not a survey report) */
export async function surveyDomainsDiagnosed(db: Db, set: SetRef, survey: string): Promise<Share> {
  const [r] = await rows(
    db,
    sql`SELECT count(*)::int AS total, count(r.domain)::int AS n
          FROM survey_domains sd JOIN surveys s ON s.id = sd.survey_id
          LEFT JOIN ${set} AS r ON r.domain = sd.domain
         WHERE s.name = ${survey}`,
  );
  return share(int(r?.n), int(r?.total));
}

/** Does a survey of this name exist? */
export async function surveyExists(db: Db, name: string): Promise<boolean> {
  const list = await rows(db, sql`SELECT 1 FROM surveys WHERE name = ${name}`);
  return list.length > 0;
}

/** The counted diagnoses themselves, one row per domain, for the per-domain CSV. */
export async function domainRows(db: Db, set: SetRef): Promise<Row[]> {
  return rows(
    db,
    sql`SELECT r.domain, sd.organization, sd.industry, r.source::text AS source, s.name AS survey, r.observed_at, r.verdict::text AS verdict,
               r.open_relay::text AS open_relay, r.open_relay_reason, r.spf::text AS spf, r.spf_reason,
               r.dkim::text AS dkim, r.dkim_reason, r.tls_receive::text AS tls_receive, r.tls_receive_reason,
               r.tls_send::text AS tls_send, r.tls_send_reason, r.reverse_dns::text AS reverse_dns, r.reverse_dns_reason,
               r.dnssec::text AS dnssec, r.dnssec_reason, r.dnsbl::text AS dnsbl, r.dnsbl_reason,
               r.spf_dkim,
               ${sql.join(REPORTED_FINDINGS.map((f) => (f.multi ? sql`array_to_string(${findingValues(f)}, ' ') AS ${sql.id(f.id)}` : sql`${ref(findingColumn(f))} AS ${sql.id(f.id)}`)))},
               r.id AS diagnosis_id
          FROM ${set} AS r
          LEFT JOIN surveys s ON s.id = r.survey_id
          LEFT JOIN survey_domains sd ON sd.survey_id = r.survey_id AND sd.domain = r.domain
         ORDER BY r.domain`,
  );
}
