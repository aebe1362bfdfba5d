// A fresh, migrated (as `mailcensus migrate` would) Postgres database per test file, dropped afterwards: tests never share state and never
// touch the user's database. The server is the one of DATABASE_URL (default: local, user postgres).
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { openDatabase, migrateSchema, type DbHandle } from '../../lib/db.ts';

const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase extends DbHandle {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** `migrate: false` leaves the database empty (for tests of `mailcensus migrate` and the schema check). */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `mailcensus_test_${randomBytes(5).toString('hex')}`;
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  const handle = openDatabase(url.toString(), { max: 5 });
  if (options.migrate !== false) await migrateSchema(handle.db);
  return {
    ...handle,
    url: url.toString(),
    name,
    async drop() {
      await handle.close();
      const a = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}
