// A diagnosis as every producer (survey worker, test-mail worker, re-judging) hands it to storage, and the one
// function that stores it. Idempotent: one row per (run, domain) and per received mail.
import type { Db } from './db.ts';
import type { CriterionFindings, Source } from './criteria.ts';
import { CRITERIA } from './criteria.ts';
import type { VerdictResult } from './verdict.ts';

/** Findings beyond MSchecker's criteria; they never change the verdict but reports count them. */
export interface ExtraFindings {
  /** DMARC `p=` of the domain's record (RFC 7489 §6.3), or what stood in the way of reading one. */
  dmarcPolicy: 'none' | 'quarantine' | 'reject' | 'absent' | 'invalid' | 'unknown';
  mtaSts: 'present' | 'absent' | 'invalid' | 'unknown';
  tlsRpt: 'present' | 'absent' | 'invalid' | 'unknown';
  /** TLS versions negotiated with the MX hosts (and with the sender, for a test mail). */
  tlsVersions: string[];
  /** Certificate problems seen on MX hosts: self_signed, expired, wrong_name, untrusted. */
  certProblems: string[];
  nullMx: boolean;
}

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
  findings: ExtraFindings;
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
  return db.transaction().execute(async (trx) => {
    const row: Record<string, unknown> = {
      source: d.source,
      domain: d.domain,
      survey_id: origin.source === 'scan' ? origin.surveyId : origin.surveyId ?? null,
      run_id: origin.source === 'scan' ? origin.runId : null,
      test_mail_id: origin.source === 'test-mail' ? origin.testMailId : null,
      observed_at: d.observedAt,
      verdict: d.verdict.verdict,
      verdict_reasons: { proven: d.verdict.proven, reasons: d.verdict.reasons, ignored: d.verdict.ignored },
      dmarc_policy: d.findings.dmarcPolicy,
      mta_sts: d.findings.mtaSts,
      tls_rpt: d.findings.tlsRpt,
      tls_versions: d.findings.tlsVersions,
      cert_problems: d.findings.certProblems,
      findings: d.findings,
      observations: d.observations,
      rules_version: d.verdict.rulesVersion,
    };
    for (const c of CRITERIA) {
      row[c] = d.criteria[c].status;
      row[`${c}_reason`] = d.criteria[c].reason;
    }
    const inserted = await trx
      .insertInto('diagnoses')
      .values(row as never)
      .onConflict((oc) =>
        origin.source === 'scan'
          ? oc.columns(['run_id', 'domain']).where('run_id', 'is not', null).doNothing()
          : oc.column('test_mail_id').where('test_mail_id', 'is not', null).doNothing(),
      )
      .returning('id')
      .executeTakeFirst();
    if (!inserted) {
      const existing = await trx
        .selectFrom('diagnoses')
        .select('id')
        .$if(origin.source === 'scan', (q) => q.where('run_id', '=', (origin as { runId: number }).runId).where('domain', '=', d.domain))
        .$if(origin.source === 'test-mail', (q) => q.where('test_mail_id', '=', (origin as { testMailId: string }).testMailId))
        .executeTakeFirstOrThrow();
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
