// Issue 12: the test-mail service on the internet. Provenance of every test-mail diagnosis (CRITERIA.md
// "Test-mail provenance"), one row per result mail sent or not sent (the caps count these, and every unsent
// one says why), test mails that were not diagnosed on purpose (daily cap, opt-out), the raw-mail retention
// (bytes pruned, diagnosis kept) and the requester's own address for the per-request token.
import { sql, type Kysely } from 'kysely';
import { diagnosisResultsSelect, LATEST_DIAGNOSES_SELECT, latestPerDomain } from './20261129000100_views.ts';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE diagnoses ADD COLUMN provenance text
    CHECK (provenance IN ('requested', 'authenticated', 'unverified'))`.execute(db);
  await sql`COMMENT ON COLUMN diagnoses.provenance IS
    'Test-mail diagnoses: requested (per-request address naming this domain), authenticated (SPF pass for the MAIL FROM domain or an aligned verifying DKIM signature) or unverified. NULL for scans.'`.execute(db);
  await sql`CREATE INDEX diagnoses_test_mail_domain ON diagnoses (domain, observed_at) WHERE source = 'test-mail'`.execute(db);

  // The view gains the column at its end (CREATE OR REPLACE VIEW may only append), so every report set has it.
  await sql.raw(`CREATE OR REPLACE VIEW diagnosis_results AS ${diagnosisResultsSelect(['d.provenance'])}`).execute(db);
  await sql.raw(`CREATE OR REPLACE VIEW latest_diagnoses AS ${LATEST_DIAGNOSES_SELECT}`).execute(db);

  // report_diagnoses restricted to provenance classes before the latest-per-domain pick, so a domain counts
  // with its latest diagnosis of those classes (`report --provenance requested,authenticated`). A separate
  // overload with no default for the fifth argument, so every four-argument call keeps meaning what it did.
  await sql`
    CREATE FUNCTION report_diagnoses(period_from timestamptz, period_to timestamptz,
                                     only_source diagnosis_source, only_survey text, only_provenance text[])
    RETURNS SETOF diagnosis_results
    LANGUAGE sql STABLE AS $$
      ${sql.raw(latestPerDomain('r.*', 'diagnosis_results', 'r', true))}
    $$`.execute(db);

  await sql`ALTER TABLE test_mails ALTER COLUMN raw DROP NOT NULL`.execute(db);
  await sql`ALTER TABLE test_mails ADD COLUMN raw_pruned_at timestamptz`.execute(db);
  /** Why a stored mail was deliberately not diagnosed: domain_daily_cap, opted_out. */
  await sql`ALTER TABLE test_mails ADD COLUMN not_diagnosed text`.execute(db);
  await sql`CREATE INDEX test_mails_retention ON test_mails (received_at) WHERE raw IS NOT NULL`.execute(db);

  /** Where the result mail of a per-request token goes (the requester proved this address, e.g. on the web). */
  await sql`ALTER TABLE diagnosis_requests ADD COLUMN reply_to text`.execute(db);

  await sql`
    CREATE TABLE result_mails (
      id bigserial PRIMARY KEY,
      test_mail_id bigint NOT NULL REFERENCES test_mails (id) ON DELETE CASCADE,
      recipient text,
      recipient_domain text,
      status text NOT NULL CHECK (status IN ('sent', 'failed', 'disabled', 'skipped')),
      reason text,
      detail text,
      created_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`CREATE UNIQUE INDEX result_mails_one_per_mail ON result_mails (test_mail_id)`.execute(db);
  await sql`CREATE INDEX result_mails_recipient ON result_mails (recipient, created_at) WHERE status = 'sent'`.execute(db);
  await sql`CREATE INDEX result_mails_domain ON result_mails (recipient_domain, created_at) WHERE status = 'sent'`.execute(db);
  await sql`CREATE INDEX result_mails_sent ON result_mails (created_at) WHERE status = 'sent'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE IF EXISTS result_mails`.execute(db);
  await sql`ALTER TABLE diagnosis_requests DROP COLUMN IF EXISTS reply_to`.execute(db);
  await sql`DROP INDEX IF EXISTS test_mails_retention`.execute(db);
  await sql`ALTER TABLE test_mails DROP COLUMN IF EXISTS not_diagnosed`.execute(db);
  await sql`ALTER TABLE test_mails DROP COLUMN IF EXISTS raw_pruned_at`.execute(db);
  await sql`DROP FUNCTION IF EXISTS report_diagnoses(timestamptz, timestamptz, diagnosis_source, text, text[])`.execute(db);
  await sql`DROP VIEW IF EXISTS latest_diagnoses`.execute(db);
  await sql`DROP VIEW IF EXISTS diagnosis_results CASCADE`.execute(db);
  await sql`DROP INDEX IF EXISTS diagnoses_test_mail_domain`.execute(db);
  await sql`ALTER TABLE diagnoses DROP COLUMN IF EXISTS provenance`.execute(db);
  // The views as 20261129000100 made them.
  const views = await import('./20261129000100_views.ts');
  await views.up(db);
}
