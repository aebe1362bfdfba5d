// The queries the web front needs that no other module has, one small function each, `db` first (STYLE.md 7).
import { sql } from 'kysely';
import type { Db } from '../lib/db.ts';
import { addressFor, generateToken, normalizeDomain, domainOfAddress } from '../receiver/tokens.ts';

/** Token bytes of a web request: 16 bytes = 128 bits, as the issue asks of a private result URL. */
export const WEB_TOKEN_BYTES = 16;
export const TOKEN_PATTERN = /^[a-z2-7]{26}$/;

/** The domain a person typed: a domain, or an address at it. */
export function domainFromInput(raw: string): string | null {
  const s = String(raw ?? '').trim();
  if (s.length === 0 || s.length > 320) return null;
  return s.includes('@') ? domainOfAddress(s) : normalizeDomain(s);
}

/**
 * A diagnosis request with a 128-bit token (`check-<token>@our domain`), in the same table as
 * `mailcensus request` (receiver/tokens.ts), so the receiver and the worker link the mail to it.
 */
export async function createWebRequest(db: Db, domain: string, ourDomain: string): Promise<{ token: string; address: string; domain: string }> {
  const token = generateToken(WEB_TOKEN_BYTES);
  const address = addressFor(token, ourDomain);
  await sql`INSERT INTO diagnosis_requests (token, domain, address) VALUES (${token}, ${domain}, ${address})`.execute(db);
  return { token, address, domain };
}

export interface RequestStatus {
  token: string;
  domain: string;
  address: string;
  createdAt: Date;
  /**
   * waiting: no mail yet; received: the mail is stored, the diagnosis not yet; done: diagnosed;
   * not_diagnosed: the mail was deliberately not diagnosed (issue 12: the domain's daily cap, opt-out).
   */
  state: 'waiting' | 'received' | 'done' | 'not_diagnosed';
  /** Why, for not_diagnosed (e.g. domain_daily_cap, opted_out). */
  notDiagnosed: string | null;
  mail: { id: string; receivedAt: Date; domain: string | null } | null;
  diagnosisId: string | null;
}

/** The request of a token and how far its test mail got (the latest mail to the address counts). */
export async function requestStatus(db: Db, token: string): Promise<RequestStatus | null> {
  const req = await sql<{ token: string; domain: string; address: string; created_at: Date }>`
    SELECT token, domain, address, created_at FROM diagnosis_requests WHERE token = ${token}`.execute(db);
  const r = req.rows[0];
  if (!r) return null;
  // not_diagnosed comes with issue 12's migration; on a schema without it the value is null.
  const notDiagnosed = (await hasColumn(db, 'test_mails', 'not_diagnosed')) ? sql`m.not_diagnosed` : sql`NULL::text`;
  const mail = await sql<{ id: string; received_at: Date; domain: string | null; diagnosis_id: string | null; not_diagnosed: string | null }>`
    SELECT m.id, m.received_at, m.domain, ${notDiagnosed} AS not_diagnosed,
           (SELECT d.id FROM diagnoses d WHERE d.test_mail_id = m.id ORDER BY d.id DESC LIMIT 1) AS diagnosis_id
    FROM test_mails m WHERE m.token = ${token} ORDER BY m.received_at DESC, m.id DESC LIMIT 1`.execute(db);
  const m = mail.rows[0];
  return {
    token: r.token,
    domain: r.domain,
    address: r.address,
    createdAt: new Date(r.created_at),
    state: !m ? 'waiting' : m.diagnosis_id ? 'done' : m.not_diagnosed ? 'not_diagnosed' : 'received',
    notDiagnosed: m?.not_diagnosed ?? null,
    mail: m ? { id: String(m.id), receivedAt: new Date(m.received_at), domain: m.domain } : null,
    diagnosisId: m?.diagnosis_id ? String(m.diagnosis_id) : null,
  };
}

