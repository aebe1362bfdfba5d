// The initial schema. Diagnoses carry one status column per criterion (a Postgres enum, so psql shows words
// and aggregates are plain GROUP BYs) next to the raw observations (JSONB) they were judged from.
import { sql, type Kysely } from 'kysely';

const CRITERIA = ['open_relay', 'spf', 'dkim', 'tls_receive', 'tls_send', 'reverse_dns', 'dnssec', 'dnsbl'];

export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TYPE criterion_status AS ENUM ('ok', 'ng', 'unknown', 'na')`.execute(db);
  await sql`CREATE TYPE verdict AS ENUM ('danger', 'needs_improvement', 'review', 'safe', 'incomplete')`.execute(db);
  await sql`CREATE TYPE diagnosis_source AS ENUM ('scan', 'test-mail')`.execute(db);
  await sql`CREATE TYPE run_state AS ENUM ('queued', 'running', 'cancelled', 'done', 'failed')`.execute(db);

  await db.schema
    .createTable('surveys')
    .addColumn('id', 'serial', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('survey_domains')
    .addColumn('survey_id', 'integer', (c) => c.notNull().references('surveys.id').onDelete('cascade'))
    .addColumn('domain', 'text', (c) => c.notNull())
    .addColumn('organization', 'text')
    .addColumn('industry', 'text')
    .addColumn('tags', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    /** The domain as written in the input, when normalisation changed it (IDN, e-mail address, case). */
    .addColumn('input', 'text')
    .addColumn('added_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('survey_domains_pkey', ['survey_id', 'domain'])
    .execute();

  await db.schema
    .createTable('ingests')
    .addColumn('id', 'serial', (c) => c.primaryKey())
    .addColumn('survey_id', 'integer', (c) => c.notNull().references('surveys.id').onDelete('cascade'))
    .addColumn('file', 'text', (c) => c.notNull())
    .addColumn('encoding', 'text', (c) => c.notNull())
    .addColumn('lines_read', 'integer', (c) => c.notNull())
    .addColumn('accepted', 'integer', (c) => c.notNull())
    .addColumn('duplicates', 'integer', (c) => c.notNull())
    .addColumn('rejected', 'integer', (c) => c.notNull())
    .addColumn('added', 'integer', (c) => c.notNull())
    .addColumn('finished_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('runs')
    .addColumn('id', 'serial', (c) => c.primaryKey())
    .addColumn('survey_id', 'integer', (c) => c.notNull().references('surveys.id').onDelete('cascade'))
    .addColumn('state', sql`run_state`, (c) => c.notNull().defaultTo('queued'))
    .addColumn('total', 'integer', (c) => c.notNull().defaultTo(0))
    /** Timeouts, limits, resolver, versions: how this run's data was measured. */
    .addColumn('config', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('test_mails')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .addColumn('client_ip', sql`inet`, (c) => c.notNull())
    .addColumn('helo', 'text')
    .addColumn('mail_from', 'text')
    .addColumn('rcpt_to', sql`text[]`, (c) => c.notNull())
    .addColumn('token', 'text')
    /** The domain the diagnosis is about: the MAIL FROM domain (or From: header domain when MAIL FROM is empty). */
    .addColumn('domain', 'text')
    .addColumn('tls', 'jsonb')
    .addColumn('raw', 'bytea', (c) => c.notNull())
    .addColumn('size', 'integer', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('diagnoses')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('source', sql`diagnosis_source`, (c) => c.notNull())
    .addColumn('domain', 'text', (c) => c.notNull())
    .addColumn('survey_id', 'integer', (c) => c.references('surveys.id').onDelete('cascade'))
    .addColumn('run_id', 'integer', (c) => c.references('runs.id').onDelete('cascade'))
    .addColumn('test_mail_id', 'bigint', (c) => c.references('test_mails.id').onDelete('cascade'))
    .addColumn('observed_at', 'timestamptz', (c) => c.notNull())
    .$call((t) => {
      for (const c of CRITERIA) {
        t = t
          .addColumn(c, sql`criterion_status`, (col) => col.notNull())
          .addColumn(`${c}_reason`, 'text', (col) => col.notNull());
      }
      return t;
    })
    .addColumn('verdict', sql`verdict`, (c) => c.notNull())
    .addColumn('verdict_reasons', 'jsonb', (c) => c.notNull())
    /** Findings beyond MSchecker's criteria: DMARC policy, MTA-STS, TLS-RPT, TLS versions, certificates. */
    .addColumn('dmarc_policy', 'text')
    .addColumn('mta_sts', 'text')
    .addColumn('tls_rpt', 'text')
    .addColumn('tls_versions', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('cert_problems', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('findings', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('observations', 'jsonb', (c) => c.notNull())
    .addColumn('rules_version', 'integer', (c) => c.notNull())
    .addColumn('judged_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint(
      'diagnoses_origin',
      sql`(source = 'scan' AND run_id IS NOT NULL) OR (source = 'test-mail' AND test_mail_id IS NOT NULL)`,
    )
    .execute();
  // One diagnosis per domain per run, one per received mail: re-running a job writes once.
  await sql`CREATE UNIQUE INDEX diagnoses_run_domain ON diagnoses (run_id, domain) WHERE run_id IS NOT NULL`.execute(db);
  await sql`CREATE UNIQUE INDEX diagnoses_test_mail ON diagnoses (test_mail_id) WHERE test_mail_id IS NOT NULL`.execute(db);
  // A period's report picks the latest diagnosis per domain: (domain, observed_at DESC) serves DISTINCT ON.
  await sql`CREATE INDEX diagnoses_domain_observed ON diagnoses (domain, observed_at DESC)`.execute(db);
  await sql`CREATE INDEX diagnoses_observed ON diagnoses USING brin (observed_at)`.execute(db);
  await sql`CREATE INDEX diagnoses_survey_observed ON diagnoses (survey_id, observed_at)`.execute(db);

  // What each distinct MX IP answered in a run: probed once, reused by every domain that shares it.
  await db.schema
    .createTable('probed_ips')
    .addColumn('run_id', 'integer', (c) => c.references('runs.id').onDelete('cascade'))
    .addColumn('ip', sql`inet`, (c) => c.notNull())
    .addColumn('hostnames', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('observations', 'jsonb', (c) => c.notNull())
    .addColumn('probed_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await sql`CREATE UNIQUE INDEX probed_ips_run_ip ON probed_ips (run_id, ip) WHERE run_id IS NOT NULL`.execute(db);

  // The MX hosts and IPs of each diagnosis, so "which domains share this MX" is one join.
  await db.schema
    .createTable('diagnosis_mx')
    .addColumn('diagnosis_id', 'bigint', (c) => c.notNull().references('diagnoses.id').onDelete('cascade'))
    .addColumn('preference', 'integer', (c) => c.notNull())
    .addColumn('host', 'text', (c) => c.notNull())
    .addColumn('ip', sql`inet`)
    .execute();
  await sql`CREATE INDEX diagnosis_mx_diagnosis ON diagnosis_mx (diagnosis_id)`.execute(db);
  await sql`CREATE INDEX diagnosis_mx_ip ON diagnosis_mx (ip)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['diagnosis_mx', 'probed_ips', 'diagnoses', 'test_mails', 'runs', 'ingests', 'survey_domains', 'surveys']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
  for (const t of ['run_state', 'diagnosis_source', 'verdict', 'criterion_status']) {
    await sql`DROP TYPE IF EXISTS ${sql.id(t)}`.execute(db);
  }
}
