// `mailcensus ingest` as a user runs it: exit codes and one-line messages for every kind of bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { freePort } from '../lab/listen.ts';
import { databaseAndDirForFile } from './helpers/db.ts';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'mailcensus.mjs');
const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const scratch = databaseAndDirForFile('mailcensus-ingest-cli-');

interface Run { code: number; stdout: string; stderr: string }

function cli(args: string[], databaseUrl = scratch.tdb.url): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl, MAILCENSUS_DEBUG: '' }, timeout: 120_000, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

async function file(name: string, content: string | Buffer): Promise<string> {
  const p = path.join(scratch.dir, name);
  await writeFile(p, content);
  return p;
}

/** One line on stderr, starting with "mailcensus: error:" and matching `re`. */
function assertOneLineError(r: Run, code: number, re: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^mailcensus: error: /);
  assert.match(lines[0], re);
}

async function surveyCount(name: string): Promise<number> {
  const [{ n }] = await scratch.tdb.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM surveys WHERE name = ${name}`;
  return n;
}

test('ingest prints read / accepted / duplicate / rejected and where the rejects went, exit 0', async () => {
  const f = await file('list.csv', '\ufeffdomain,organization\r\nexample.jp,A\r\nEXAMPLE.JP,B\r\n192.0.2.1,C\r\nexample.com,D\r\n');
  const r = await cli(['ingest', f, '--survey', 'cli']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /-> survey "cli" \(new\)/);
  assert.match(r.stdout, /read\s+4\n/);
  assert.match(r.stdout, /accepted\s+2\s+\(added 2 new, 0 already in the survey\)/);
  assert.match(r.stdout, /duplicate\s+1\n/);
  assert.match(r.stdout, /rejected\s+1\s+\(ip_literal 1\)/);
  assert.ok(r.stdout.includes(`rejects    ${f}.rejects.csv`));
  const again = await cli(['ingest', f, '--survey', 'cli']);
  assert.match(again.stdout, /accepted\s+2\s+\(added 0 new, 2 already in the survey\)/);
});

test('the example list of the README ingests without a rejected line', async () => {
  const copy = await file('domains.csv', await readFile(path.join(ROOT, 'examples', 'domains.csv')));
  const r = await cli(['ingest', copy, '--survey', 'example']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /read\s+20\n/);
  assert.match(r.stdout, /rejected\s+0\n/);
});

test('a missing file: exit 2, named', async () => {
  assertOneLineError(await cli(['ingest', path.join(scratch.dir, 'nope.csv'), '--survey', 'x']), 2, /nope\.csv: no such file/);
});

test('an empty file: exit 2, and no survey is created', async () => {
  assertOneLineError(await cli(['ingest', await file('empty.csv', ''), '--survey', 'empty']), 2, /empty\.csv is empty/);
  assertOneLineError(await cli(['ingest', await file('blank.csv', '\ufeff\r\n\r\n'), '--survey', 'empty']), 2, /blank\.csv is empty/);
  assertOneLineError(await cli(['ingest', await file('header-only.csv', 'domain\r\n'), '--survey', 'empty']), 2, /no domains after the header/);
  assert.equal(await surveyCount('empty'), 0);
});

test('a file without a domain column: exit 2, the header it has is quoted', async () => {
  const r = await cli(['ingest', await file('nodomain.csv', 'name,phone\nSample,03-0000-0000\n'), '--survey', 'nodomain']);
  assertOneLineError(r, 2, /no domain column: the header \(line 1\) has "name", "phone"/);
  assert.equal(await surveyCount('nodomain'), 0);
});

test('binary garbage: exit 2, "looks binary"; an .xlsx is named as such', async () => {
  const garbage = Buffer.concat([Buffer.from('domain\n'), randomBytes(2048), Buffer.from([0])]);
  assertOneLineError(await cli(['ingest', await file('garbage.csv', garbage), '--survey', 'bin']), 2, /garbage\.csv looks binary/);
  const xlsx = Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), randomBytes(100)]);
  assertOneLineError(await cli(['ingest', await file('list.xlsx', xlsx), '--survey', 'bin']), 2, /an \.xlsx workbook\?\); save it as CSV/);
  assert.equal(await surveyCount('bin'), 0);
});

test('a 10 MB line: exit 2, naming the line; nothing is left behind', async () => {
  const f = await file('huge-line.csv', `domain\nexample.jp\n${'a'.repeat(10 * 1024 * 1024)}\nexample.com\n`);
  const r = await cli(['ingest', f, '--survey', 'huge']);
  assertOneLineError(r, 2, /huge-line\.csv line 3: record longer than 1048576 characters/);
  assert.equal(await surveyCount('huge'), 0);
});

test('a bad --encoding: exit 2, naming the option', async () => {
  const f = await file('enc.csv', 'domain\nexample.jp\n');
  assertOneLineError(await cli(['ingest', f, '--survey', 'enc', '--encoding', 'latin1']), 2, /--encoding must be utf8, sjis or auto, got "latin1"/);
});

test('a database that is down: exit 3, naming the server', async () => {
  const port = await freePort();
  const f = await file('down.csv', 'domain\nexample.jp\n');
  const r = await cli(['ingest', f, '--survey', 'down'], `postgres://postgres@127.0.0.1:${port}/mailcensus`);
  assertOneLineError(r, 3, new RegExp(`cannot reach Postgres at postgres://postgres@127\\.0\\.0\\.1:${port}/mailcensus`));
});