/** The latest diagnosis of a domain (optionally of one source or survey). */
export async function latestDiagnosisId(db: Db, domain: string, o: { source?: string; survey?: string } = {}): Promise<string | null> {
  let q = db.selectFrom('diagnoses').select('diagnoses.id').where('diagnoses.domain', '=', domain);
  if (o.source) q = q.where('diagnoses.source', '=', o.source as 'scan' | 'test-mail');
  if (o.survey) q = q.where('diagnoses.survey_id', 'in', (eb) => eb.selectFrom('surveys').select('surveys.id').where('surveys.name', '=', o.survey!));
  const row = await q.orderBy('diagnoses.observed_at', 'desc').orderBy('diagnoses.id', 'desc').limit(1).executeTakeFirst();
  return row ? String(row.id) : null;
}

const CRITERION_COLUMNS = [
  'open_relay', 'spf', 'dkim', 'tls_receive', 'tls_send', 'reverse_dns', 'dnssec', 'dnsbl',
] as const;

/** Every diagnosis of a domain, newest first, each criterion's status and reason. */
export async function domainHistory(db: Db, domain: string, limit = 500) {
  const rows = await db
    .selectFrom('diagnoses')
    .leftJoin('surveys', 'surveys.id', 'diagnoses.survey_id')
    .select([
      'diagnoses.id', 'diagnoses.source', 'diagnoses.run_id', 'diagnoses.observed_at', 'diagnoses.verdict', 'surveys.name as survey',
      ...CRITERION_COLUMNS.map((c) => `diagnoses.${c}` as const),
      ...CRITERION_COLUMNS.map((c) => `diagnoses.${c}_reason` as const),
    ])
    .where('diagnoses.domain', '=', domain)
    .orderBy('diagnoses.observed_at', 'desc')
    .orderBy('diagnoses.id', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ ...r, id: String(r.id) }));
}

/** A page of a run's diagnoses in id order, after `afterId`. */
export async function runDiagnoses(db: Db, runId: number, afterId: string | null, limit: number) {
  let q = db
    .selectFrom('diagnoses')
    .select(['id', 'domain', 'observed_at', 'verdict', ...CRITERION_COLUMNS, ...CRITERION_COLUMNS.map((c) => `${c}_reason` as const)])
    .where('run_id', '=', runId);
  if (afterId) q = q.where('id', '>', afterId);
  const rows = await q.orderBy('id').limit(limit).execute();
  return rows.map((r) => ({ ...r, id: String(r.id) }));
}

export async function listRuns(db: Db, limit = 50) {
  const rows = await sql<{ id: number; survey: string; state: string; total: number; done: string; created_at: Date; finished_at: Date | null }>`
    SELECT r.id, s.name AS survey, r.state, r.total, r.created_at, r.finished_at,
           (SELECT count(*) FROM diagnoses d WHERE d.run_id = r.id) AS done
    FROM runs r JOIN surveys s ON s.id = r.survey_id ORDER BY r.id DESC LIMIT ${limit}`.execute(db);
  return rows.rows.map((r) => ({ ...r, done: Number(r.done) }));
}

/**
 * How far a test-mail diagnosis can be trusted to be the domain's (issue 12: requested / authenticated /
 * unverified), or null (a scan, or a database without that column yet).
 */
export async function provenanceOf(db: Db, diagnosisId: string): Promise<string | null> {
  if (!(await hasColumn(db, 'diagnoses', 'provenance'))) return null;
  const res = await sql<{ p: string | null }>`SELECT provenance AS p FROM diagnoses WHERE id = ${diagnosisId}`.execute(db);
  return res.rows[0]?.p ?? null;
}

const columnCache = new WeakMap<Db, Map<string, boolean>>();
/** Whether the schema has a column (asked once per database handle): pages work before and after a migration lands. */
async function hasColumn(db: Db, table: string, column: string): Promise<boolean> {
  let m = columnCache.get(db);
  if (!m) columnCache.set(db, (m = new Map()));
  const key = `${table}.${column}`;
  const known = m.get(key);
  if (known !== undefined) return known;
  const res = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = ${table} AND column_name = ${column}`.execute(db);
  const has = res.rows[0].n > 0;
  m.set(key, has);
  return has;
}
