// Issue 18, ingest of 1,000,000 domains: less Postgres work per row written into survey_domains, the bound of
// the ingest (BENCHMARKS.md, ingest: the COPY backend spent 45% in the primary-key btree, comparing domains
// with strcoll, and 16% in the reference check's statement trigger).
//
// 1. survey_domains.domain is COLLATE "C": its primary key (survey_id, domain) compares with memcmp instead of
//    strcoll. Byte order is the right order for what is stored there: ingest keeps a domain only as lower-case
//    A-labels (ingest/normalize.ts, letters, digits, hyphen and dot), which are ASCII, so "C" and every
//    deterministic collation agree on which domains are equal (the key means the same). Their order agrees
//    with the database's when that is C.UTF-8 (glibc sorts it by code point, which is byte order for UTF-8),
//    so on such a database nothing that sorts by survey_domains.domain changes: the feeder's keyset
//    (workers/run.ts) and `mailcensus run --dry-run`'s list. On a database created with a linguistic
//    collation those two now come in byte order ('a-b.jp' < 'a.jp' < 'aa.jp'; glibc's en_US.UTF-8 puts
//    letters before punctuation: 'aa.jp' < 'a-b.jp' < 'a.jp'), and a run whose feeder is mid-sweep then
//    skips or repeats part of that sweep; its next sweep enqueues what is still undiagnosed (diagnoses are
//    unique per run and domain). Reports and CSVs sort diagnoses.domain, which keeps the database's collation.
//    No view, rule or index other than the key uses the column (checked with pg_depend), so none is
//    dropped and recreated. A comparison with another table's domain column now resolves to "C" (a column's
//    collation wins over the default), which that table's default-collation index cannot serve: the
//    feeder's two such comparisons name COLLATE "default" (workers/run.ts).
// 2. survey_domains_check_survey(), the statement trigger that stands for the foreign key to surveys
//    (20261129000200_ingest): the same surveys are locked FOR KEY SHARE, the same existence test decides,
//    the same error (SQLSTATE 23503, the same message and DETAIL naming the first offending row's survey_id
//    in statement order) is raised. What changes is the work: the transition table is read once, for the
//    distinct survey ids (one, for an ingest), and the existence test runs on those; it was a second pass
//    of 1,000,000 surveys_pkey probes (the planner takes a nested-loop anti join for LIMIT 1), 1.0-1.9 s
//    of the COPY's end against 0.2-0.4 s now. That row is looked for again only on the way to the error. (The
//    CONTEXT psql prints names the RAISE at line 12 of the function instead of 9; nothing here reads it.)
import { sql, type Kysely } from 'kysely';
import { CHECK_SURVEY } from './20261129000200_ingest.ts';

const CHECK_SURVEY_ONE_PASS = `
    DECLARE
      referenced integer[];
      absent integer[];
      missing integer;
    BEGIN
      referenced := ARRAY(SELECT DISTINCT n.survey_id FROM new_rows n);
      PERFORM 1 FROM surveys s WHERE s.id = ANY (referenced) FOR KEY SHARE;
      absent := ARRAY(SELECT r.id FROM unnest(referenced) AS r (id) WHERE NOT EXISTS (SELECT 1 FROM surveys s WHERE s.id = r.id));
      IF cardinality(absent) > 0 THEN
        SELECT n.survey_id INTO missing FROM new_rows n WHERE n.survey_id = ANY (absent) LIMIT 1;
        RAISE EXCEPTION 'insert or update on table "survey_domains" violates the survey reference'
          USING ERRCODE = 'foreign_key_violation', DETAIL = format('Key (survey_id)=(%s) is not present in table "surveys".', missing);
      END IF;
      RETURN NULL;
    END `;

async function setCheck(db: Kysely<any>, body: string): Promise<void> {
  await sql.raw(`CREATE OR REPLACE FUNCTION survey_domains_check_survey() RETURNS trigger LANGUAGE plpgsql AS $$${body}$$`).execute(db);
}

export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE survey_domains ALTER COLUMN domain TYPE text COLLATE "C"`.execute(db);
  await setCheck(db, CHECK_SURVEY_ONE_PASS);
}

export async function down(db: Kysely<any>): Promise<void> {
  await setCheck(db, CHECK_SURVEY);
  await sql`ALTER TABLE survey_domains ALTER COLUMN domain TYPE text COLLATE "default"`.execute(db);
}
