// Issue 18: a report over 10,000,000 stored diagnoses in < 5 s. report_diagnoses() picks each domain's latest
// diagnosis in the period from a narrow index first (domain, observed_at, id: an index-only scan of the
// period, sorted in memory) and only then reads the winners' rows, instead of sorting every diagnosis of the
// period with all its columns (which spilled to disk at 2,000,000 diagnoses a year). The set is the same: the
// same filters, the same order of preference (observed_at DESC, id DESC), each domain once (BENCHMARKS.md).
import { sql, type Kysely } from 'kysely';

/** The latest diagnosis id per domain in the period, with the function's filters (its body's one subquery). */
const latest = (provenance: boolean) => sql.raw(`
      SELECT DISTINCT ON (d.domain COLLATE "C") d.id
        FROM diagnoses d
       WHERE d.observed_at >= period_from AND d.observed_at < period_to
         AND (only_source IS NULL OR d.source = only_source)
         AND (only_survey IS NULL OR d.survey_id = (SELECT id FROM surveys WHERE name = only_survey))${provenance ? `
         AND (only_provenance IS NULL OR d.provenance = ANY (only_provenance))` : ''}
       ORDER BY d.domain COLLATE "C", d.observed_at DESC, d.id DESC`);

/** report_diagnoses(), both overloads, picking from the narrow index first (this migration). */
export async function createLatestFunctions(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE OR REPLACE FUNCTION report_diagnoses(period_from timestamptz, period_to timestamptz,
                                                only_source diagnosis_source DEFAULT NULL, only_survey text DEFAULT NULL)
    RETURNS SETOF diagnosis_results
    LANGUAGE sql STABLE AS $$
      SELECT r.* FROM (${latest(false)}) latest JOIN diagnosis_results r ON r.id = latest.id
    $$`.execute(db);
  await sql`
    CREATE OR REPLACE FUNCTION report_diagnoses(period_from timestamptz, period_to timestamptz,
                                                only_source diagnosis_source, only_survey text, only_provenance text[])
    RETURNS SETOF diagnosis_results
    LANGUAGE sql STABLE AS $$
      SELECT r.* FROM (${latest(true)}) latest JOIN diagnosis_results r ON r.id = latest.id
    $$`.execute(db);
}

/**
 * report_diagnoses() as 20261129000100_views and 20261201000100_test_mail_security made it: one DISTINCT ON
 * over every diagnosis of the period with all its columns (down(), and the benchmark's "before").
 */
export async function createLegacyFunctions(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE OR REPLACE FUNCTION report_diagnoses(period_from timestamptz, period_to timestamptz,
                                                only_source diagnosis_source DEFAULT NULL, only_survey text DEFAULT NULL)
    RETURNS SETOF diagnosis_results
    LANGUAGE sql STABLE AS $$
      SELECT DISTINCT ON (r.domain COLLATE "C") r.*
        FROM diagnosis_results r
       WHERE r.observed_at >= period_from AND r.observed_at < period_to
         AND (only_source IS NULL OR r.source = only_source)
         AND (only_survey IS NULL OR r.survey_id = (SELECT id FROM surveys WHERE name = only_survey))
       ORDER BY r.domain COLLATE "C", r.observed_at DESC, r.id DESC
    $$`.execute(db);
  await sql`
    CREATE OR REPLACE FUNCTION report_diagnoses(period_from timestamptz, period_to timestamptz,
                                                only_source diagnosis_source, only_survey text, only_provenance text[])
    RETURNS SETOF diagnosis_results
    LANGUAGE sql STABLE AS $$
      SELECT DISTINCT ON (r.domain COLLATE "C") r.*
        FROM diagnosis_results r
       WHERE r.observed_at >= period_from AND r.observed_at < period_to
         AND (only_source IS NULL OR r.source = only_source)
         AND (only_survey IS NULL OR r.survey_id = (SELECT id FROM surveys WHERE name = only_survey))
         AND (only_provenance IS NULL OR r.provenance = ANY (only_provenance))
       ORDER BY r.domain COLLATE "C", r.observed_at DESC, r.id DESC
    $$`.execute(db);
}

export async function up(db: Kysely<any>): Promise<void> {
  // What the latest-per-domain pick reads, in period order: every filter of report_diagnoses() and the sort
  // keys, so the pick is an index-only scan of the period (the heap is read for the winners only).
  await sql`CREATE INDEX diagnoses_period_latest ON diagnoses (observed_at) INCLUDE (source, survey_id, provenance, domain, id)`.execute(db);
  await createLatestFunctions(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await createLegacyFunctions(db);
  await sql`DROP INDEX IF EXISTS diagnoses_period_latest`.execute(db);
}
