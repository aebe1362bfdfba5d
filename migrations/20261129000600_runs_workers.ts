// Survey runs on BullMQ (issue 6): what the durable feeder, cancel/resume and scheduled runs need on `runs`,
// and the probe attempt on `probed_ips` (a transient observation is re-probed as attempt 1, 2, ...).
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('runs')
    .addColumn('cancelled_at', 'timestamptz')
    /** The last survey domain (in `domain` order) the feeder enqueued; '' = start of a sweep. */
    .addColumn('feed_cursor', 'text', (c) => c.notNull().defaultTo(''))
    /** Survey domains left out because they are on the opt-out list. */
    .addColumn('opted_out', 'integer', (c) => c.notNull().defaultTo(0))
    /** Makes run creation idempotent, e.g. one run per firing of a job scheduler. */
    .addColumn('dedupe_key', 'text', (c) => c.unique())
    .execute();
  await sql`CREATE INDEX runs_active ON runs (state) WHERE state IN ('queued', 'running')`.execute(db);
  await db.schema
    .alterTable('probed_ips')
    .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('probed_ips').dropColumn('attempt').execute();
  await sql`DROP INDEX IF EXISTS runs_active`.execute(db);
  await db.schema
    .alterTable('runs')
    .dropColumn('cancelled_at')
    .dropColumn('feed_cursor')
    .dropColumn('opted_out')
    .dropColumn('dedupe_key')
    .execute();
}
