// Issue 14: one contract per check. `diagnoses.findings` now holds every finding of the check registry by its
// id (`{ "<id>": { "status", "reason", "value", "detail"? } }`, lib/checks/registry.ts); rows judged before keep
// their values, converted from the legacy columns (status and reason unknown until `mailcensus rejudge`).
// The report set gains the column, so reports count a new finding without a migration of its own.
import { sql, type Kysely } from 'kysely';
import { diagnosisResultsSelect, LATEST_DIAGNOSES_SELECT } from './20261129000100_views.ts';

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
  await sql.raw(`CREATE OR REPLACE VIEW diagnosis_results AS ${diagnosisResultsSelect(['d.provenance', 'd.findings'])}`).execute(db);
  await sql.raw(`CREATE OR REPLACE VIEW latest_diagnoses AS ${LATEST_DIAGNOSES_SELECT}`).execute(db);
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