test('a migration that fails: `migrate` exits non-zero naming the migration; ingest refuses the schema and adds no survey', async () => {
  // A database where the first migration cannot run: one of its types already exists.
  const name = `mailcensus_test_${randomBytes(5).toString('hex')}`;
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const db = postgres(url.toString(), { max: 1, onnotice: () => {} });
    await db.unsafe(`CREATE TYPE criterion_status AS ENUM ('x')`);
    await db.end();
    const f = await file('migrate.csv', 'domain\nexample.jp\n');
    // Only `mailcensus migrate` migrates (issue 13): it fails naming the migration …
    const m = await cli(['migrate'], url.toString());
    assert.equal(m.code, 1, m.stderr);
    assert.match(m.stderr, /migration 20261129000000_initial failed: .*criterion_status.* already exists/);
    // … and ingest refuses to work on a schema that is not its own.
    const r = await cli(['ingest', f, '--survey', 'm'], url.toString());
    assertOneLineError(r, 3, /schema \(version none: an empty database\) is older than this mailcensus/);
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
});

test('--help documents the options', async () => {
  const r = await cli(['ingest', '--help']);
  assert.equal(r.code, 0);
  for (const opt of ['--survey', '--encoding', '--rejects', '--dry-run']) assert.ok(r.stdout.includes(opt), opt);
});

test('a profiled ingest (node --cpu-prof --cpu-prof-dir DIR, as docs/bench.md runs it) succeeds and profiles the ingest thread too', async () => {
  const f = await file('profiled.csv', 'domain\nexample.jp\nexample.com\n');
  const dir = path.join(scratch.dir, 'cpu-profiles');
  const r = await new Promise<Run>((resolve) => {
    execFile(
      process.execPath,
      ['--cpu-prof', '--cpu-prof-dir', dir, BIN, 'ingest', f, '--survey', 'profiled'],
      { cwd: ROOT, env: { ...process.env, DATABASE_URL: scratch.tdb.url, MAILCENSUS_DEBUG: '' }, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /accepted\s+2\s+\(added 2 new/);
  const { readdir } = await import('node:fs/promises');
  const profiles = (await readdir(dir)).filter((n) => n.endsWith('.cpuprofile'));
  // The main thread's and the ingest thread's (and those of any loader thread): more than one.
  assert.ok(profiles.length >= 2, `profiles: ${profiles.join(', ')}`);
});
