// The `test-mail` job: one received mail becomes one diagnosis (idempotent per mail, so a retried job or a
// sweeper's duplicate writes once), then the result mail goes back to the sender unless turned off.
import { UnrecoverableError } from 'bullmq';
import type { JobPayloads } from './jobs.ts';
import type { WorkerContext } from './context.ts';
import { insertDiagnosis } from '../lib/diagnosis.ts';
import { collectTestMailObservations, isAuthenticated, judgeTestMail, testMailProvenance, type Provenance, type TestMailObservations } from '../lib/test-mail.ts';
import { countRecentDiagnoses, countSentResultMails, loadTestMail, recordResultMail, setNotDiagnosed, type ResultMailStatus } from '../receiver/store.ts';
import { findRequest, domainOfAddress } from '../receiver/tokens.ts';
import { composeResultMail, deliverResultMail, type DiagnosisView } from '../receiver/result-mail.ts';
import { mxRows } from '../lib/checks/mx/mx.ts';
import { collectDomain, transientUnknowns } from '../lib/diagnose.ts';
import type { Diagnosis } from '../lib/diagnosis.ts';
import { rememberDkimSelectors } from '../lib/checks/dkim/remember.ts';

export interface ProcessTestMailResult {
  diagnosisId: string | null;
  inserted: boolean;
  resultMail: ResultMailStatus | null;
  /** Set instead of a diagnosis when the pass had transient unknowns and `retryTransient` asked to wait. */
  transient?: string[];
  provenance?: Provenance;
  /** Why the mail was not diagnosed on purpose: opted_out, domain_daily_cap. */
  notDiagnosed?: string;
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

  const at = (config.clock ?? new Date()).toISOString();
  // The opt-out list holds for test mails too: nothing of an opted-out domain is probed, nothing is answered.
  if (mail.notDiagnosed || ctx.deps.outbound.domainOptedOut(domain)) {
    const reason = mail.notDiagnosed ?? 'opted_out';
    if (!mail.notDiagnosed) await setNotDiagnosed(db, mail.id, reason);
    const resultMail = mail.resultMail ?? { status: 'skipped' as const, to: mail.mailFrom, at, reason: 'not_diagnosed', detail: `not diagnosed: ${reason}` };
    if (!mail.resultMail) await recordResultMail(db, mail.id, resultMail, domainOfAddress(mail.mailFrom));
    logger.info({ testMailId: mail.id, domain, reason }, 'test mail not diagnosed');
    return { diagnosisId: null, inserted: false, resultMail, notDiagnosed: reason };
  }

  const existing = await db.selectFrom('diagnoses').select('id').where('test_mail_id', '=', mail.id).executeTakeFirst();
  let diagnosisId: string;
  let inserted = false;
  let diagnosis: Diagnosis | null = null;
  if (existing) {
    diagnosisId = String(existing.id);
  } else {
    // One domain cannot flood its own history (or the statistics) with mails: at most N diagnoses per 24 h.
    const recent = await countRecentDiagnoses(db, domain, mail.receivedAt, mail.id);
    if (recent >= config.testMailDiagnosesPerDomainDay) {
      const reason = 'domain_daily_cap';
      await setNotDiagnosed(db, mail.id, reason);
      const resultMail: ResultMailStatus = { status: 'skipped', to: mail.mailFrom, at, reason: 'not_diagnosed', detail: `${domain} already has ${recent} test-mail diagnoses in the 24 h before this mail (limit ${config.testMailDiagnosesPerDomainDay})` };
      await recordResultMail(db, mail.id, resultMail, domainOfAddress(mail.mailFrom));
      logger.info({ testMailId: mail.id, domain, recent }, 'test mail not diagnosed: daily cap of the domain reached');
      return { diagnosisId: null, inserted: false, resultMail, notDiagnosed: reason };
    }
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
    // The selectors its aligned, verifying signatures used: later scans of the domain try them first.
    if (inserted) await rememberDkimSelectors(db, observations.dkim, mail.receivedAt);
    logger.info({ testMailId: mail.id, diagnosisId, domain, verdict: diagnosis.verdict.verdict }, 'test mail diagnosed');
  }
  diagnosis ??= await reload(ctx, diagnosisId);
  const obs = diagnosis.observations as TestMailObservations;
  const provenance = testMailProvenance(obs);
  await db.updateTable('diagnoses').set({ provenance }).where('id', '=', diagnosisId).execute();

