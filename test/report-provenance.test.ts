// Reports and test-mail provenance (issue 12): a report can be restricted to provenance classes, counts the
// domains each class contributes, and never publishes the opt-out list of a run (only how many entries it had).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { addTestMailDiagnosis, criteria } from './report-fixtures.ts';
import { computeReport, writeReport } from '../reports/write.ts';
import { insertDiagnosis } from '../lib/diagnosis.ts';
import { judgeVerdict } from '../lib/verdict.ts';
import type { Period } from '../reports/period.ts';
import { findingResults } from './report-fixtures.ts';

let tdb: TestDatabase;
let dir: string;
const YEAR: Period = { kind: 'year', from: '2021-01-01', to: '2021-12-31', year: 2021 } as Period;

before(async () => {
  [tdb, dir] = await Promise.all([createTestDatabase(), mkdtemp(path.join(tmpdir(), 'mc-prov-'))]);
  const classes: [string, 'requested' | 'authenticated' | 'unverified', Parameters<typeof addTestMailDiagnosis>[3]][] = [
    ['req1.example.jp', 'requested', {}],
    ['auth1.example.jp', 'authenticated', {}],
    ['auth2.example.jp', 'authenticated', { spf: 'ng', dkim: 'ng' }],
    ['forged1.example.jp', 'unverified', { open_relay: 'ng' }],
    ['forged2.example.jp', 'unverified', { open_relay: 'ng' }],
    ['forged3.example.jp', 'unverified', { open_relay: 'ng' }],
  ];
  for (const [domain, provenance, over] of classes) {
    const id = await addTestMailDiagnosis(tdb.db, domain, '2021-06-15T03:00:00Z', over);
    await tdb.db.updateTable('diagnoses').set({ provenance } as never).where('id', '=', id).execute();
  }
  // A forged mail, later than auth1's real one: with `--provenance authenticated` auth1 counts with its own.
  const late = await addTestMailDiagnosis(tdb.db, 'auth1.example.jp', '2021-07-01T03:00:00Z', { open_relay: 'ng' });
  await tdb.db.updateTable('diagnoses').set({ provenance: 'unverified' } as never).where('id', '=', late).execute();

  // A scan run whose configuration holds an opt-out list.
  const survey = await tdb.db.insertInto('surveys').values({ name: 'opt' }).returning('id').executeTakeFirstOrThrow();
  await tdb.db.insertInto('survey_domains').values({ survey_id: survey.id, domain: 'scan.example.jp' }).execute();
  const run = await tdb.db
    .insertInto('runs')
    .values({ survey_id: survey.id, state: 'done', total: 1, config: { dnsTimeoutMs: 2000, optOut: ['secret-optout.example', '198.51.100.77'] } })
    .returning('id')
    .executeTakeFirstOrThrow();
  const c = criteria({}, 'scan');
  await insertDiagnosis(
    tdb.db,
    { source: 'scan', domain: 'scan.example.jp', observedAt: new Date('2021-06-15T03:00:00Z'), criteria: c, verdict: judgeVerdict(c, 'scan'), findings: findingResults({ dmarcPolicy: 'unknown', mtaSts: 'unknown', tlsRpt: 'unknown', tlsVersions: [], certProblems: [], nullMx: false }), observations: {}, mx: [] },
    { source: 'scan', runId: run.id, surveyId: survey.id },
  );
});

after(async () => {
  await tdb?.drop();
  await rm(dir, { recursive: true, force: true });
});

test('the report counts the domains of each provenance class', async () => {
  const r = await computeReport(tdb.db, { period: YEAR, source: 'test-mail', survey: null });
  assert.equal(r.domains, 6);
  assert.deepEqual(r.coverage.provenance, { requested: 1, authenticated: 1, unverified: 4, none: 0 });
});

test('--provenance restricts the set before the latest-per-domain pick: forged mails no longer count', async () => {
  const r = await computeReport(tdb.db, { period: YEAR, source: 'test-mail', survey: null, provenance: ['requested', 'authenticated'] });
  assert.deepEqual(r.coverage.provenance, { requested: 1, authenticated: 2, unverified: 0, none: 0 });
  assert.equal(r.verdicts.danger.n, 0, 'the forged open-relay diagnoses are gone, auth1 counts with its authenticated one');
  const only = await computeReport(tdb.db, { period: YEAR, source: 'test-mail', survey: null, provenance: ['unverified'] });
  assert.equal(only.verdicts.danger.n, 4);
});

test('reports publish how many opt-out entries a run had, never the entries', async () => {
  const out = path.join(dir, 'opt');
  await writeReport(tdb.db, { period: YEAR, source: 'scan', survey: 'opt' }, { out, formats: ['json', 'html'], lang: 'en', chromium: '/usr/bin/chromium' } as never);
  const json = await readFile(path.join(out, 'report.json'), 'utf8');
  const html = await readFile(path.join(out, 'report.html'), 'utf8');
  for (const text of [json, html]) {
    assert.ok(!text.includes('secret-optout.example'), 'no opted-out domain');
    assert.ok(!text.includes('198.51.100.77'), 'no opted-out IP');
  }
  const report = JSON.parse(json);
  assert.deepEqual(report.coverage.runs[0].config.optOut, { entries: 2 });
});
