// Views for analysts, and the one set-returning function every report figure is computed from, so a figure
// in a report can be reproduced in psql with the same SQL (docs/reports.md shows how). Issue 8.
import { sql, type Kysely } from 'kysely';

/**
 * The SELECT of the diagnosis_results view, with `appended` columns after this migration's. CREATE OR REPLACE
 * VIEW may only add columns at the end (PostgreSQL, CREATE VIEW), so each later version of the view is this
 * one plus what its migration appends: 20261201000100_test_mail_security (provenance), then
 * 20261202000100_check_registry (findings).
 */
export function diagnosisResultsSelect(appended: readonly string[] = []): string {
  return `
    SELECT d.id, d.source, d.domain, d.survey_id, s.name AS survey, d.run_id, d.test_mail_id, d.observed_at,
           d.verdict, d.verdict_reasons,
           d.open_relay, d.open_relay_reason, d.spf, d.spf_reason, d.dkim, d.dkim_reason,
           d.tls_receive, d.tls_receive_reason, d.tls_send, d.tls_send_reason,
           d.reverse_dns, d.reverse_dns_reason, d.dnssec, d.dnssec_reason, d.dnsbl, d.dnsbl_reason,
           CASE
             WHEN d.spf = 'ok' AND d.dkim = 'ok' THEN 'both_ok'
             WHEN d.spf = 'ok' AND d.dkim = 'ng' THEN 'spf_only'
             WHEN d.spf = 'ng' AND d.dkim = 'ok' THEN 'dkim_only'
             WHEN d.spf = 'ng' AND d.dkim = 'ng' THEN 'both_ng'
             ELSE 'unknown'
           END AS spf_dkim,
           (d.tls_send = 'ng' OR d.tls_receive = 'ng') AS tls_send_or_receive_ng,
           d.dmarc_policy, d.mta_sts, d.tls_rpt, d.tls_versions, d.cert_problems, d.rules_version${appended.map((c) => `,\n           ${c}`).join('')}
      FROM diagnoses d
      LEFT JOIN surveys s ON s.id = d.survey_id`;
}

/**
 * Each domain's latest diagnosis in the period, with report_diagnoses()'s filters (the provenance one only
 * with `provenance`): `columns` of `table` (aliased `a`). Every version of report_diagnoses() picks with it:
 * this migration's, 20261201000100_test_mail_security's overload, and 20261202000500_report_latest's (ids
 * from diagnoses first), so they all count the same set by construction.
 */
export const latestPerDomain = (columns: string, table: string, a: string, provenance: boolean) => `SELECT DISTINCT ON (${a}.domain COLLATE "C") ${columns}
        FROM ${table} ${a}
       WHERE ${a}.observed_at >= period_from AND ${a}.observed_at < period_to
         AND (only_source IS NULL OR ${a}.source = only_source)
         AND (only_survey IS NULL OR ${a}.survey_id = (SELECT id FROM surveys WHERE name = only_survey))${provenance ? `
         AND (only_provenance IS NULL OR ${a}.provenance = ANY (only_provenance))` : ''}
       ORDER BY ${a}.domain COLLATE "C", ${a}.observed_at DESC, ${a}.id DESC`;

/** The SELECT of latest_diagnoses; a migration that replaces diagnosis_results replaces this view with it. */
export const LATEST_DIAGNOSES_SELECT = `
    SELECT DISTINCT ON (source, survey_id, domain) *
      FROM diagnosis_results
     ORDER BY source, survey_id, domain, observed_at DESC, id DESC`;

export async function up(db: Kysely<any>): Promise<void> {
  // One row per diagnosis: every criterion with its reason, the verdict, the findings beyond MSchecker and the
  // survey's name; plus the two derived columns the release reports (SPF×DKIM, "send or receive TLS NG").
  // The raw observations stay in `diagnoses` (they are large and only re-judging reads them).
  await sql.raw(`CREATE VIEW diagnosis_results AS ${diagnosisResultsSelect()}`).execute(db);
  await sql`COMMENT ON VIEW diagnosis_results IS
    'One row per diagnosis: every criterion (ok/ng/unknown/na) with its reason code, the verdict, spf_dkim (both_ok/spf_only/dkim_only/both_ng/unknown), tls_send_or_receive_ng, the findings beyond MSchecker and the survey name.'`.execute(db);

  // The latest diagnosis of each domain per source and survey, over all time.
  await sql.raw(`CREATE VIEW latest_diagnoses AS ${LATEST_DIAGNOSES_SELECT}`).execute(db);
  await sql`COMMENT ON VIEW latest_diagnoses IS
    'The latest diagnosis of each domain per (source, survey), over all time. Reports use report_diagnoses() instead, which picks the latest within a period.'`.execute(db);

  // What a report counts: each domain once, its latest diagnosis in [period_from, period_to), optionally only
  // one source and/or one survey (NULL = any). LANGUAGE sql + STABLE lets the planner inline it, so the
  // period and filters reach the index scans, and a caller naming a few columns gets a narrow sort (the
  // planner drops the others, the surveys join included).
  // The DISTINCT ON sorts by domain under COLLATE "C": the domains that count as equal, hence the set, are the
  // same under any deterministic collation, but byte order sorts with abbreviated keys, where the database's
  // collation (C.UTF-8, en_US…) goes through strcoll: 2.4 s against 1.0 s for 600,000 diagnoses (BENCHMARKS.md).
  await sql`
    CREATE FUNCTION report_diagnoses(period_from timestamptz, period_to timestamptz,
                                     only_source diagnosis_source DEFAULT NULL, only_survey text DEFAULT NULL)
    RETURNS SETOF diagnosis_results
    LANGUAGE sql STABLE AS $$
      ${sql.raw(latestPerDomain('r.*', 'diagnosis_results', 'r', false))}
    $$`.execute(db);
  await sql`COMMENT ON FUNCTION report_diagnoses(timestamptz, timestamptz, diagnosis_source, text) IS
    'The set a report counts: each domain once, its latest diagnosis with period_from <= observed_at < period_to, filtered by source and survey name when given.'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION IF EXISTS report_diagnoses(timestamptz, timestamptz, diagnosis_source, text)`.execute(db);
  await sql`DROP VIEW IF EXISTS latest_diagnoses`.execute(db);
  await sql`DROP VIEW IF EXISTS diagnosis_results`.execute(db);
}
