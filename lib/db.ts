// The database handle and its row types. Queries live in small functions next to the code that needs them
// (ingest/, workers/, reports/); this file only connects, migrates, checks the schema version and declares
// the tables.
import {
  Kysely,
  Migrator,
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type QueryResult,
  type TransactionSettings,
  type Generated,
  type ColumnType,
  type MigrationResultSet,
} from 'kysely';
import postgres from 'postgres';
import { sql } from 'kysely';
import { migrations } from '../migrations/index.ts';
import { redactUrl } from './redact-url.ts';
import type { Status, Source } from './criteria.ts';
import type { Verdict } from './verdict.ts';
import type { Provenance } from './observations.ts';

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
  /** DKIM selectors the list gives for the domain (ingest column `selectors`), tried first by its scans. */
  dkim_selectors: ColumnType<string[], string[] | undefined, string[]>;
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
  /** NULL once pruned by the retention job (raw_pruned_at says when). */
  raw: Buffer | null;
  size: number;
  header_from: ColumnType<string | null, string | null | undefined, string | null>;
  /** The result mail sent back: { status: sent|failed|disabled|skipped, to, at, detail }. */
  result_mail: ColumnType<unknown, unknown, unknown>;
  raw_pruned_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** Why the mail was deliberately not diagnosed (domain_daily_cap, opted_out). */
  not_diagnosed: ColumnType<string | null, string | null | undefined, string | null>;
}
export interface DiagnosisRequestsTable {
  token: string;
  /** The domain the requester said they would send from (A-label, lower case). */
  domain: string;
  address: string;
  created_at: Timestamp;
  /** Where the result mail goes for this token (an address the requester proved, e.g. by the web front). */
  reply_to: ColumnType<string | null, string | null | undefined, string | null>;
}
export interface ResultMailsTable {
  id: Generated<string>;
  test_mail_id: string;
  recipient: string | null;
  recipient_domain: string | null;
  status: 'sent' | 'failed' | 'disabled' | 'skipped';
  reason: string | null;
  detail: string | null;
  created_at: Timestamp;
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
  /** Test-mail diagnoses only (NULL for scans). */
  provenance: ColumnType<Provenance | null, Provenance | null | undefined, Provenance | null>;
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

/** Selectors of aligned, verifying DKIM signatures of received test mails, per signing domain (lib/checks/dkim/remember.ts). */
export interface DkimSelectorsSeenTable {
  domain: string;
  selector: string;
  first_seen: Timestamp;
  last_seen: Timestamp;
}

export interface Database {
  surveys: SurveysTable;
  survey_domains: SurveyDomainsTable;
  ingests: IngestsTable;
  runs: RunsTable;
  test_mails: TestMailsTable;
  diagnosis_requests: DiagnosisRequestsTable;
  result_mails: ResultMailsTable;
  diagnoses: DiagnosesTable;
  probed_ips: ProbedIpsTable;
  diagnosis_mx: DiagnosisMxTable;
  dkim_selectors_seen: DkimSelectorsSeenTable;
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
    super(`cannot reach Postgres at ${redactUrl(url, 'DATABASE_URL')}: ${(cause as Error)?.message ?? cause}`);
    this.name = 'DatabaseUnavailableError';
  }
}

export interface OpenOptions {
  /** Pool size. @defaultValue 10 */
  max?: number;
  /**
   * Server-side `statement_timeout` (ms) of every session; 0 for none. Workers use a short one; CLI commands
   * (reports over a million diagnoses, ingest's COPY) a long one. @defaultValue 600000
   */
  statementTimeoutMs?: number;
  /**
   * Client-side deadline of every query through `db` (ms): a query that gets no answer in time (a stalled
   * network, where the server-side timeout cannot help) fails with QueryTimeoutError. @defaultValue
   * statementTimeoutMs + 30000 (or 630000)
   */
  queryTimeoutMs?: number;
}

export class QueryTimeoutError extends Error {
  constructor(ms: number) {
    super(`Postgres did not answer within ${ms} ms`);
    this.name = 'QueryTimeoutError';
  }
}