  // The result mail goes out once: a retried job whose mail was already answered does not answer again.
  let resultMail: ResultMailStatus | null = mail.resultMail;
  if (!resultMail) {
    resultMail = await decideAndSend(ctx, { id: mail.id, mailFrom: mail.mailFrom, replyTo: request && request.domain === domain ? request.reply_to : null }, diagnosisId, diagnosis, at, opts);
    await recordResultMail(db, mail.id, resultMail, domainOfAddress(resultMail.to));
    logger.info({ testMailId: mail.id, resultMail }, 'result mail');
  }
  return { diagnosisId, inserted, resultMail, provenance };
}

/**
 * The result-mail policy (README "Security"): only to a sender that proved it is the domain (SPF pass for the
 * MAIL FROM domain or an aligned verifying DKIM signature), or to the address that requested the token; never
 * to a null reverse-path (RFC 3834 §2); within the per-recipient and per-domain daily and the global hourly
 * caps. Every result mail not sent says why (`reason`).
 */
async function decideAndSend(
  ctx: Pick<WorkerContext, 'db' | 'config' | 'deps'>,
  mail: { id: string; mailFrom: string | null; replyTo: string | null },
  diagnosisId: string,
  diagnosis: Diagnosis,
  at: string,
  opts: ProcessTestMailOptions,
): Promise<ResultMailStatus> {
  const { config } = ctx;
  const obs = diagnosis.observations as TestMailObservations;
  const enabled = opts.resultMail ?? config.resultMail;
  if (!enabled) return { status: 'disabled', to: mail.mailFrom, at, reason: 'disabled' };
  let to: string | null;
  if (mail.replyTo) to = mail.replyTo;
  else if (!mail.mailFrom) return { status: 'skipped', to: null, at, reason: 'null_reverse_path', detail: 'null reverse-path (RFC 3834 §2)' };
  else if (!isAuthenticated(obs)) {
    return {
      status: 'skipped', to: mail.mailFrom, at, reason: 'unverified_sender',
      detail: `the sender did not prove it is ${diagnosis.domain} (SPF ${obs.spf.result} for the MAIL FROM, no aligned verifying DKIM signature): no result mail, so a forged sender cannot make us mail a victim`,
    };
  } else to = mail.mailFrom;
  const toDomain = domainOfAddress(to);
  if (!toDomain) return { status: 'skipped', to, at, reason: 'no_domain', detail: 'the recipient has no usable domain' };
  if (ctx.deps.outbound.domainOptedOut(toDomain)) return { status: 'skipped', to, at, reason: 'opted_out', detail: `${toDomain} is on the opt-out list` };
  // The caps count real time (not the lab clock): they bound what we send into the world.
  const now = Date.now();
  const sent = await countSentResultMails(ctx.db, to, toDomain, new Date(now - 86_400_000), new Date(now - 3_600_000));
  if (sent.hour >= config.resultMailPerHour) return { status: 'skipped', to, at, reason: 'hourly_cap', detail: `${sent.hour} result mails in the last hour (limit ${config.resultMailPerHour})` };
  if (sent.recipient >= config.resultMailPerRecipientDay) return { status: 'skipped', to, at, reason: 'recipient_daily_cap', detail: `${sent.recipient} result mails to ${to} in 24 h (limit ${config.resultMailPerRecipientDay})` };
  if (sent.domain >= config.resultMailPerDomainDay) return { status: 'skipped', to, at, reason: 'domain_daily_cap', detail: `${sent.domain} result mails to ${toDomain} in 24 h (limit ${config.resultMailPerDomainDay})` };
  const r = await sendResult(ctx, diagnosisId, diagnosis, to, at);
  return r.status === 'sent' ? r : { ...r, reason: 'delivery_failed' };
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
    gate: ctx.deps.outbound,
    timeoutMs: ctx.config.smtpCommandTimeoutMs,
    maxAddresses: ctx.config.resultMailMxAddresses,
    deadlineMs: ctx.config.resultMailDeadlineMs,
  });
  return { status: r.status, to, at, detail: `${r.detail}${r.tls === null ? '' : r.tls ? ' [TLS]' : ' [no TLS]'}` };
}
