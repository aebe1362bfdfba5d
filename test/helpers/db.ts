// A fresh, migrated (as `mailcensus migrate` would) Postgres database per test file, dropped afterwards: tests never share state and never
// touch the user's database. The server is the one of DATABASE_URL (default: local, user postgres).
import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { openDatabase, migrateSchema, type DbHandle } from '../../lib/db.ts';
import { startedInBefore } from './for-file.ts';

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

/**
 * A test database and a temp directory (named `<tmpPrefix>…`) for every test of the calling file, made in a
 * `before` hook, dropped and removed in an `after` hook. Read `tdb` and `dir` inside tests.
 */
export function databaseAndDirForFile(tmpPrefix: string): { readonly tdb: TestDatabase; readonly dir: string } {
  let tdb: TestDatabase | undefined;
  let dir: string | undefined;
  before(async () => {
    tdb = await createTestDatabase();
    dir = mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
  });
  after(async () => {
    await tdb?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get tdb() {
      return startedInBefore(tdb, 'the test database');
    },
    get dir() {
      return startedInBefore(dir, 'the temp directory');
    },
  };
}