/**
 * Whether an error means the connection is gone (closed, reset, refused, server shutting down) rather than
 * that the statement failed: such a connection must not be used again, not even for ROLLBACK.
 */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; name?: string } | null;
  if (!e) return false;
  if (e instanceof QueryTimeoutError) return true;
  if (e instanceof postgres.PostgresError) return /^(08|57P)/.test(e.code ?? '');
  return true; // postgres.js connection errors (CONNECTION_CLOSED, …) and socket errors (ECONNRESET, …)
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  if (!(ms > 0)) return p;
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueryTimeoutError(ms)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function queryResult<R>(result: postgres.RowList<postgres.Row[]>): QueryResult<R> {
  const { command, count } = result;
  return {
    numAffectedRows: command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE' ? BigInt(count) : undefined,
    rows: Array.from(result.values()) as R[],
  };
}

/**
 * A Kysely connection over postgres.js. Outside a transaction every query goes to the pool, which reconnects
 * by itself after a Postgres restart. (kysely-postgres-js reserves a connection for every query, and
 * postgres.js then writes to the closed socket of a reserved connection after a restart: the process crashes
 * with "Cannot read properties of null (reading 'write')" or the query waits forever — the survey-halting bug
 * of issue 13.) A transaction reserves one connection; once that connection has failed it is never written to
 * again (no ROLLBACK, no release: postgres.js has already taken it back).
 */
/**
 * Kysely's compiled parameters (`readonly unknown[]`) as postgres.js's unsafe() wants them: they are the values
 * Kysely's query builder took from our typed queries, which postgres.js serializes (the one cast, kept here).
 */
type UnsafeParameters = NonNullable<Parameters<postgres.Sql['unsafe']>[1]>;
function parametersOf(compiled: CompiledQuery): UnsafeParameters {
  return [...compiled.parameters] as UnsafeParameters;
}

class PostgresJsConnection implements DatabaseConnection {
  #reserved: postgres.ReservedSql | null = null;
  #dead = false;
  constructor(
    private readonly client: postgres.Sql,
    private readonly timeoutMs: number,
  ) {}

  async begin(sqlText: string): Promise<void> {
    this.#reserved = await withDeadline(this.client.reserve(), this.timeoutMs);
    this.#dead = false;
    await this.executeQuery(CompiledQuery.raw(sqlText));
  }

  async end(sqlText: 'commit' | 'rollback'): Promise<QueryResult<unknown>> {
    try {
      if (this.#dead) {
        if (sqlText === 'commit') throw new Error('the connection was lost during the transaction');
        return { rows: [] };
      }
      return await this.executeQuery(CompiledQuery.raw(sqlText));
    } finally {
      const r = this.#reserved;
      this.#reserved = null;
      if (r && !this.#dead) r.release();
    }
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const target = this.#reserved ?? this.client;
    if (this.#reserved && this.#dead) throw new Error('the connection was lost during the transaction');
    const pending = target.unsafe(compiled.sql, parametersOf(compiled));
    try {
      return queryResult<R>(await withDeadline(pending, this.timeoutMs));
    } catch (err) {
      if (this.#reserved && isConnectionError(err)) {
        this.#dead = true;
        if (err instanceof QueryTimeoutError) {
          // The statement may still finish when the network comes back: then roll back and give the
          // connection back to the pool; if the connection dies instead, postgres.js has it already.
          const r = this.#reserved;
          pending.then(
            () => r.unsafe('rollback').then(() => r.release(), () => {}),
            (e: unknown) => {
              if (!isConnectionError(e)) r.unsafe('rollback').then(() => r.release(), () => {});
            },
          );
        }
      }
      throw err;
    }
  }

  async *streamQuery<R>(compiled: CompiledQuery, chunkSize = 1000): AsyncIterableIterator<QueryResult<R>> {
    const target = this.#reserved ?? this.client;
    const cursor = target.unsafe(compiled.sql, parametersOf(compiled)).cursor(chunkSize);
    for await (const rows of cursor) yield { rows: rows as R[] };
  }
}

class PostgresJsDriver implements Driver {
  constructor(
    private readonly client: postgres.Sql,
    private readonly timeoutMs: number,
  ) {}
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    return new PostgresJsConnection(this.client, this.timeoutMs);
  }
  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    let text = 'begin';
    if (settings.isolationLevel || settings.accessMode) {
      text = `start transaction${settings.isolationLevel ? ` isolation level ${settings.isolationLevel}` : ''}${settings.accessMode ? ` ${settings.accessMode}` : ''}`;
    }
    await (connection as PostgresJsConnection).begin(text);
  }
  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const r = await (connection as PostgresJsConnection).end('commit');
    // Postgres completes COMMIT with a ROLLBACK tag when an earlier statement left the transaction aborted.
    if ((r.rows[0] as { command?: string } | undefined)?.command === 'ROLLBACK') throw new Error('the transaction was rolled back');
  }
  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PostgresJsConnection).end('rollback');
  }
  async releaseConnection(): Promise<void> {}
  async destroy(): Promise<void> {
    await this.client.end({ timeout: 5 });
  }
}

