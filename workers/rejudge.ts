// Re-judging: stored raw observations are evaluated again with the current rules (lib/diagnose.ts
// `rejudge`), without probing. Each diagnosis records the rules version that judged it and when.
import { sql } from 'kysely';
import type pino from 'pino';
import type { Db } from '../lib/db.ts';
import { CRITERIA } from '../lib/criteria.ts';
import { judgementColumns } from '../lib/diagnosis.ts';
import type { rejudge } from '../lib/checks/judge.ts';

/** What re-judging needs: lib/checks/judge.ts (the shipped rules), or a test's rules through it. */
export interface Rejudger {
  rejudge: (stored: Parameters<typeof rejudge>[0]) => ReturnType<typeof rejudge>;
}


export interface RejudgeScope {
  runId?: number;
  /** Diagnoses observed in this calendar year (UTC). */
  year?: number;
}

export interface RejudgeResult {
  examined: number;
  /** Diagnoses whose verdict or any criterion status changed. */
  changed: number;
  verdictChanges: Record<string, number>;
  rulesVersion: number | null;
}

export async function rejudgeDiagnoses(db: Db, diag: Rejudger, scope: RejudgeScope, logger?: pino.Logger): Promise<RejudgeResult> {
  const result: RejudgeResult = { examined: 0, changed: 0, verdictChanges: {}, rulesVersion: null };
  let after = '0';
  // Keyset pages by id, bounded in count: a year of diagnoses is re-judged in pages of 500.
  for (let page = 0; page < 100_000; page++) {
    let q = db
      .selectFrom('diagnoses')
      .select(['id', 'source', 'domain', 'observations', 'observed_at', 'verdict', ...CRITERIA])
      .where(sql<boolean>`id > ${after}::bigint`)
      .orderBy('id')
      .limit(500);
    if (scope.runId !== undefined) q = q.where('run_id', '=', scope.runId);
    if (scope.year !== undefined) {
      q = q
        .where('observed_at', '>=', new Date(Date.UTC(scope.year, 0, 1)))
        .where('observed_at', '<', new Date(Date.UTC(scope.year + 1, 0, 1)));
    }
    const rows = await q.execute();
    if (rows.length === 0) break;
    await db.transaction().execute(async (trx) => {
      for (const row of rows) {
        const d = diag.rejudge({ source: row.source, domain: row.domain, observations: row.observations, observed_at: row.observed_at });
        const set = { ...judgementColumns(d), judged_at: new Date() };
        const changed = row.verdict !== d.verdict.verdict || CRITERIA.some((c) => row[c] !== d.criteria[c].status);
        await trx.updateTable('diagnoses').set(set).where('id', '=', row.id).execute();
        result.examined++;
        result.rulesVersion = d.verdict.rulesVersion;
        if (changed) {
          result.changed++;
          const k = `${row.verdict}->${d.verdict.verdict}`;
          if (row.verdict !== d.verdict.verdict) result.verdictChanges[k] = (result.verdictChanges[k] ?? 0) + 1;
          logger?.debug({ id: row.id, domain: row.domain, from: row.verdict, to: d.verdict.verdict }, 'diagnosis re-judged');
        }
      }
    });
    after = rows[rows.length - 1].id;
  }
  logger?.info({ ...scope, ...result }, 'rejudge finished');
  return result;
}
