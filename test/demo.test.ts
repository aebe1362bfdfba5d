// README's first command, `npm run demo`, on a fresh database: the lab's 2021 world goes through the real
// receiver and worker processes and BullMQ, and the report it writes reproduces the seed's 2021 figures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { databaseAndDirForFile } from './helpers/db.ts';
import { demoCommand, runToExit } from './helpers/run-to-exit.ts';

const scratch = databaseAndDirForFile('mc-demo-');

test('npm run demo diagnoses the 2021 lab world through receiver and workers and reports the seed figures', async () => {
  const { code, stderr } = await runToExit(demoCommand(scratch.dir, ['--lang', 'en']), { ...process.env, DATABASE_URL: scratch.tdb.url });
  assert.equal(code, 0, stderr.slice(-3000));
  assert.match(stderr, /all 202 test mails diagnosed/);
  const report = JSON.parse(readFileSync(path.join(scratch.dir, 'report.json'), 'utf8'));
  assert.equal(report.domains, 202);
  const n = Object.fromEntries(Object.entries(report.verdicts as Record<string, { n: number }>).map(([k, v]) => [k, v.n]));
  assert.deepEqual(n, { safe: 12, review: 102, needs_improvement: 87, danger: 1, incomplete: 0 });
  assert.deepEqual([report.spf_dkim.both_ng.n, report.spf_dkim.both_ng.total, report.spf_dkim.both_ng.pct], [32, 202, 16]);
  assert.equal(report.criteria.reverse_dns.ok.pct, 96);
  for (const f of ['report.html', 'report.pdf', 'domains.csv']) assert.ok(statSync(path.join(scratch.dir, f)).size > 1000, `${f} written`);
});
