// The survey listing: one row per survey with its domain count and its latest ingest.
import type postgres from 'postgres';

export interface SurveyRow {
  id: number;
  name: string;
  created_at: Date;
  domains: number;
  ingests: number;
  last_ingest: Date | null;
}

export async function listSurveys(sql: postgres.Sql): Promise<SurveyRow[]> {
  return [...await sql<SurveyRow[]>`
    SELECT s.id, s.name, s.created_at,
           (SELECT count(*)::int FROM survey_domains d WHERE d.survey_id = s.id) AS domains,
           (SELECT count(*)::int FROM ingests i WHERE i.survey_id = s.id) AS ingests,
           (SELECT max(finished_at) FROM ingests i WHERE i.survey_id = s.id) AS last_ingest
    FROM surveys s ORDER BY s.name`];
}
