// The database handle and its row types. Queries live in small functions next to the code that needs them
// (ingest/, workers/, reports/); this file only connects, migrates and declares the tables.
import { Kysely, Migrator, type Generated, type ColumnType, type MigrationResultSet } from 'kysely';
import { PostgresJSDialect } from 'kysely-postgres-js';
import postgres from 'postgres';
import { migrations } from '../migrations/index.ts';
import type { Status, Source } from './criteria.ts';
import type { Verdict } from './verdict.ts';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json = ColumnType<unknown, unknown, unknown>;

export interface SurveysTable {
  id: Generated<number>;
  name: string;
  created_at: Timestamp;
}
export interface SurveyDomainsTable {
  survey_id: number;
  domain: string;
  organization: string | null;
  industry: string | null;
  tags: ColumnType<string[], string[] | undefined, string[]>;
  input: string | null;
  added_at: Timestamp;
}
export interface IngestsTable {
  id: Generated<number>;
  survey_id: number;
  file: string;
  encoding: string;
  lines_read: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  added: number;
  finished_at: Timestamp;
  started_at: Date | null;
  blank_lines: ColumnType<number, number | undefined, number>;
  reject_reasons: Json;
  rejects_file: string | null;
}
export interface RunsTable {
  id: Generated<number>;
  survey_id: number;
  state: ColumnType<'queued' | 'running' | 'cancelled' | 'done' | 'failed', string | undefined, string>;
  total: ColumnType<number, number | undefined, number>;
  config: Json;
  created_at: Timestamp;
  started_at: Date | null;
  finished_at: Date | null;
  cancelled_at: Date | null;
  feed_cursor: ColumnType<string, string | undefined, string>;
  opted_out: ColumnType<number, number | undefined, number>;
  dedupe_key: string | null;
}
export interface TestMailsTable {
  id: Generated<string>;
  received_at: Timestamp;
  client_ip: string;
  helo: string | null;
  mail_from: string | null;
  rcpt_to: string[];
  token: string | null;
  domain: string | null;
  tls: Json | null;
  raw: Buffer;
  size: number;
}
type StatusCol = ColumnType<Status, Status, Status>;
export interface DiagnosesTable {
  id: Generated<string>;
  source: Source;
  domain: string;
  survey_id: number | null;
  run_id: number | null;
  test_mail_id: string | null;
  observed_at: Timestamp;
  open_relay: StatusCol; open_relay_reason: string;
  spf: StatusCol; spf_reason: string;
  dkim: StatusCol; dkim_reason: string;
  tls_receive: StatusCol; tls_receive_reason: string;
  tls_send: StatusCol; tls_send_reason: string;
  reverse_dns: StatusCol; reverse_dns_reason: string;
  dnssec: StatusCol; dnssec_reason: string;
  dnsbl: StatusCol; dnsbl_reason: string;
  verdict: Verdict;
  verdict_reasons: Json;
  dmarc_policy: string | null;
  mta_sts: string | null;
  tls_rpt: string | null;
  tls_versions: ColumnType<string[], string[] | undefined, string[]>;
  cert_problems: ColumnType<string[], string[] | undefined, string[]>;
  findings: Json;
  observations: Json;
  rules_version: number;
  judged_at: Timestamp;
  created_at: Timestamp;
}
export interface ProbedIpsTable {
  run_id: number | null;
  ip: string;
  hostnames: ColumnType<string[], string[] | undefined, string[]>;
  observations: Json;
  probed_at: Timestamp;
  attempt: ColumnType<number, number | undefined, number>;
}
export interface DiagnosisMxTable {
  diagnosis_id: string;
  preference: number;
  host: string;
  ip: string | null;
}

export interface Database {
  surveys: SurveysTable;
  survey_domains: SurveyDomainsTable;
  ingests: IngestsTable;
  runs: RunsTable;
  test_mails: TestMailsTable;
  diagnoses: DiagnosesTable;
  probed_ips: ProbedIpsTable;
  diagnosis_mx: DiagnosisMxTable;
}

export type Db = Kysely<Database>;

export interface DbHandle {
  db: Db;
  /** The underlying postgres.js client, for COPY and raw SQL. */
  sql: postgres.Sql;
  close(): Promise<void>;
}

export class DatabaseUnavailableError extends Error {
  constructor(url: string, cause: unknown) {
    super(`cannot reach Postgres at ${redactUrl(url)}: ${(cause as Error)?.message ?? cause}`);
    this.name = 'DatabaseUnavailableError';
  }
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

export function openDatabase(url: string, options: { max?: number } = {}): DbHandle {
  const client = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    connect_timeout: 10,
    // Bigint ids come back as strings (exact); Postgres arrays and jsonb are parsed by postgres.js.
  });
  const db = new Kysely<Database>({ dialect: new PostgresJSDialect({ postgres: client }) });
  return {
    db,
    sql: client,
    async close() {
      await db.destroy();
    },
  };
}

/** Fails fast with a one-line error when Postgres is down, instead of a stack trace from the first query. */
export async function assertReachable(handle: DbHandle, url: string): Promise<void> {
  try {
    await handle.sql`SELECT 1`;
  } catch (err) {
    throw new DatabaseUnavailableError(url, err);
  }
}

export function migrator(db: Db): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => migrations } });
}

export async function migrateToLatest(db: Db): Promise<MigrationResultSet> {
  return migrator(db).migrateToLatest();
}

export class SchemaOutdatedError extends Error {
  constructor(pending: string[]) {
    super(`the database schema is not up to date (pending: ${pending.join(', ')}); run \`mailcensus migrate\``);
    this.name = 'SchemaOutdatedError';
  }
}

/** Runs pending migrations, or throws a readable error when one fails. Commands call this before work. */
export async function ensureSchema(db: Db): Promise<void> {
  const { error, results } = await migrateToLatest(db);
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${(error as Error).message ?? error}`);
  }
}
