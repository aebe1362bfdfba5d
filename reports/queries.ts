// One query per metric, named after the question it answers (HTTP Archive Almanac style). Every query reads a
// "report set": each domain once, its latest diagnosis in the period, as SQL function report_diagnoses()
// (migrations/20261129000100_views.ts) returns it. aggregate.ts materialises that set once per period into a
// temporary table so the queries share one snapshot and one DISTINCT ON; docs/reports.md shows the same
// queries over report_diagnoses(...) directly, so any figure can be reproduced in psql.
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../lib/db.ts';
import type { Criterion, Source, Status } from '../lib/criteria.ts';
import { STATUSES } from '../lib/criteria.ts';
import { VERDICTS, type Verdict } from '../lib/verdict.ts';

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
}

/** The SQL call that yields the report set of a scope. */
export function reportSetCall(s: Scope): RawBuilder<unknown> {
  return sql`report_diagnoses((${s.from}::timestamp AT TIME ZONE ${s.timezone}), (${s.toExclusive}::timestamp AT TIME ZONE ${s.timezone}), ${s.source}::diagnosis_source, ${s.survey}::text)`;
}

/** A relation holding a report set: a temporary table name or the report_diagnoses(...) call itself. */
export type SetRef = RawBuilder<unknown>;

type Row = Record<string, unknown>;
const int = (v: unknown) => Number(v ?? 0);

async function rows<T = Row>(db: Db, q: RawBuilder<unknown>): Promise<T[]> {
  return (await q.execute(db)).rows as T[];
}

/** Turns "key, n, total" rows into a share per key, with 0 for keys absent from the data. */
function shares<K extends string>(list: Row[], keys: readonly K[], total: number): Record<K, Share> {
  const out = {} as Record<K, Share>;
  for (const k of keys) out[k] = share(0, total);
  for (const r of list) out[r.key as K] = share(int(r.n), total);
  return out;
}

/** How many domains does the report count? */
export async function domainsCounted(db: Db, set: SetRef): Promise<number> {
  const [r] = await rows(db, sql`SELECT count(*)::int AS n FROM ${set} AS r`);
  return int(r?.n);
}

/** What verdict did each domain get (safe / review / needs improvement / danger / incomplete)? */
export async function verdictShares(db: Db, set: SetRef, total: number): Promise<Record<Verdict, Share>> {
  const list = await rows(db, sql`SELECT verdict::text AS key, count(*)::int AS n FROM ${set} AS r GROUP BY 1`);
  return shares(list, VERDICTS, total);
}

/** How many domains are ok / ng / unknown / na on this criterion? */
export async function criterionStatusShares(db: Db, set: SetRef, criterion: Criterion, total: number): Promise<Record<Status, Share>> {
  const list = await rows(db, sql`SELECT ${sql.ref(`r.${criterion}`)}::text AS key, count(*)::int AS n FROM ${set} AS r GROUP BY 1`);
  return shares(list, STATUSES, total);
}

export const SPF_DKIM = ['both_ok', 'spf_only', 'dkim_only', 'both_ng', 'unknown'] as const;
export type SpfDkim = (typeof SPF_DKIM)[number];

/** How many domains pass both SPF and DKIM, only one, or neither (anything not proven either way: unknown)? */
export async function spfDkimShares(db: Db, set: SetRef, total: number): Promise<Record<SpfDkim, Share>> {
  const list = await rows(db, sql`SELECT spf_dkim AS key, count(*)::int AS n FROM ${set} AS r GROUP BY 1`);
  return shares(list, SPF_DKIM, total);
}

/** How many domains are NG on send TLS or on receive TLS (the release's "25% still need improvement")? */
export async function tlsSendOrReceiveNgShare(db: Db, set: SetRef, total: number): Promise<Share> {
  const [r] = await rows(db, sql`SELECT count(*) FILTER (WHERE tls_send_or_receive_ng)::int AS n FROM ${set} AS r`);
  return share(int(r?.n), total);
}

export const DMARC_POLICIES = ['reject', 'quarantine', 'none', 'absent', 'invalid', 'unknown', 'not_recorded'] as const;
export const RECORD_STATES = ['present', 'absent', 'invalid', 'unknown', 'not_recorded'] as const;

/** Which DMARC policy (p=) do the domains publish? `not_recorded`: the diagnosis did not record it. */
export async function dmarcPolicyShares(db: Db, set: SetRef, total: number): Promise<Record<string, Share>> {
  const list = await rows(db, sql`SELECT coalesce(dmarc_policy, 'not_recorded') AS key, count(*)::int AS n FROM ${set} AS r GROUP BY 1`);
  return shares(list, DMARC_POLICIES as readonly string[], total);
}

/** How many domains publish an MTA-STS record (RFC 8461)? */
export async function mtaStsShares(db: Db, set: SetRef, total: number): Promise<Record<string, Share>> {
  const list = await rows(db, sql`SELECT coalesce(mta_sts, 'not_recorded') AS key, count(*)::int AS n FROM ${set} AS r GROUP BY 1`);
  return shares(list, RECORD_STATES as readonly string[], total);
}

/** How many domains publish a TLS-RPT record (RFC 8460)? */
export async function tlsRptShares(db: Db, set: SetRef, total: number): Promise<Record<string, Share>> {
  const list = await rows(db, sql`SELECT coalesce(tls_rpt, 'not_recorded') AS key, count(*)::int AS n FROM ${set} AS r GROUP BY 1`);
  return shares(list, RECORD_STATES as readonly string[], total);
}

