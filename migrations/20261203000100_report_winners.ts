// Issue 18: the report over 10,000,000 stored diagnoses. report_diagnoses() still picks each domain's latest
// diagnosis in the period from the narrow index (20261202000500_report_latest), but reads the winners' rows
// by their ids (a LATERAL subquery per winner, in id order: one primary-key probe each) instead of joining
// them: the planner took a merge join over the whole primary key from its first id, which read every
// diagnosis older than the last winner (5,900,000 heap rows for 1,000,000 winners in the benchmark) and
// spent more than the pick itself. OFFSET 0 keeps the subquery from being flattened back into that join;
// `id = ANY (ARRAY(pick))` was tried and dropped (the planner then estimated 10 rows and chose a sort and
// group aggregate for the previous period's tally). The set is the same: the same pick (latestPerDomain:
// filters, order of preference), each domain once (BENCHMARKS.md, report).
import type { Kysely } from 'kysely';
import { latestPerDomain } from './20261129000100_views.ts';
import { createLatestFunctions, createReportDiagnoses } from './20261202000500_report_latest.ts';

/** report_diagnoses(), both overloads, reading the winners of the narrow pick by id (this migration). */
export async function createWinnersFunctions(db: Kysely<any>): Promise<void> {
  await createReportDiagnoses(db, (provenance) => `SELECT r.* FROM (SELECT latest.id FROM (
      ${latestPerDomain('d.id', 'diagnoses', 'd', provenance)}) latest ORDER BY latest.id) winner,
      LATERAL (SELECT * FROM diagnosis_results r WHERE r.id = winner.id OFFSET 0) r`);
}

export async function up(db: Kysely<any>): Promise<void> {
  await createWinnersFunctions(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await createLatestFunctions(db);
}
