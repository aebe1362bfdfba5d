// Issue 18: a report over 10,000,000 stored diagnoses in < 5 s. report_diagnoses() picks each domain's latest
// diagnosis in the period from a narrow index first (domain, observed_at, id: an index-only scan of the
// period, sorted in memory) and only then reads the winners' rows, instead of sorting every diagnosis of the
// period with all its columns (which spilled to disk at 2,000,000 diagnoses a year). The set is the same: the
// same filters, the same order of preference (observed_at DESC, id DESC), each domain once (BENCHMARKS.md).
import { sql, type Kysely } from 'kysely';
import { latestPerDomain } from './20261129000100_views.ts';

/**
 * Both overloads of report_diagnoses(), with the body `body(provenance)`: the original one (source and survey,
 * both optional) and the one 20261201000100_test_mail_security added with the provenance filter.
 */
export async function createReportDiagnoses(db: Kysely<any>, body: (provenance: boolean) => string): Promise<void> {
  for (const provenance of [false, true]) {
    const parameters = provenance
      ? 'only_source diagnosis_source, only_survey text, only_provenance text[]'
      : 'only_source diagnosis_source DEFAULT NULL, only_survey text DEFAULT NULL';
    await sql`
    CREATE OR REPLACE FUNCTION report_diagnoses(period_from timestamptz, period_to timestamptz,
                                                ${sql.raw(parameters)})
    RETURNS SETOF diagnosis_results
    LANGUAGE sql STABLE AS $$
      ${sql.raw(body(provenance))}
    $$`.execute(db);
  }
}

/** report_diagnoses(), both overloads, picking from the narrow index first (this migration). */
export async function createLatestFunctions(db: Kysely<any>): Promise<void> {
  await createReportDiagnoses(db, (provenance) => `SELECT r.* FROM (
      ${latestPerDomain('d.id', 'diagnoses', 'd', provenance)}) latest JOIN diagnosis_results r ON r.id = latest.id`);
}

/**
 * report_diagnoses() as 20261129000100_views and 20261201000100_test_mail_security made it: one DISTINCT ON
 * over every diagnosis of the period with all its columns (down(), and the benchmark's "before").
 */
export async function createLegacyFunctions(db: Kysely<any>): Promise<void> {
  await createReportDiagnoses(db, (provenance) => latestPerDomain('r.*', 'diagnosis_results', 'r', provenance));
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
