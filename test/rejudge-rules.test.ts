// Re-judging with the production code: lab observations are stored by the real scan path, a rule changes
// behind a new rules version, and `rejudgeDiagnoses` (what `mailcensus rejudge` runs) rewrites exactly the
// statuses and verdicts the new rule changes, records the new version, and probes nothing. Then the CLI,
// with the shipped rules, restores every stored judgement.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from '../lab/index.ts';
import { loadConfig } from '../lib/config.ts';
import { createProbeDeps, diagnoseDomain } from '../lib/diagnose.ts';
import { rejudge } from '../lib/checks/judge.ts';
import { CHECKS, RULES_VERSION, type Rules } from '../lib/checks/registry.ts';
import type { Check } from '../lib/checks/contract.ts';
import { rejudgeDiagnoses } from '../workers/rejudge.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { FAST_LAB_CHECKER_ENV } from './helpers/lab-env.ts';
import { scanRun } from './report-fixtures.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let lab: Lab;
let t: TestDatabase;
let runId: number;

before(async () => {
  lab = await startLab(`${ROOT}lab/worlds/test-dns-checks.json`, { dnsPort: 0, smtpPort: 0, httpsPort: 0, stateDir: mkdtempSync(path.join(os.tmpdir(), 'mc-rejudge-')) });
  t = await createTestDatabase();
  const deps = createProbeDeps(loadConfig({ ...process.env, ...lab.env, ...FAST_LAB_CHECKER_ENV }));
  const domains = lab.world.domains.map((d) => d.name);
  const run = await scanRun(t.db, 'rejudge', domains.length);
  runId = run.runId;
  for (const domain of domains) await run.store(await diagnoseDomain(domain, deps, new Date('2021-06-30T00:00:00Z')));
});
after(async () => {
  await t?.drop();
  await lab?.stop();
});

/** New rules: an unsigned zone no longer counts against DNSSEC (it is n/a), everything else as shipped. */
function unsignedIsNa(): Rules {
  const checks: Check[] = CHECKS.map((c) =>
    c.id !== 'dnssec'
      ? c
      : { ...c, evaluate: (input) => { const r = c.evaluate(input); return r.reason === 'insecure' ? { ...r, status: 'na' } : r; } },
  );
  return { version: RULES_VERSION + 1, checks };
}

const stored = () =>
  t.db.selectFrom('diagnoses').select(['domain', 'dnssec', 'dnssec_reason', 'spf', 'verdict', 'rules_version']).where('run_id', '=', runId).orderBy('domain').execute();

test('a changed rule re-judges exactly the diagnoses it concerns, records the new version and probes nothing', async () => {
  const before = await stored();
  const insecure = before.filter((d) => d.dnssec_reason === 'insecure');
  assert.ok(insecure.length >= 2, 'the world has unsigned domains');
  const queries = lab.dns.queries;
  const rules = unsignedIsNa();
  const r = await rejudgeDiagnoses(t.db, { rejudge: (s) => rejudge(s, rules) }, { runId });
  assert.equal(r.examined, before.length);
  assert.equal(r.changed, insecure.length);
  assert.equal(r.rulesVersion, RULES_VERSION + 1);
  assert.equal(lab.dns.queries, queries, 'no DNS query');
  const after = await stored();
  for (const [i, d] of after.entries()) {
    const was = before[i];
    assert.equal(d.rules_version, RULES_VERSION + 1);
    assert.equal(d.spf, was.spf, d.domain);
    if (was.dnssec_reason === 'insecure') {
      assert.equal(d.dnssec, 'na', d.domain);
      // A review only DNSSEC proved becomes safe, or incomplete where an unknown could still prove review; a
      // worse verdict stays.
      if (was.verdict !== 'review') assert.equal(d.verdict, was.verdict, d.domain);
      else if (d.verdict !== 'review') assert.ok(d.verdict === 'safe' || d.verdict === 'incomplete', `${d.domain}: ${d.verdict}`);
    } else {
      assert.deepEqual([d.dnssec, d.verdict], [was.dnssec, was.verdict], d.domain);
    }
  }
  assert.ok(r.verdictChanges['review->safe'] > 0, JSON.stringify(r.verdictChanges));
});

test('`mailcensus rejudge --run` with the shipped rules restores every judgement', async () => {
  const out = await new Promise<string>((resolve, reject) =>
    execFile('node', [`${ROOT}bin/mailcensus.mjs`, 'rejudge', '--run', String(runId)], { env: { ...process.env, DATABASE_URL: t.url }, timeout: 180_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
  assert.match(out, new RegExp(`with rules version ${RULES_VERSION}: \\d+ changed`));
  const after = await stored();
  assert.ok(after.every((d) => d.rules_version === RULES_VERSION));
  assert.ok(after.filter((d) => d.dnssec_reason === 'insecure').every((d) => d.dnssec === 'ng'));
});
