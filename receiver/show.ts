// Reads one stored diagnosis for `mailcensus show`: the rendering view, the JSON, and the test mail's result
// mail status when it came from a test mail.
import { sql } from 'kysely';
import type { Db } from '../lib/db.ts';
import { CRITERIA, type Criterion, type CriterionFindings, type Finding, type Source } from '../lib/criteria.ts';
import type { Verdict } from '../lib/verdict.ts';
import type { DiagnosisView } from './result-mail.ts';
import type { ResultMailStatus } from './store.ts';

/** One stored diagnosis as `show --json` prints it; the web pages and the API take it from here too. */
export interface StoredDiagnosisJson {
  id: string;
  source: Source;
  domain: string;
  observedAt: string;
  verdict: Verdict;
  verdictReasons: unknown;
  criteria: CriterionFindings;
  findings: unknown;
  rulesVersion: number;
  judgedAt: string;
  testMail: Record<string, unknown> | null;
  observations: unknown;
}

export async function loadDiagnosisView(
  db: Db,
  id: string,
): Promise<{ view: DiagnosisView; json: StoredDiagnosisJson; resultMail: ResultMailStatus | null } | null> {
  const row = await db.selectFrom('diagnoses').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) return null;
  const criteria = {} as Record<Criterion, Finding>;
  const obsDetails = await detailsOf(row);
  for (const c of CRITERIA) {
    const status = row[c];
    const reason = row[`${c}_reason` as `${Criterion}_reason`];
    criteria[c] = { status, reason, ...(obsDetails?.[c] ? { detail: obsDetails[c] } : {}) };
  }
  const vr = (row.verdict_reasons ?? {}) as { reasons?: { criterion: Criterion; reason: string; detail?: string }[]; ignored?: Criterion[] };
  // The details (human sentences) are in verdict_reasons for the criteria that made the verdict.
  for (const r of vr.reasons ?? []) if (r.detail && !criteria[r.criterion].detail) criteria[r.criterion].detail = r.detail;
  let resultMail: ResultMailStatus | null = null;
  let testMail: Record<string, unknown> | null = null;
  if (row.test_mail_id) {
    const t = await sql<{ id: string; received_at: Date; client_ip: string; helo: string | null; mail_from: string | null; token: string | null; tls: unknown; size: number; result_mail: ResultMailStatus | null }>`
      SELECT id, received_at, host(client_ip) AS client_ip, helo, mail_from, token, tls, size, result_mail
      FROM test_mails WHERE id = ${row.test_mail_id}`.execute(db);
    const r = t.rows[0];
    if (r) {
      resultMail = r.result_mail;
      testMail = { ...r, id: String(r.id) };
    }
  }
  const view: DiagnosisView = {
    id: String(row.id),
    source: row.source,
    domain: row.domain,
    observedAt: new Date(row.observed_at),
    verdict: row.verdict,
    criteria,
    verdictReasons: vr.reasons ?? [],
    ignored: vr.ignored ?? [],
  };
  const json: StoredDiagnosisJson = {
    id: String(row.id),
    source: row.source,
    domain: row.domain,
    observedAt: view.observedAt.toISOString(),
    verdict: row.verdict,
    verdictReasons: row.verdict_reasons,
    criteria,
    findings: row.findings,
    rulesVersion: row.rules_version,
    judgedAt: new Date(row.judged_at).toISOString(),
    testMail,
    observations: row.observations,
  };
  return { view, json, resultMail };
}

/**
 * The human sentences behind each criterion are not columns: judge the stored observations again (pure, no
 * I/O) and take a detail only where the stored status and reason are still what the rules say.
 */
async function detailsOf(row: { source: 'scan' | 'test-mail'; domain: string; observations: unknown; observed_at: Date } & Record<string, unknown>): Promise<Partial<Record<Criterion, string>> | null> {
  try {
    const { rejudge } = await import('../lib/diagnose.ts');
    const d = rejudge({ source: row.source, domain: row.domain, observations: row.observations, observed_at: new Date(row.observed_at) });
    const out: Partial<Record<Criterion, string>> = {};
    for (const c of CRITERIA) {
      const f = d.criteria[c];
      if (f.detail && f.status === row[c] && f.reason === row[`${c}_reason`]) out[c] = f.detail;
    }
    return out;
  } catch {
    return null;
  }
}
