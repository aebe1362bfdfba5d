// Issue 15, DKIM discovery in scans: the DKIM selectors a survey list names per domain (ingest's optional
// `selectors` / `セレクタ` column), and the selectors seen in the aligned, verifying DKIM signatures of the
// test mails we received (remembered per signing domain, tried in later scans of it). Both are tried before
// the common selectors (lib/checks/dkim/dkim.ts collectDkim).
import { sql, type Kysely } from 'kysely';

// RFC 6376 §3.1 selector syntax, as lib/checks/dkim/dkim.ts normalizeSelector checks it.
const SELECTOR_RE = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE survey_domains ADD COLUMN dkim_selectors text[] NOT NULL DEFAULT '{}'`.execute(db);
  await sql`COMMENT ON COLUMN survey_domains.dkim_selectors IS
    'DKIM selectors the survey list gives for the domain (ingest column "selectors"), tried first by its scans'`.execute(db);
  await db.schema
    .createTable('dkim_selectors_seen')
    /** The signature's d= (A-label, lower case): the domain the key lives under. */
    .addColumn('domain', 'text', (c) => c.notNull())
    .addColumn('selector', 'text', (c) => c.notNull())
    .addColumn('first_seen', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_seen', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('dkim_selectors_seen_pkey', ['domain', 'selector'])
    .execute();
  // What the stored test mails already tell: aligned signatures (d= the domain or a parent) that verified.
  await sql`
    INSERT INTO dkim_selectors_seen (domain, selector, first_seen, last_seen)
    SELECT lower(sig->>'signingDomain'), lower(sig->>'selector'), min(d.observed_at), max(d.observed_at)
      FROM diagnoses d, jsonb_array_elements(CASE WHEN jsonb_typeof(d.observations->'dkim'->'signatures') = 'array'
                                                  THEN d.observations->'dkim'->'signatures' ELSE '[]'::jsonb END) sig
     WHERE d.source = 'test-mail' AND sig->>'result' = 'pass'
       AND strpos(sig->>'signingDomain', '.') > 0
       AND (lower(d.domain) = lower(sig->>'signingDomain') OR lower(d.domain) LIKE '%.' || lower(sig->>'signingDomain'))
       AND length(sig->>'selector') <= 63 AND lower(sig->>'selector') ~ ${SELECTOR_RE}
     GROUP BY 1, 2
    ON CONFLICT DO NOTHING`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('dkim_selectors_seen').ifExists().execute();
  await sql`ALTER TABLE survey_domains DROP COLUMN IF EXISTS dkim_selectors`.execute(db);
}
