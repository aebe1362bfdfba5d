// Issue 14: one contract per check. `diagnoses.findings` now holds every finding of the check registry by its
// id (`{ "<id>": { "status", "reason", "value", "detail"? } }`, lib/checks/registry.ts); rows judged before keep
// their values, converted from the legacy columns (status and reason unknown until `mailcensus rejudge`).
// The report set gains the column, so reports count a new finding without a migration of its own.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    UPDATE diagnoses SET findings = jsonb_build_object(
        'mx', jsonb_build_object('status', 'unknown', 'reason', 'not_recorded', 'value', CASE WHEN (findings->>'nullMx')::boolean THEN 'null' ELSE 'mx' END),
        'dmarc_policy', jsonb_build_object('status', 'unknown', 'reason', 'not_recorded', 'value', dmarc_policy),
        'mta_sts', jsonb_build_object('status', 'unknown', 'reason', 'not_recorded', 'value', mta_sts),
        'tls_rpt', jsonb_build_object('status', 'unknown', 'reason', 'not_recorded', 'value', tls_rpt),
        'tls_versions', jsonb_build_object('status', 'unknown', 'reason', 'not_recorded', 'value', to_jsonb(tls_versions)),
        'cert_problems', jsonb_build_object('status', 'unknown', 'reason', 'not_recorded', 'value', to_jsonb(cert_problems)))
     WHERE findings ? 'dmarcPolicy'`.execute(db);
  await sql`COMMENT ON COLUMN diagnoses.findings IS
    'Every finding beyond MSchecker by check id (lib/checks/registry.ts): {"<id>": {"status", "reason", "value", "detail"}}; value is a string or, for multi-valued findings such as tls_versions, an array.'`.execute(db);
  await sql`
    CREATE OR REPLACE VIEW diagnosis_results AS
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
           d.dmarc_policy, d.mta_sts, d.tls_rpt, d.tls_versions, d.cert_problems, d.rules_version,
           d.provenance, d.findings
      FROM diagnoses d
      LEFT JOIN surveys s ON s.id = d.survey_id`.execute(db);
  await sql`
    CREATE OR REPLACE VIEW latest_diagnoses AS
    SELECT DISTINCT ON (source, survey_id, domain) *
      FROM diagnosis_results
     ORDER BY source, survey_id, domain, observed_at DESC, id DESC`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  // The findings back in their old shape. The views keep their last column (a view may not drop one without
  // being rebuilt with everything that depends on it; an extra column changes no figure).
  await sql`
    UPDATE diagnoses SET findings = jsonb_build_object(
        'dmarcPolicy', dmarc_policy, 'mtaSts', mta_sts, 'tlsRpt', tls_rpt,
        'tlsVersions', to_jsonb(tls_versions), 'certProblems', to_jsonb(cert_problems),
        'nullMx', coalesce(findings->'mx'->>'value' = 'null', false))
     WHERE NOT findings ? 'dmarcPolicy'`.execute(db);
}
