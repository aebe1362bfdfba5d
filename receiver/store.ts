// The receiver's queries: one function per query, `db` first (STYLE.md §7). A mail is acknowledged only after
// insertTestMail has committed, so an accepted mail is never lost (RFC 5321 §6.1: "it MUST NOT lose the
// message" once it has answered 250 to the end of DATA).
import { sql, type Kysely } from 'kysely';
import type { Database, Db, TestMailsTable } from '../lib/db.ts';

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
  detail?: string;
}

/** A stored test mail: what the receiver stored, with its id and size. */
export interface TestMailRow extends Omit<NewTestMail, 'resultMail'> {
  id: string;
  size: number;
  resultMail: ResultMailStatus | null;
}

interface TestMailsExtra extends TestMailsTable {
  header_from: string | null;
  result_mail: unknown;
}
type ReceiverDb = Kysely<Omit<Database, 'test_mails'> & { test_mails: TestMailsExtra }>;
const rdb = (db: Db): ReceiverDb => db as unknown as ReceiverDb;

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
  const work = rdb(db)
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
      if (timedOut) await rdb(db).deleteFrom('test_mails').where('id', '=', id).execute().catch(() => {});
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
    raw: Buffer.from(r.raw),
    size: r.size,
    resultMail,
  };
}

export async function loadTestMail(db: Db, id: string): Promise<TestMailRow | null> {
  const r = await rdb(db).selectFrom('test_mails').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toRow(r) : null;
}

/** Stored mails that have no diagnosis yet (the sweeper re-enqueues them), oldest first. */
export async function listUndiagnosedTestMails(db: Db, limit = 1000): Promise<string[]> {
  const rows = await rdb(db)
    .selectFrom('test_mails as t')
    .leftJoin('diagnoses as d', 'd.test_mail_id', 't.id')
    .select('t.id')
    .where('d.id', 'is', null)
    .where('t.domain', 'is not', null)
    .orderBy('t.id')
    .limit(limit)
    .execute();
  return rows.map((r) => String(r.id));
}

export async function setResultMailStatus(db: Db, id: string, status: ResultMailStatus): Promise<void> {
  await rdb(db).updateTable('test_mails').set({ result_mail: jsonb(status) }).where('id', '=', id).execute();
}
