// A diagnosis as every producer (survey worker, test-mail worker, re-judging) hands it to storage, and the one
// function that stores it. Idempotent: one row per (run, domain) and per received mail.
import { sql } from 'kysely';
import type { Db } from './db.ts';
import type { Criterion, CriterionFindings, Source, Status } from './criteria.ts';
import { CRITERIA } from './criteria.ts';
import type { VerdictResult } from './verdict.ts';
import type { CheckResult, FindingCheck } from './checks/contract.ts';
import { FINDING_CHECKS } from './checks/registry.ts';

/** The findings beyond MSchecker's criteria, by check id (lib/checks/registry.ts); they never change the verdict. */
export type FindingResults = Record<string, CheckResult>;

export interface MxRow {
  preference: number;
  host: string;
  ip: string | null;
}

export interface Diagnosis {
  source: Source;
  domain: string;
  observedAt: Date;
  criteria: CriterionFindings;
  verdict: VerdictResult;
  findings: FindingResults;
  /** Raw observations (JSON-serialisable): what re-judging reads. */
  observations: unknown;
  mx: MxRow[];
}

export type DiagnosisOrigin =
  | { source: 'scan'; runId: number; surveyId: number }
  | { source: 'test-mail'; testMailId: string; surveyId?: number | null };

/**
 * Stores a diagnosis once: a second call for the same run and domain (a retried job) or the same test mail
 * returns the id of the row already there and writes nothing.
 */
export async function insertDiagnosis(db: Db, d: Diagnosis, origin: DiagnosisOrigin): Promise<{ id: string; inserted: boolean }> {
  if (origin.source === 'scan') {
    // A scan is stored by the statement the survey workers batch (insertScanDiagnoses), here with one item.
    const [inserted] = await insertScanDiagnoses(db, [{ diagnosis: d, runId: origin.runId, surveyId: origin.surveyId }]);
    const { id } = await db.selectFrom('diagnoses').select('id').where('run_id', '=', origin.runId).where('domain', '=', d.domain).executeTakeFirstOrThrow();
    return { id, inserted: inserted! };
  }
  return db.transaction().execute(async (trx) => {
    const row = {
      source: d.source,
      domain: d.domain,
      survey_id: origin.surveyId ?? null,
      run_id: null,
      test_mail_id: origin.testMailId,
      observed_at: d.observedAt,
      observations: d.observations,
      ...judgementColumns(d),
    };
    const inserted = await trx
      .insertInto('diagnoses')
      .values(row)
      .onConflict((oc) => oc.column('test_mail_id').where('test_mail_id', 'is not', null).doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) {
      const existing = await trx.selectFrom('diagnoses').select('id').where('test_mail_id', '=', origin.testMailId).executeTakeFirstOrThrow();
      return { id: existing.id, inserted: false };
    }
    if (d.mx.length > 0) {
      await trx
        .insertInto('diagnosis_mx')
        .values(d.mx.map((m) => ({ diagnosis_id: inserted.id, preference: m.preference, host: m.host, ip: m.ip })))
        .execute();
    }
    return { id: inserted.id, inserted: true };
  });
}

export interface ScanDiagnosis {
  diagnosis: Diagnosis;
  runId: number;
  surveyId: number;
}

/**
 * Stores many scans' diagnoses and their MX rows in one statement (one round trip, one transaction: all or
 * nothing), once per run and domain as insertDiagnosis does. Returns, per item, whether its row was written
 * now (false: it was there already, or an earlier item of the same call had the same run and domain).
 */
