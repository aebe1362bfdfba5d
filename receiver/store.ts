// The receiver's queries: one function per query, `db` first (STYLE.md §7). A mail is acknowledged only after
// insertTestMail has committed, so an accepted mail is never lost (RFC 5321 §6.1: "it MUST NOT lose the
// message" once it has answered 250 to the end of DATA).
import { sql } from 'kysely';
import type { Db } from '../lib/db.ts';

/** What the receiver saw of one TLS session (null fields when in clear). */
export interface ReceivedTls {
  used: boolean;
  /** We offered STARTTLS in EHLO (always, unless the receiver was started without TLS). */
  offered: boolean;
  protocol: string | null;
  cipher: string | null;
}

export interface NewTestMail {
  receivedAt: Date;
  clientIp: string;
  helo: string | null;
  /** Envelope sender; null for the null reverse-path `<>`. */
  mailFrom: string | null;
  rcptTo: string[];
  token: string | null;
  domain: string | null;
  headerFrom: string | null;
  tls: ReceivedTls;
  raw: Buffer;
  /** Preset when the receiver was told not to answer (`receive --no-result-mail`): the worker then skips it. */
  resultMail?: ResultMailStatus | null;
}

export interface ResultMailStatus {
  status: 'sent' | 'failed' | 'disabled' | 'skipped';
  to: string | null;
  at: string;
  /**
   * Why no result mail went out, as a stable code: disabled, null_reverse_path, no_domain, opted_out,
   * unverified_sender, recipient_daily_cap, domain_daily_cap, hourly_cap, not_diagnosed, delivery_failed.
   */
  reason?: string;
  detail?: string;
}

/** A stored test mail: what the receiver stored, with its id and size. */
export interface TestMailRow extends Omit<NewTestMail, 'resultMail'> {
  id: string;
  size: number;
  resultMail: ResultMailStatus | null;
  /** When the retention setting removed the raw bytes (raw is then empty). */
  rawPrunedAt?: Date | null;
  /** Why the mail was deliberately not diagnosed (domain_daily_cap, opted_out). */
  notDiagnosed?: string | null;
}


/** A JSON value for a jsonb column (a bare string parameter would be stored as a JSON string). */
const jsonb = (v: unknown) => sql`${JSON.stringify(v)}::text::jsonb`;

export class StoreTimeoutError extends Error {
  constructor(ms: number) {
    super(`storing the mail took longer than ${ms} ms`);
    this.name = 'StoreTimeoutError';
  }
}

/**
 * Inserts a received mail and returns its id once committed. `timeoutMs` bounds the wait: Postgres cancels
 * the statement itself (statement_timeout, so nothing commits behind our back), and a client-side timer covers
 * a server that does not answer at all; if the row commits after that timer fired, it is deleted again, as the
 * sender was told 451 and will retry.
 */
export async function insertTestMail(db: Db, m: NewTestMail, timeoutMs = 30_000): Promise<string> {
  let timedOut = false;
  const work = db
    .transaction()
    .execute(async (trx) => {
      await sql`SELECT set_config('statement_timeout', ${String(timeoutMs)}, true)`.execute(trx);
      const row = await trx
        .insertInto('test_mails')
        .values({
          received_at: m.receivedAt,
          client_ip: m.clientIp,
          helo: m.helo,
          mail_from: m.mailFrom,
          rcpt_to: m.rcptTo,
          token: m.token,
          domain: m.domain,
          header_from: m.headerFrom,
          tls: jsonb(m.tls),
          raw: m.raw,
          size: m.raw.length,
          ...(m.resultMail ? { result_mail: jsonb(m.resultMail) } : {}),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return String(row.id);
    });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new StoreTimeoutError(timeoutMs));
    }, timeoutMs + 1000);
  });
  work.then(
    async (id) => {
      if (timedOut) await db.deleteFrom('test_mails').where('id', '=', id).execute().catch(() => {});
    },
    () => {},
  );
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function toRow(r: Record<string, any>): TestMailRow {
  const tls = (typeof r.tls === 'string' ? JSON.parse(r.tls) : r.tls) ?? { used: false, offered: true, protocol: null, cipher: null };
  const resultMail = typeof r.result_mail === 'string' ? JSON.parse(r.result_mail) : r.result_mail ?? null;
  return {
    id: String(r.id),
    receivedAt: new Date(r.received_at),
    clientIp: String(r.client_ip),
    helo: r.helo,
    mailFrom: r.mail_from,
    rcptTo: r.rcpt_to,
    token: r.token,
    domain: r.domain,
    headerFrom: r.header_from,
    tls,
    // Pruned by the retention setting: the diagnosis is kept, the bytes are gone.
    raw: r.raw ? Buffer.from(r.raw) : Buffer.alloc(0),
    size: r.size,
    resultMail,
    rawPrunedAt: r.raw_pruned_at ? new Date(r.raw_pruned_at) : null,
    notDiagnosed: r.not_diagnosed ?? null,
  };
}

