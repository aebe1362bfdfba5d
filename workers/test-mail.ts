// The `test-mail` job: one received mail becomes one diagnosis (idempotent per mail, so a retried job or a
// sweeper's duplicate writes once), then the result mail goes back to the sender unless turned off.
import { UnrecoverableError } from 'bullmq';
import type { JobPayloads } from './jobs.ts';
import type { WorkerContext } from './context.ts';
import { insertDiagnosis } from '../lib/diagnosis.ts';
import { collectTestMailObservations, judgeTestMail, type TestMailObservations } from '../lib/test-mail.ts';
import { loadTestMail, setResultMailStatus, type ResultMailStatus } from '../receiver/store.ts';
import { findRequest, domainOfAddress } from '../receiver/tokens.ts';
import { composeResultMail, deliverResultMail, type DiagnosisView } from '../receiver/result-mail.ts';
import { mxRows } from '../lib/checks/mx.ts';
import { collectDomain, transientUnknowns } from '../lib/diagnose.ts';
import type { Diagnosis } from '../lib/diagnosis.ts';

export interface ProcessTestMailResult {
  diagnosisId: string | null;
  inserted: boolean;
  resultMail: ResultMailStatus | null;
  /** Set instead of a diagnosis when the pass had transient unknowns and `retryTransient` asked to wait. */
  transient?: string[];
}

export interface ProcessTestMailOptions {
  /** Overrides config.resultMail (the `--no-result-mail` switch). */
  resultMail?: boolean;
  /**
   * true: a diagnosis with transient unknowns (timeout, SERVFAIL, 4xx, unreachable) is not stored; the result
   * says which, and the caller tries again later (CRITERIA.md: transient failures are retried before they are
   * final). @defaultValue false (store whatever this pass found)
   */
  retryTransient?: boolean;
}

export async function processTestMail(
  data: JobPayloads['test-mail'],
  ctx: Pick<WorkerContext, 'db' | 'config' | 'logger' | 'deps'>,
  opts: ProcessTestMailOptions = {},
): Promise<ProcessTestMailResult> {
  const { db, config, logger } = ctx;
  if (!/^\d+$/.test(String(data?.testMailId ?? ''))) throw new UnrecoverableError(`test-mail job without a valid testMailId: ${JSON.stringify(data)}`);
  const mail = await loadTestMail(db, data.testMailId);
  if (!mail) {
    logger.warn({ testMailId: data.testMailId }, 'test mail no longer stored; nothing to diagnose');
    return { diagnosisId: null, inserted: false, resultMail: null };
  }
  const request = mail.token ? await findRequest(db, mail.token) : null;
  // The sender's domain is what we diagnose; a request's domain stands in only when the mail names none.
  const domain = mail.domain ?? request?.domain ?? null;
  if (!domain) {
    logger.info({ testMailId: mail.id }, 'test mail without a sender domain (postmaster mail or no address): not diagnosed');
    return { diagnosisId: null, inserted: false, resultMail: null };
  }

  const existing = await db.selectFrom('diagnoses').select('id').where('test_mail_id', '=', mail.id).executeTakeFirst();
  let diagnosisId: string;
  let inserted = false;
  let diagnosis: Diagnosis | null = null;
  if (existing) {
    diagnosisId = String(existing.id);
  } else {
    const observations = await collectTestMailObservations({ ...mail, domain }, ctx.deps, {
      requestDomain: request?.domain ?? null,
      mta: config.receiverHostname,
    });
    diagnosis = judgeTestMail(observations, mail.receivedAt);
    const transient = opts.retryTransient ? transientUnknowns(diagnosis) : [];
    if (transient.length > 0) {
      logger.info({ testMailId: mail.id, domain, transient }, 'test mail has transient unknowns: will try again');
      return { diagnosisId: null, inserted: false, resultMail: null, transient };
    }
    const r = await insertDiagnosis(db, diagnosis, { source: 'test-mail', testMailId: mail.id });
    diagnosisId = r.id;
    inserted = r.inserted;
    logger.info({ testMailId: mail.id, diagnosisId, domain, verdict: diagnosis.verdict.verdict }, 'test mail diagnosed');
  }

  // The result mail goes out once: a retried job whose mail was already answered does not answer again.
  let resultMail: ResultMailStatus | null = mail.resultMail;
  if (!resultMail) {
    const at = (config.clock ?? new Date()).toISOString();
    const enabled = opts.resultMail ?? config.resultMail;
    if (!enabled) resultMail = { status: 'disabled', to: mail.mailFrom, at };
    else if (!mail.mailFrom) {
      // RFC 3834 §2: never respond to a message with a null reverse-path.
      resultMail = { status: 'skipped', to: null, at, detail: 'null reverse-path' };
    } else {
      diagnosis ??= await reload(ctx, diagnosisId);
      resultMail = await sendResult(ctx, diagnosisId, diagnosis, mail.mailFrom, at);
    }
    await setResultMailStatus(db, mail.id, resultMail);
    logger.info({ testMailId: mail.id, resultMail }, 'result mail');
  }
  return { diagnosisId, inserted, resultMail };
}

async function reload(ctx: Pick<WorkerContext, 'db'>, id: string): Promise<Diagnosis> {
  const row = await ctx.db.selectFrom('diagnoses').select(['observations', 'observed_at']).where('id', '=', id).executeTakeFirstOrThrow();
  return judgeTestMail(row.observations as TestMailObservations, new Date(row.observed_at));
}

function viewOf(id: string, d: Diagnosis): DiagnosisView {
  return {
    id,
    source: d.source,
    domain: d.domain,
    observedAt: d.observedAt,
    verdict: d.verdict.verdict,
    criteria: d.criteria,
    verdictReasons: d.verdict.reasons,
    ignored: d.verdict.ignored,
  };
}

async function sendResult(
  ctx: Pick<WorkerContext, 'config' | 'deps'>,
  id: string,
  d: Diagnosis,
  to: string,
  at: string,
): Promise<ResultMailStatus> {
  const toDomain = domainOfAddress(to);
  if (!toDomain) return { status: 'skipped', to, at, detail: 'MAIL FROM has no usable domain' };
  // The MX of the diagnosed domain is already in the observations; another domain (rare) is looked up.
  const obs = d.observations as TestMailObservations;
  let dns = obs.dns;
  if (toDomain !== d.domain) dns = await collectDomain(toDomain, ctx.deps);
  const targets = dns.valid ? mxRows(dns.mx).filter((r): r is typeof r & { ip: string } => !!r.ip).map((r) => ({ host: r.host, ip: r.ip })) : [];
  const r = await deliverResultMail(to, targets, composeResultMail(viewOf(id, d)), {
    from: `mailcensus <check@${ctx.config.receiverDomain}>`,
    ehloName: ctx.config.receiverHostname,
    port: ctx.config.smtpPort,
    timeoutMs: ctx.config.smtpCommandTimeoutMs,
  });
  return { status: r.status, to, at, detail: `${r.detail}${r.tls === null ? '' : r.tls ? ' [TLS]' : ' [no TLS]'}` };
}