export async function insertScanDiagnoses(db: Db, items: ScanDiagnosis[]): Promise<boolean[]> {
  if (items.length === 0) return [];
  // One row per run and domain (the same domain twice in one call: a retried job met its abandoned attempt).
  const key = (i: ScanDiagnosis) => `${i.runId} ${i.diagnosis.domain}`;
  const firstOf = new Map<string, ScanDiagnosis>();
  for (const i of items) if (!firstOf.has(key(i))) firstOf.set(key(i), i);
  const unique = [...firstOf.values()];
  const rows = unique.map(({ diagnosis: d, runId, surveyId }) => ({
    source: d.source,
    domain: d.domain,
    survey_id: surveyId,
    run_id: runId,
    observed_at: d.observedAt.toISOString(),
    observations: d.observations,
    ...judgementColumns(d),
  }));
  const mx = unique.flatMap(({ diagnosis: d, runId }) => d.mx.map((m) => ({ run_id: runId, domain: d.domain, preference: m.preference, host: m.host, ip: m.ip })));
  const columns = sql.join(Object.keys(rows[0]!).map((c) => sql.ref(c)));
  // jsonb_populate_recordset types every field by its column (enums, text[], jsonb, timestamptz), so the
  // batch is one parameter; the MX rows join the ids of the rows this statement inserted.
  const res = await sql<{ run_id: number; domain: string }>`
    WITH ins AS (
      INSERT INTO diagnoses (${columns})
      SELECT ${columns} FROM jsonb_populate_recordset(NULL::diagnoses, ${JSON.stringify(rows)}::text::jsonb)
      ON CONFLICT (run_id, domain) WHERE run_id IS NOT NULL DO NOTHING
      RETURNING id, run_id, domain
    ), mx AS (
      INSERT INTO diagnosis_mx (diagnosis_id, preference, host, ip)
      SELECT ins.id, m.preference, m.host, m.ip
        FROM jsonb_to_recordset(${JSON.stringify(mx)}::text::jsonb) AS m(run_id integer, domain text, preference integer, host text, ip inet)
        JOIN ins ON ins.run_id = m.run_id AND ins.domain = m.domain
      RETURNING 1
    )
    SELECT run_id, domain FROM ins`.execute(db);
  const written = new Set(res.rows.map((r) => `${r.run_id} ${r.domain}`));
  return items.map((i) => (firstOf.get(key(i)) === i ? written.has(key(i)) : false));
}

/**
 * What a judgement writes into its `diagnoses` row, from the registry: every criterion's status and reason
 * column, every finding under `findings.<id>` (and in its legacy column where it has one), the verdict.
 * insertDiagnosis and re-judging both write exactly these.
 */
export function judgementColumns(d: Pick<Diagnosis, 'criteria' | 'findings' | 'verdict'>) {
  const criteria = {} as Record<`${Criterion}` | `${Criterion}_reason`, string>;
  for (const c of CRITERIA) {
    criteria[c] = d.criteria[c].status;
    criteria[`${c}_reason`] = d.criteria[c].reason;
  }
  // The value of the finding that keeps a legacy column, read as that column's type (text or text[]).
  const value = (column: NonNullable<FindingCheck['column']>) => {
    const check = FINDING_CHECKS.find((f) => f.column === column);
    return check ? d.findings[check.id]?.value : undefined;
  };
  const text = (column: 'dmarc_policy' | 'mta_sts' | 'tls_rpt') => {
    const v = value(column);
    return typeof v === 'string' ? v : null;
  };
  const list = (column: 'tls_versions' | 'cert_problems') => {
    const v = value(column);
    return Array.isArray(v) ? v : [];
  };
  return {
    ...(criteria as Record<Criterion, Status> & Record<`${Criterion}_reason`, string>),
    verdict: d.verdict.verdict,
    verdict_reasons: { proven: d.verdict.proven, reasons: d.verdict.reasons, ignored: d.verdict.ignored },
    dmarc_policy: text('dmarc_policy'),
    mta_sts: text('mta_sts'),
    tls_rpt: text('tls_rpt'),
    tls_versions: list('tls_versions'),
    cert_problems: list('cert_problems'),
    findings: d.findings,
    rules_version: d.verdict.rulesVersion,
  };
}
