// Issue 7: per-diagnosis addresses (`mailcensus request`) and what became of each received test mail's result
// mail. A token is only a hint: mail to an unknown token still gets a diagnosis of the sender's domain.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('diagnosis_requests')
    .addColumn('token', 'text', (c) => c.primaryKey())
    /** The domain the requester said they would send from (A-label, lower case). */
    .addColumn('domain', 'text', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.alterTable('test_mails').addColumn('header_from', 'text').execute();
  /** The result mail sent back to the sender: { status: sent|failed|disabled|skipped, to, at, detail }. */
  await db.schema.alterTable('test_mails').addColumn('result_mail', 'jsonb').execute();
  await sql`CREATE INDEX test_mails_token ON test_mails (token) WHERE token IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX IF EXISTS test_mails_token`.execute(db);
  await db.schema.alterTable('test_mails').dropColumn('result_mail').execute();
  await db.schema.alterTable('test_mails').dropColumn('header_from').execute();
  await db.schema.dropTable('diagnosis_requests').ifExists().execute();
}
