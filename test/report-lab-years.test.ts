// A survey over three years on the lab, as a user runs it: `ingest` lab/worlds/trend-survey.csv (industry and
// tags), then for each of lab/worlds/trend-2022.json, -2023.json, -2024.json (the same 49 domains; the lab
// clock is each world's observedAt) `lab up` + a `worker` process + `run --wait`; then one `report` with
// --trend 2022..2024 --by industry --changes-from 2023 in every format but the PDF (the PDF of these
// sections: test/report-breakdowns.test.ts). Each figure is recomputed with
// independent SQL over report_diagnoses(), and the story the worlds tell (who fixed what when) is checked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startLab } from '../lab/index.ts';
import { deleteKeysUnder } from '../workers/queues.ts';
import { loadConfig } from '../lib/config.ts';
import { CRITERIA } from '../lib/criteria.ts';
import { newcombe } from '../reports/stats.ts';
import { writeReport } from '../reports/write.ts';
import { parsePeriodSpec, parseTrend, yearPeriod } from '../reports/period.ts';
import { parseCohortKey } from '../reports/breakdowns.ts';
import { InputError } from '../lib/errors.ts';
import type { Report } from '../reports/aggregate.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin/mailcensus.mjs');
const run = promisify(execFile);
const SURVEY = 'trend-lab';
let tdb: TestDatabase;
let tmp: string;
let out: string;
const prefix = `mc-years-${randomBytes(4).toString('hex')}`;
let report: Report;

function cli(args: string[], env: NodeJS.ProcessEnv, timeout = 300_000) {
  return run(process.execPath, [CLI, ...args], { env, timeout, maxBuffer: 16 * 1024 * 1024 });
}