function postgresJsDialect(client: postgres.Sql, timeoutMs: number): Dialect {
  return {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new PostgresJsDriver(client, timeoutMs),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  };
}

export function openDatabase(url: string, options: OpenOptions = {}): DbHandle {
  const statementTimeoutMs = options.statementTimeoutMs ?? 600_000;
  const queryTimeoutMs = options.queryTimeoutMs ?? (statementTimeoutMs > 0 ? statementTimeoutMs + 30_000 : 630_000);
  const client = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    // Nothing waits forever (issue 13): connecting is bounded, a statement is bounded by the server, a
    // transaction left idle (its client stalled or gone) is ended by the server, and TCP keepalive finds
    // dead peers. Idle connections are closed after a while and every connection is renewed now and then, so
    // the pool is rebuilt on its own after a failover.
    connect_timeout: 10,
    idle_timeout: 120,
    max_lifetime: 30 * 60,
    keep_alive: 30,
    connection: {
      statement_timeout: statementTimeoutMs,
      idle_in_transaction_session_timeout: 60_000,
      application_name: 'mailcensus',
    },
    // Bigint ids come back as strings (exact); Postgres arrays and jsonb are parsed by postgres.js.
  });
  const db = new Kysely<Database>({ dialect: postgresJsDialect(client, queryTimeoutMs) });
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

/** The schema version this mailcensus expects: the name of its latest migration. */
export const SCHEMA_VERSION: string = Object.keys(migrations).sort().at(-1) ?? '(none)';

/**
 * The database's schema is not the one this mailcensus was built for (older: migrations pending; newer: a
 * later mailcensus migrated it). Commands refuse to start rather than work on a schema they do not know.
 */
export class SchemaOutdatedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaOutdatedError';
  }
}

export interface SchemaState {
  /** The database's version: its latest applied migration, or null for an empty database. */
  database: string | null;
  expected: string;
  /** Migrations this mailcensus has that the database lacks. */
  pending: string[];
  /** Migrations the database has that this mailcensus does not know (a newer mailcensus applied them). */
  unknown: string[];
}

export async function schemaState(db: Db): Promise<SchemaState> {
  const known = Object.keys(migrations).sort();
  const table = await sql<{ t: string | null }>`SELECT to_regclass('public.kysely_migration')::text AS t`.execute(db);
  const applied = table.rows[0]?.t
    ? (await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(db)).rows.map((r) => r.name)
    : [];
  const have = new Set(applied);
  const mine = new Set(known);
  return {
    database: applied.at(-1) ?? null,
    expected: SCHEMA_VERSION,
    pending: known.filter((n) => !have.has(n)),
    unknown: applied.filter((n) => !mine.has(n)),
  };
}

/**
 * Refuses to go on unless the database schema is exactly this mailcensus's: commands never migrate on their
 * own (in a fleet, a newer binary on one machine would change the schema under the older workers); the one
 * place that migrates is `mailcensus migrate`.
 */
export async function ensureSchema(db: Db): Promise<void> {
  const s = await schemaState(db);
  if (s.unknown.length > 0) {
    throw new SchemaOutdatedError(
      `the database schema (version ${s.database}) is newer than this mailcensus (version ${s.expected}): ` +
        `it has migrations this version does not know (${s.unknown.join(', ')}); upgrade mailcensus on this machine`,
    );
  }
  if (s.pending.length > 0) {
    throw new SchemaOutdatedError(
      `the database schema (version ${s.database ?? 'none: an empty database'}) is older than this mailcensus (version ${s.expected}): ` +
        `${s.pending.length} migration(s) pending; run \`mailcensus migrate\` (once, from one machine)`,
    );
  }
}

/** Runs pending migrations, or throws a readable error when one fails. Only `migrate`, the demo and tests call it. */
export async function migrateSchema(db: Db): Promise<void> {
  const { error, results } = await migrateToLatest(db);
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${(error as Error).message ?? error}`);
  }
}