export async function loadTestMail(db: Db, id: string): Promise<TestMailRow | null> {
  const r = await db.selectFrom('test_mails').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toRow(r) : null;
}

/** Stored mails that have no diagnosis yet (the sweeper re-enqueues them), oldest first. */
export async function listUndiagnosedTestMails(db: Db, limit = 1000): Promise<string[]> {
  const rows = await db
    .selectFrom('test_mails as t')
    .leftJoin('diagnoses as d', 'd.test_mail_id', 't.id')
    .select('t.id')
    .where('d.id', 'is', null)
    .where('t.domain', 'is not', null)
    .where('t.not_diagnosed', 'is', null)
    .orderBy('t.id')
    .limit(limit)
    .execute();
  return rows.map((r) => String(r.id));
}

export async function setResultMailStatus(db: Db, id: string, status: ResultMailStatus): Promise<void> {
  await db.updateTable('test_mails').set({ result_mail: jsonb(status) }).where('id', '=', id).execute();
}

/** Records the result mail's fate on the mail and as one row of result_mails (what the caps count). */
export async function recordResultMail(db: Db, id: string, status: ResultMailStatus, recipientDomain: string | null): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('test_mails').set({ result_mail: jsonb(status) }).where('id', '=', id).execute();
    await trx
      .insertInto('result_mails')
      .values({ test_mail_id: id, recipient: status.to?.toLowerCase() ?? null, recipient_domain: recipientDomain, status: status.status, reason: status.reason ?? null, detail: status.detail?.slice(0, 2000) ?? null })
      .onConflict((oc) => oc.column('test_mail_id').doNothing())
      .execute();
  });
}

/** Result mails sent since `since`: to one address, to one domain, and in total. */
export async function countSentResultMails(db: Db, recipient: string, domain: string, daySince: Date, hourSince: Date): Promise<{ recipient: number; domain: number; hour: number }> {
  const r = await sql<{ recipient: string; domain: string; hour: string }>`
    SELECT (SELECT count(*) FROM result_mails WHERE status = 'sent' AND recipient = ${recipient.toLowerCase()} AND created_at >= ${daySince}) AS recipient,
           (SELECT count(*) FROM result_mails WHERE status = 'sent' AND recipient_domain = ${domain} AND created_at >= ${daySince}) AS domain,
           (SELECT count(*) FROM result_mails WHERE status = 'sent' AND created_at >= ${hourSince}) AS hour`.execute(db);
  const row = r.rows[0];
  return { recipient: Number(row.recipient), domain: Number(row.domain), hour: Number(row.hour) };
}

/** Marks a stored mail as deliberately not diagnosed, so the sweeper leaves it alone. */
export async function setNotDiagnosed(db: Db, id: string, reason: string): Promise<void> {
  await db.updateTable('test_mails').set({ not_diagnosed: reason }).where('id', '=', id).execute();
}

/** Test-mail diagnoses of `domain` from mails received in the 24 h before `receivedAt` (this mail excluded). */
export async function countRecentDiagnoses(db: Db, domain: string, receivedAt: Date, exceptMailId: string): Promise<number> {
  const r = await sql<{ n: string }>`
    SELECT count(*) AS n FROM diagnoses d JOIN test_mails t ON t.id = d.test_mail_id
     WHERE d.source = 'test-mail' AND d.domain = ${domain} AND t.id <> ${exceptMailId}
       AND t.received_at > ${new Date(receivedAt.getTime() - 86_400_000)} AND t.received_at <= ${receivedAt}`.execute(db);
  return Number(r.rows[0].n);
}

/**
 * The retention setting: raw bytes of mails received before `before` are removed (the diagnosis, envelope and
 * size stay). Only mails already diagnosed (or deliberately not diagnosed) are pruned: a mail waiting for its
 * diagnosis keeps its bytes, whatever its age (a lab clock in the past, a backlog after an outage), or its
 * DKIM signatures could never be verified. Returns how many mails were pruned. In batches, so a large backlog
 * does not hold a long lock.
 */
export async function pruneRawMails(db: Db, before: Date, batch = 1000): Promise<number> {
  let total = 0;
  for (let i = 0; i < 1000; i++) {
    const r = await sql`
      UPDATE test_mails SET raw = NULL, raw_pruned_at = now()
       WHERE id IN (SELECT t.id FROM test_mails t
                     WHERE t.raw IS NOT NULL AND t.received_at < ${before}
                       AND (t.not_diagnosed IS NOT NULL OR EXISTS (SELECT 1 FROM diagnoses d WHERE d.test_mail_id = t.id))
                     ORDER BY t.id LIMIT ${batch})`.execute(db);
    const n = Number(r.numAffectedRows ?? 0);
    total += n;
    if (n < batch) break;
  }
  return total;
}
