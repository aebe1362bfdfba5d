// Migrations are explicit (issue 13): `mailcensus migrate` is the one command that changes the schema; every
// other command finding the schema older or newer than its own refuses to start, naming both versions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { SCHEMA_VERSION, schemaState } from '../lib/db.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/mailcensus.mjs');
let tdb: TestDatabase;

before(async () => {
  tdb = await createTestDatabase({ migrate: false });
});
after(async () => {
  await tdb?.drop();
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: ROOT, env: { ...process.env, DATABASE_URL: tdb.url, MAILCENSUS_DEBUG: '', MAILCENSUS_QUEUE_PREFIX: 'mctest-migrate' }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

test('commands refuse an unmigrated database, migrate brings it up to date, a newer schema is refused by name', async () => {
  const empty = await cli(['surveys']);
  assert.equal(empty.code, 3, empty.stderr);
  assert.match(empty.stderr, /schema \(version none: an empty database\) is older than this mailcensus \(version \d+_\w+\)/);
  assert.match(empty.stderr, /mailcensus migrate/);
  assert.equal((await schemaState(tdb.db)).database, null, 'a refusing command changed nothing');

  const migrated = await cli(['migrate']);
  assert.equal(migrated.code, 0, migrated.stderr);
  assert.match(migrated.stdout, new RegExp(`schema version ${SCHEMA_VERSION}`));
  assert.equal((await schemaState(tdb.db)).database, SCHEMA_VERSION);
  const again = await cli(['migrate']);
  assert.match(again.stdout, /schema is up to date/);
  const ok = await cli(['surveys']);
  assert.equal(ok.code, 0, ok.stderr);

  // A later mailcensus migrated the database: this one refuses (worker included) and names both versions.
  const newer = '29991231000000_from_the_future';
  await sql`INSERT INTO kysely_migration (name, timestamp) VALUES (${newer}, now()::text)`.execute(tdb.db);
  for (const cmd of [['surveys'], ['worker'], ['status']]) {
    const r = await cli(cmd);
    assert.equal(r.code, 3, `${cmd[0]}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`schema \\(version ${newer}\\) is newer than this mailcensus \\(version ${SCHEMA_VERSION}\\)`), cmd[0]);
  }
  // An older schema (a migration not applied yet) is refused just the same.
  await sql`DELETE FROM kysely_migration WHERE name IN (${newer}, ${SCHEMA_VERSION})`.execute(tdb.db);
  const older = await cli(['worker']);
  assert.equal(older.code, 3, older.stderr);
  assert.match(older.stderr, new RegExp(`is older than this mailcensus \\(version ${SCHEMA_VERSION}\\): 1 migration\\(s\\) pending`));
});