/** How many domains negotiated each TLS version (a domain counts under every version seen; no_tls: none seen)? */
export async function tlsVersionShares(db: Db, set: SetRef, total: number): Promise<Record<string, Share>> {
  const list = await rows(
    db,
    sql`SELECT v AS key, count(*)::int AS n
          FROM ${set} AS r, unnest(CASE WHEN cardinality(r.tls_versions) = 0 THEN ARRAY['no_tls'] ELSE r.tls_versions END) AS v
         GROUP BY 1`,
  );
  const keys = list.map((r) => String(r.key)).filter((k) => k !== 'no_tls').sort().reverse();
  return shares(list, [...keys, 'no_tls'], total);
}

/** How many domains showed each certificate problem on an MX host (any: at least one problem)? */
export async function certProblemShares(db: Db, set: SetRef, total: number): Promise<Record<string, Share>> {
  const list = await rows(
    db,
    sql`SELECT p AS key, count(*)::int AS n
          FROM ${set} AS r, unnest(CASE WHEN cardinality(r.cert_problems) = 0 THEN '{}'::text[] ELSE r.cert_problems || ARRAY['any'] END) AS p
         GROUP BY 1`,
  );
  const keys = ['self_signed', 'expired', 'wrong_name', 'untrusted'];
  for (const r of list) if (!keys.includes(String(r.key)) && r.key !== 'any') keys.push(String(r.key));
  return shares(list, [...keys, 'any'], total);
}

/** Which source did the counted diagnosis (each domain's latest) come from? */
export async function sourceShares(db: Db, set: SetRef, total: number): Promise<Record<Source, Share>> {
  const list = await rows(db, sql`SELECT source::text AS key, count(*)::int AS n FROM ${set} AS r GROUP BY 1`);
  return shares(list, ['test-mail', 'scan'] as const, total);
}

/** How many domains had diagnoses of both sources in the period (before the latest one was picked)? */
export async function domainsWithBothSources(db: Db, scope: Scope): Promise<number> {
  const [r] = await rows(
    db,
    sql`SELECT count(*)::int AS n FROM (
          SELECT domain FROM diagnosis_results
           WHERE observed_at >= (${scope.from}::timestamp AT TIME ZONE ${scope.timezone})
             AND observed_at < (${scope.toExclusive}::timestamp AT TIME ZONE ${scope.timezone})
             AND (${scope.source}::diagnosis_source IS NULL OR source = ${scope.source}::diagnosis_source)
             AND (${scope.survey}::text IS NULL OR survey = ${scope.survey}::text)
           GROUP BY domain HAVING count(DISTINCT source) > 1) x`,
  );
  return int(r?.n);
}

/** How many diagnoses were stored in the period in all (a domain diagnosed twice counts twice)? */
export async function diagnosesInPeriod(db: Db, scope: Scope): Promise<number> {
  const [r] = await rows(
    db,
    sql`SELECT count(*)::int AS n FROM diagnosis_results
         WHERE observed_at >= (${scope.from}::timestamp AT TIME ZONE ${scope.timezone})
           AND observed_at < (${scope.toExclusive}::timestamp AT TIME ZONE ${scope.timezone})
           AND (${scope.source}::diagnosis_source IS NULL OR source = ${scope.source}::diagnosis_source)
           AND (${scope.survey}::text IS NULL OR survey = ${scope.survey}::text)`,
  );
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
export async function unknownReasons(db: Db, set: SetRef, criteria: readonly Criterion[]): Promise<UnknownReason[]> {
  // One pass: each row fans out into one (criterion, status, reason) triple per criterion.
  const triples = criteria.map((c) => sql`(${c}::text, ${sql.ref(`r.${c}`)}::text, ${sql.ref(`r.${c}_reason`)})`);
  const list = await rows(
    db,
    sql`SELECT u.criterion, u.reason, count(*)::int AS n
          FROM ${set} AS r, LATERAL (VALUES ${sql.join(triples)}) AS u(criterion, status, reason)
         WHERE u.status = 'unknown'
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
export async function runsUsed(db: Db, set: SetRef): Promise<RunUsed[]> {
  const list = await rows(
    db,
    sql`SELECT ru.id, s.name AS survey, ru.state::text AS state, x.domains, ru.created_at, ru.config
          FROM (SELECT run_id, count(*)::int AS domains FROM ${set} AS r WHERE run_id IS NOT NULL GROUP BY 1) x
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
    config: r.config,
  }));
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
    sql`SELECT r.domain, sd.organization, sd.industry, r.source::text AS source, r.survey, r.observed_at, r.verdict::text AS verdict,
               r.open_relay::text AS open_relay, r.open_relay_reason, r.spf::text AS spf, r.spf_reason,
               r.dkim::text AS dkim, r.dkim_reason, r.tls_receive::text AS tls_receive, r.tls_receive_reason,
               r.tls_send::text AS tls_send, r.tls_send_reason, r.reverse_dns::text AS reverse_dns, r.reverse_dns_reason,
               r.dnssec::text AS dnssec, r.dnssec_reason, r.dnsbl::text AS dnsbl, r.dnsbl_reason,
               r.spf_dkim, r.dmarc_policy, r.mta_sts, r.tls_rpt,
               array_to_string(r.tls_versions, ' ') AS tls_versions, array_to_string(r.cert_problems, ' ') AS cert_problems,
               r.id AS diagnosis_id
          FROM ${set} AS r
          LEFT JOIN survey_domains sd ON sd.survey_id = r.survey_id AND sd.domain = r.domain
         ORDER BY r.domain`,
  );
}