before(async () => {
  tdb = await createTestDatabase();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mc-years-'));
  out = path.join(tmp, 'report');
  const base = { ...process.env, DATABASE_URL: tdb.url, MAILCENSUS_QUEUE_PREFIX: prefix };
  await cli(['ingest', path.join(ROOT, 'lab/worlds/trend-survey.csv'), '--survey', SURVEY, '--rejects', path.join(tmp, 'rejects.csv')], base);
  for (const year of [2022, 2023, 2024]) {
    const lab = await startLab(path.join(ROOT, `lab/worlds/trend-${year}.json`), { dnsPort: 0, smtpPort: 0, stateDir: path.join(tmp, `lab-${year}`) });
    const env = {
      ...base,
      ...lab.env,
      MAILCENSUS_DKIM_SELECTORS: 's1',
      MAILCENSUS_DNS_TIMEOUT_MS: '1000',
      MAILCENSUS_SMTP_CONNECT_TIMEOUT_MS: '3000',
      MAILCENSUS_SMTP_BANNER_TIMEOUT_MS: '3000',
      MAILCENSUS_SMTP_COMMAND_TIMEOUT_MS: '3000',
      MAILCENSUS_PER_IP_INTERVAL_MS: '0',
      MAILCENSUS_WORKER_CONCURRENCY: '8',
      MAILCENSUS_TRANSIENT_RETRY_DELAY_MS: '300',
      MAILCENSUS_LOG_LEVEL: 'warn',
    };
    const worker = spawn(process.execPath, [CLI, 'worker'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    worker.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const exited = new Promise<number | null>((resolve) => worker.on('exit', (c) => resolve(c)));
    try {
      await cli(['run', '--survey', SURVEY, '--wait'], env).catch((err) => {
        throw new Error(`run ${year} failed: ${(err as { stderr?: string }).stderr ?? err}\nworker: ${log}`);
      });
    } finally {
      worker.kill('SIGTERM');
      const timer = setTimeout(() => worker.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
      await lab.stop();
    }
  }
  const { stdout } = await cli(
    ['report', '--survey', SURVEY, '--trend', '2022..2024', '--by', 'industry', '--changes-from', '2023', '--out', out, '--lang', 'ja', '--format', 'html,json,csv,xlsx'],
    base,
  );
  assert.match(stdout, /経年推移/);
  assert.match(stdout, /wrote .*report\.xlsx/);
  report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
});
after(async () => {
  const redis = new Redis(loadConfig().redisUrl, { maxRetriesPerRequest: 1 });
  await deleteKeysUnder(redis, prefix).catch(() => {});
  redis.disconnect();
  await tdb?.drop();
  rmSync(tmp, { recursive: true, force: true });
});

const setOf = (year: number) => sql`report_diagnoses(${`${year}-01-01 00:00+09`}::timestamptz, ${`${year + 1}-01-01 00:00+09`}::timestamptz, NULL, ${SURVEY}::text)`;
const rows = async <T>(q: ReturnType<typeof sql>) => (await q.execute(tdb.db)).rows as T[];

test('three lab years give one diagnosis per domain per year, on each world\'s clock', async () => {
  const list = await rows<{ y: number; n: number }>(sql`SELECT extract(year FROM observed_at)::int AS y, count(DISTINCT domain)::int AS n FROM diagnoses GROUP BY 1 ORDER BY 1`);
  assert.deepEqual(list, [{ y: 2022, n: 49 }, { y: 2023, n: 49 }, { y: 2024, n: 49 }]);
  assert.equal(report.schema_version, 2);
});

test('the trend report: every share per year as SQL counts it, and the year-on-year change with its interval', async () => {
  assert.deepEqual(report.trend!.periods.map((p) => [p.label, p.domains]), [['2022', 49], ['2023', 49], ['2024', 49]]);
  for (const [i, year] of [2022, 2023, 2024].entries()) {
    const counts = await rows<Record<string, number>>(sql`
      SELECT count(*) FILTER (WHERE verdict = 'safe')::int AS safe, count(*) FILTER (WHERE verdict = 'needs_improvement')::int AS needs_improvement,
             count(*) FILTER (WHERE verdict = 'review')::int AS review, count(*) FILTER (WHERE verdict = 'danger')::int AS danger,
             ${sql.join(CRITERIA.map((c) => sql`count(*) FILTER (WHERE ${sql.ref(c)} = 'ng')::int AS ${sql.id(`${c}_ng`)}`))}
        FROM ${setOf(year)}`);
    const c = counts[0]!;
    for (const v of ['safe', 'needs_improvement', 'review', 'danger']) {
      assert.equal(report.trend!.series.find((s) => s.metric === 'verdict' && s.value === v)!.points[i]!.n, c[v], `${year} ${v}`);
    }
    for (const cr of CRITERIA) assert.equal(report.trend!.series.find((s) => s.metric === cr && s.value === 'ng')!.points[i]!.n, c[`${cr}_ng`], `${year} ${cr} ng`);
  }
  // The worlds' story: 2022 has the open relay and 10 manufacturers without SPF or DKIM; both fixed in 2023.
  const safe = report.trend!.series.find((s) => s.metric === 'verdict' && s.value === 'safe')!;
  const danger = report.trend!.series.find((s) => s.metric === 'verdict' && s.value === 'danger')!;
  assert.deepEqual(danger.points.map((p) => p.n), [1, 0, 0]);
  assert.equal(safe.points[1]!.n - safe.points[0]!.n, 11);
  assert.deepEqual(safe.points[1]!.change, newcombe(safe.points[1]!.n, 49, safe.points[0]!.n, 49));
  const trendCsv = readFileSync(path.join(out, 'trend.csv'), 'utf8');
  assert.match(trendCsv, /verdict,safe,2023,/);
});

test('the cohort report by industry matches SQL; the six retailers are suppressed everywhere', async () => {
  const list = await rows<{ industry: string; verdict: string; n: number }>(sql`
    SELECT sd.industry, r.verdict::text AS verdict, count(*)::int AS n FROM ${setOf(2024)} r
      JOIN survey_domains sd ON sd.survey_id = r.survey_id AND sd.domain = r.domain GROUP BY 1, 2`);
  const groups = new Map(report.cohorts!.groups.map((g) => [g.key, g]));
  assert.deepEqual([...groups.keys()].sort(), ['小売', '製造業', '金融'].sort());
  assert.equal(groups.get('製造業')!.domains, 24);
  assert.equal(groups.get('金融')!.domains, 19);
  assert.equal(groups.get('小売')!.domains_display, '<10');
  for (const r of list) {
    const f = groups.get(r.industry)!.verdicts[r.verdict as 'safe'];
    if (r.industry === '小売' || r.n < 10) assert.equal(f.display, '<10', `${r.industry} ${r.verdict}`);
    else assert.equal(f.n, r.n, `${r.industry} ${r.verdict}`);
  }
  const html = readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.doesNotMatch(html, /小売<\/td><td>6</, 'the retail count is not printed');
});

test('the domain-by-domain report 2023 → 2024 matches SQL and names who improved and who regressed', async () => {
  const ch = report.changes!;
  const t = await rows<{ b: string; a: string; n: number }>(sql`
    SELECT b.verdict::text AS b, a.verdict::text AS a, count(*)::int AS n FROM ${setOf(2024)} a JOIN ${setOf(2023)} b USING (domain) GROUP BY 1, 2`);
  for (const r of t) assert.equal(ch.transitions[r.b as 'safe'][r.a as 'safe'], r.n, `${r.b} → ${r.a}`);
  const [fx] = await rows<{ fixed: number; broken: number }>(sql`
    SELECT count(*) FILTER (WHERE b.tls_receive = 'ng' AND a.tls_receive = 'ok')::int AS fixed,
           count(*) FILTER (WHERE b.tls_receive = 'ok' AND a.tls_receive = 'ng')::int AS broken
      FROM ${setOf(2024)} a JOIN ${setOf(2023)} b USING (domain)`);
  assert.deepEqual([ch.criteria.tls_receive.fixed, ch.criteria.tls_receive.broken], [fx!.fixed, fx!.broken]);
  // mfg-b turned STARTTLS on (8 fixed), fin-b lost it (6 broken); mfg-c signed DNSSEC (6 fixed).
  assert.deepEqual([ch.criteria.tls_receive.fixed, ch.criteria.tls_receive.broken, ch.criteria.dnssec.fixed], [8, 6, 6]);
  assert.equal(ch.improved, 14);
  assert.equal(ch.regressed, 6);
  const csv = readFileSync(path.join(out, 'changes.csv'), 'utf8');
  assert.match(csv, /fin-b1\.test,regressed,safe,needs_improvement,,tls_receive/);
  assert.match(csv, /mfg-c1\.test,improved,review,safe,dnssec,/);
  assert.ok(report.summary!.ja.some((x) => x.includes('49ドメインのうち、14ドメインの総合評価が改善し、6ドメインが悪化しました')), report.summary!.ja.join('\n'));
});

test('runs work as periods: a trend over the three runs and the changes between two runs give the same figures', async () => {
  const ids = (await rows<{ id: number }>(sql`SELECT id FROM runs ORDER BY id`)).map((r) => r.id);
  assert.equal(ids.length, 3);
  const dir = path.join(tmp, 'runs');
  const request = (o: { trend?: string; from?: string; to?: string }) => ({
    period: yearPeriod(2024), source: null, survey: SURVEY,
    trend: o.trend ? parseTrend(o.trend) : null,
    changesFrom: o.from ? parsePeriodSpec(o.from, '--changes-from') : null,
    changesTo: o.to ? parsePeriodSpec(o.to, '--changes-to') : null,
  });
  const { report: r } = await writeReport(tdb.db, request({ trend: `runs:${ids.join(',')}`, from: `run:${ids[1]}`, to: `run:${ids[2]}` }), { out: dir, formats: ['json', 'csv'], lang: 'ja' });
  assert.equal(r.trend!.kind, 'run');
  assert.deepEqual(r.trend!.periods.map((p) => [p.label, p.from]), ids.map((id, i) => [`run ${id}`, `${2022 + i}-06-30`]));
  for (const s of r.trend!.series) {
    const byYear = report.trend!.series.find((x) => x.metric === s.metric && x.value === s.value)!;
    assert.deepEqual(s.points.map((p) => p.n), byYear.points.map((p) => p.n), `${s.metric} ${s.value}`);
  }
  assert.deepEqual(r.changes!.transitions, report.changes!.transitions);
  assert.deepEqual(r.changes!.criteria, report.changes!.criteria);
  assert.throws(() => parseTrend(`runs:${ids[0]}`), (e: Error) => e instanceof InputError && /give at least two runs/.test(e.message));
  assert.throws(() => parseCohortKey('industr'), /--by: unknown column "industr"/);
  await assert.rejects(writeReport(tdb.db, request({ from: 'run:99999' }), { out: dir, formats: ['json'], lang: 'ja' }), (e: Error) => e instanceof InputError && /there is no run 99999/.test(e.message));
});
