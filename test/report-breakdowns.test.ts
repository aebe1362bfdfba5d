// Cohorts, trends, domain-by-domain changes, the rules/domains split and unknowns as bounds (issue 16), on a
// survey diagnosed in three years (2022–2024), each figure recomputed here with independent SQL over
// report_diagnoses(); plus the interval statistics against published values, the CSVs, the XLSX, and the
// HTML looked at in headless Chromium (screenshot in test-artifacts/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { parse } from 'csv-parse/sync';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { criteria } from './report-fixtures.ts';
import { insertDiagnosis } from '../lib/diagnosis.ts';
import { judgeVerdict } from '../lib/verdict.ts';
import { CRITERIA, type Criterion, type Status } from '../lib/criteria.ts';
import { writeReport } from '../reports/write.ts';
import { parseTrend, yearPeriod } from '../reports/period.ts';
import { mcnemar, newcombe, wilsonRaw } from '../reports/stats.ts';
import { withChromiumPage } from '../lib/browser.ts';
import type { Report } from '../reports/aggregate.ts';
import { renderHtml } from '../reports/html.ts';
import { findingResults } from './report-fixtures.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = path.join(root, 'test-artifacts');
const out = path.join(artifacts, 'report-breakdowns');
const SURVEY = 'multi-year';
let t: TestDatabase;
let report: Report;

const industryOf = (i: number) => (i < 30 ? '製造業' : i < 54 ? '金融' : '小売');
function statuses(i: number, year: number): Partial<Record<Criterion, Status>> {
  const s: Partial<Record<Criterion, Status>> = {};
  const spfNg = year === 2022 ? i % 3 === 0 : year === 2023 ? i % 5 === 0 : i % 7 === 0;
  if (spfNg) s.spf = 'ng';
  if (i % 2 === 0) s.dkim = 'ng';
  if ((i + year) % 4 === 0) s.dnssec = 'ng';
  if (i % 11 === 0 && year < 2024) s.tls_receive = 'ng';
  if (i % 13 === 1 && year === 2024) s.tls_receive = 'unknown';
  if (i % 17 === 0) s.reverse_dns = 'ng';
  return s;
}

before(async () => {
  t = await createTestDatabase();
  const survey = await t.db.insertInto('surveys').values({ name: SURVEY }).returning('id').executeTakeFirstOrThrow();
  for (let i = 0; i < 60; i++) {
    await t.db.insertInto('survey_domains').values({ survey_id: survey.id, domain: `d${i}.example.jp`, industry: industryOf(i), tags: i % 4 === 0 ? ['上場'] : [] }).execute();
  }
  for (const year of [2022, 2023, 2024]) {
    const run = await t.db.insertInto('runs').values({ survey_id: survey.id, state: 'done', total: 60, config: {} }).returning('id').executeTakeFirstOrThrow();
    for (let i = 0; i < (year === 2024 ? 55 : 60); i++) {
      const c = criteria(statuses(i, year), 'scan');
      let verdict = judgeVerdict(c, 'scan');
      // 2022 was judged by older rules that ignored DNSSEC: a DNSSEC-only NG was stored as safe.
      if (year === 2022) verdict = { ...verdict, rulesVersion: 0, ...(verdict.verdict === 'review' && c.dnsbl.status === 'ok' ? { verdict: 'safe' as const, proven: 'safe' as const } : {}) };
      await insertDiagnosis(
        t.db,
        {
          source: 'scan', domain: `d${i}.example.jp`, observedAt: new Date(`${year}-06-${String((i % 28) + 1).padStart(2, '0')}T03:00:00Z`), criteria: c, verdict,
          findings: findingResults({ dmarcPolicy: 'unknown', mtaSts: 'unknown', tlsRpt: 'unknown', tlsVersions: [], certProblems: [], nullMx: false }),
          observations: {}, mx: [],
        },
        { source: 'scan', runId: run.id, surveyId: survey.id },
      );
    }
  }
  rmSync(out, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  ({ report } = await writeReport(
    t.db,
    { period: yearPeriod(2024), source: null, survey: SURVEY, by: 'industry', minCell: 10, trend: parseTrend('2022..2024'), changesFrom: yearPeriod(2023) },
    { out, formats: ['html', 'json', 'csv', 'xlsx'], lang: 'ja' },
  ));
});
after(async () => {
  await t.drop();
});

const setOf = (year: number) => sql`report_diagnoses(${`${year}-01-01 00:00+09`}::timestamptz, ${`${year + 1}-01-01 00:00+09`}::timestamptz, NULL, ${SURVEY}::text)`;
async function q<T>(query: ReturnType<typeof sql>): Promise<T[]> {
  return (await query.execute(t.db)).rows as T[];
}

test('the interval statistics match published values', () => {
  // Newcombe (1998), Table II, example (a): 56/70 − 48/80, method 10: 0.0524 to 0.3339.
  const d = newcombe(56, 70, 48, 80)!;
  assert.deepEqual([d.points, d.low, d.high, d.distinguishable], [20, 5.2, 33.4, true]);
  // Example (h): 10/10 − 0/10 … and a null difference 5/10 − 5/10 is not distinguishable.
  assert.equal(newcombe(5, 10, 5, 10)!.distinguishable, false);
  const w = wilsonRaw(81, 263)!;
  assert.deepEqual([w.low.toFixed(4), w.high.toFixed(4)], ['0.2553', '0.3662']);
  // Exact McNemar: 1 vs 9 discordant pairs, p = 2 × 11/1024.
  assert.equal(mcnemar(1, 9).p, 0.021484);
  assert.equal(mcnemar(0, 0).p, null);
  assert.equal(mcnemar(5, 5).p, 1);
});

test('the trend has every share per year, as SQL counts it, with year-on-year differences', async () => {
  assert.deepEqual(report.trend!.periods.map((p) => [p.label, p.domains]), [['2022', 60], ['2023', 60], ['2024', 55]]);
  for (const year of [2022, 2023, 2024]) {
    const rows = await q<{ verdict: string; n: number; total: number }>(sql`SELECT verdict::text AS verdict, count(*)::int AS n, (sum(count(*)) OVER ())::int AS total FROM ${setOf(year)} GROUP BY 1`);
    const series = report.trend!.series.filter((s) => s.metric === 'verdict');
    for (const s of series) {
      const p = s.points.find((x) => x.label === String(year))!;
      const row = rows.find((r) => r.verdict === s.value);
      assert.equal(p.n, row?.n ?? 0, `${year} ${s.value}`);
      assert.equal(p.total, rows[0]!.total);
    }
    for (const c of CRITERIA) {
      const [ng] = await q<{ n: number }>(sql`SELECT count(*) FILTER (WHERE ${sql.ref(c)} = 'ng')::int AS n FROM ${setOf(year)}`);
      const s = report.trend!.series.find((x) => x.metric === c && x.value === 'ng')!;
      assert.equal(s.points.find((x) => x.label === String(year))!.n, ng!.n, `${year} ${c} ng`);
    }
  }
  const spf = report.trend!.series.find((x) => x.metric === 'spf' && x.value === 'ng')!;
  const [p22, p23] = spf.points;
  assert.equal(p22!.change, null);
  assert.deepEqual(p23!.change, newcombe(p23!.n, p23!.total, p22!.n, p22!.total));
});

test('cohorts by industry match SQL, small cells are suppressed, and cohort-vs-rest differences carry intervals', async () => {
  const rows = await q<{ industry: string; verdict: string; n: number }>(sql`
    SELECT sd.industry, r.verdict::text AS verdict, count(*)::int AS n FROM ${setOf(2024)} r
      JOIN survey_domains sd ON sd.survey_id = r.survey_id AND sd.domain = r.domain GROUP BY 1, 2`);
  const c = report.cohorts!;
  assert.equal(c.by, 'industry');
  assert.deepEqual(c.groups.map((g) => [g.key, g.domains_display]), [['小売', '<10'], ['金融', '24'], ['製造業', '30']].sort((a, b) => a[0]!.localeCompare(b[0]!, 'ja')));
  for (const g of c.groups) {
    for (const [v, f] of Object.entries(g.verdicts)) {
      const n = rows.find((r) => r.industry === g.key && r.verdict === v)?.n ?? 0;
      if (g.suppressed || n < 10) {
        assert.equal(f.suppressed, true, `${g.key} ${v} (${n}) suppressed`);
        assert.equal(f.n, null);
        assert.equal(f.display, '<10');
      } else {
        assert.equal(f.n, n, `${g.key} ${v}`);
        const total = rows.filter((r) => r.industry === g.key).reduce((a, r) => a + r.n, 0);
        const restN = rows.filter((r) => r.industry !== g.key && r.verdict === v).reduce((a, r) => a + r.n, 0);
        assert.deepEqual(f.vs_rest, newcombe(n, total, restN, 55 - total));
      }
    }
  }
  // The suppressed numbers appear in no output.
  const csv = readFileSync(path.join(out, 'cohorts.csv'), 'utf8');
  const parsed = parse(csv, { bom: true, columns: true }) as Record<string, string>[];
  for (const r of parsed.filter((x) => x.industry === '小売')) assert.deepEqual([r.n, r.pct, r.cohort_domains], ['<10', '', '<10']);
  const html = readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.match(html, /小売<\/td><td>&lt;10<\/td>/);
});

test('domain by domain: transitions, fixed and broken criteria and McNemar match SQL', async () => {
  const ch = report.changes!;
  const pairs = await q<{ b: string; a: string; n: number }>(sql`
    SELECT b.verdict::text AS b, a.verdict::text AS a, count(*)::int AS n FROM ${setOf(2024)} a JOIN ${setOf(2023)} b ON b.domain = a.domain GROUP BY 1, 2`);
  assert.equal(ch.paired, pairs.reduce((x, r) => x + r.n, 0));
  assert.equal(ch.paired, 55);
  assert.equal(ch.only_before, 5);
  for (const r of pairs) assert.equal(ch.transitions[r.b as 'safe'][r.a as 'safe'], r.n, `${r.b} → ${r.a}`);
  for (const c of CRITERIA) {
    const [x] = await q<{ fixed: number; broken: number }>(sql`
      SELECT count(*) FILTER (WHERE b.${sql.ref(c)} = 'ng' AND a.${sql.ref(c)} = 'ok')::int AS fixed,
             count(*) FILTER (WHERE b.${sql.ref(c)} = 'ok' AND a.${sql.ref(c)} = 'ng')::int AS broken
        FROM ${setOf(2024)} a JOIN ${setOf(2023)} b ON b.domain = a.domain`);
    assert.deepEqual([ch.criteria[c].fixed, ch.criteria[c].broken], [x!.fixed, x!.broken], c);
    assert.deepEqual(ch.criteria[c].mcnemar, mcnemar(x!.fixed, x!.broken));
  }
  assert.ok(ch.criteria.spf.fixed > 0 && ch.criteria.tls_receive.fixed > 0);
  const list = parse(readFileSync(path.join(out, 'changes.csv'), 'utf8'), { bom: true, columns: true }) as Record<string, string>[];
  assert.equal(list.filter((r) => r.direction === 'improved').length, ch.improved);
  assert.ok(list.some((r) => r.direction === 'improved' && r.fixed.includes('spf')));
  assert.equal(ch.rules, null, '2023 was judged under the current rules');
});

test('a change from a period judged under older rules is split into rules and domains', async () => {
  const dir = path.join(artifacts, 'report-breakdowns-rules');
  const { report: r } = await writeReport(t.db, { period: yearPeriod(2024), source: null, survey: SURVEY, changesFrom: yearPeriod(2022) }, { out: dir, formats: ['json'], lang: 'en' });
  const split = r.changes!.rules!;
  assert.deepEqual(split.earlier_rules_versions, [0]);
  assert.equal(split.rejudged, 60);
  // Independently: re-judge the stored 2022 statuses with the current rules, in the test.
  const rows = await q<Record<string, string>>(sql`SELECT verdict::text AS verdict, ${sql.join(CRITERIA.map((c) => sql`${sql.ref(c)}::text AS ${sql.id(c)}`))} FROM ${setOf(2022)}`);
  const safeStored = rows.filter((x) => x.verdict === 'safe').length;
  const safeNow = rows.filter((x) => judgeVerdict(criteria(Object.fromEntries(CRITERIA.map((c) => [c, x[c]])) as never, 'scan'), 'scan').verdict === 'safe').length;
  const [cur] = await q<{ n: number }>(sql`SELECT count(*) FILTER (WHERE verdict = 'safe')::int AS n FROM ${setOf(2024)}`);
  const round = (x: number) => Math.round(x * 10) / 10;
  assert.equal(split.verdicts.safe.rules_points, round((100 * safeNow) / 60 - (100 * safeStored) / 60));
  assert.equal(split.verdicts.safe.domains_points, round((100 * cur!.n) / 55 - (100 * safeNow) / 60));
  assert.ok(split.verdicts.safe.rules_points! < 0, 'the stricter rules lower the safe share');
});

test('every share carries its range if the unknowns resolved best or worst', async () => {
  const [x] = await q<{ ok: number; unknown: number; total: number }>(sql`
    SELECT count(*) FILTER (WHERE tls_receive = 'ok')::int AS ok, count(*) FILTER (WHERE tls_receive = 'unknown')::int AS unknown, count(*)::int AS total FROM ${setOf(2024)}`);
  assert.ok(x!.unknown > 0);
  assert.deepEqual(report.criteria.tls_receive.ok.bounds, { low: Math.round((1000 * x!.ok) / x!.total) / 10, high: Math.round((1000 * (x!.ok + x!.unknown)) / x!.total) / 10 });
  const inc = report.verdicts.incomplete;
  assert.ok(inc.n > 0);
  assert.deepEqual(inc.bounds, { low: 0, high: 0 });
  const ni = report.verdicts.needs_improvement;
  assert.ok(ni.bounds!.high > ni.bounds!.low, 'unknown receive TLS could make more domains need improvement');
});

test('report.xlsx has one sheet per table, numbers as numbers and percentages formatted', async () => {
  const { default: ExcelJS } = await import('exceljs');
  const wb = new ExcelJS.Workbook();
  await wb.xlsx.readFile(path.join(out, 'report.xlsx'));
  const names = wb.worksheets.map((w) => w.name);
  for (const n of ['verdicts', 'criteria', 'spf_dkim', 'findings', 'cohorts', 'trend', 'transitions', 'criteria_changes', 'changes']) assert.ok(names.includes(n), `sheet ${n}`);
  const ws = wb.getWorksheet('verdicts')!;
  const header = (ws.getRow(1).values as unknown[]).slice(1);
  const col = (name: string) => header.indexOf(name) + 1;
  let row = ws.getRow(2);
  for (let i = 2; i <= ws.rowCount; i++) if (ws.getRow(i).getCell(col('verdict')).value === 'needs_improvement') row = ws.getRow(i);
  assert.equal(row.getCell(col('verdict')).value, 'needs_improvement');
  assert.equal(typeof row.getCell(col('n')).value, 'number');
  assert.equal(row.getCell(col('n')).value, report.verdicts.needs_improvement.n);
  assert.equal(row.getCell(col('share')).value, report.verdicts.needs_improvement.n / report.domains);
  assert.equal(row.getCell(col('share')).numFmt, '0%');
  assert.equal(row.getCell(col('wilson_low')).value, report.verdicts.needs_improvement.wilson!.low / 100);
});

test('cohorts by tag: a domain is in each of its tags, the untagged are a cohort, --min-cell 0 suppresses nothing', async () => {
  const { report: r } = await writeReport(t.db, { period: yearPeriod(2024), source: null, survey: SURVEY, by: 'tag', minCell: 0 }, { out: path.join(artifacts, 'report-breakdowns-tag'), formats: ['json'], lang: 'en' });
  const [x] = await q<{ tagged: number; untagged: number; safe: number }>(sql`
    SELECT count(*) FILTER (WHERE '上場' = ANY(sd.tags))::int AS tagged, count(*) FILTER (WHERE cardinality(sd.tags) = 0)::int AS untagged,
           count(*) FILTER (WHERE '上場' = ANY(sd.tags) AND r.verdict = 'safe')::int AS safe
      FROM ${setOf(2024)} r JOIN survey_domains sd ON sd.survey_id = r.survey_id AND sd.domain = r.domain`);
  const groups = new Map(r.cohorts!.groups.map((g) => [g.key, g]));
  assert.equal(groups.get('上場')!.domains, x!.tagged);
  assert.equal(groups.get('')!.domains, x!.untagged);
  assert.equal(groups.get('上場')!.verdicts.safe.n, x!.safe);
  assert.ok(r.cohorts!.groups.every((g) => !g.suppressed && Object.values(g.verdicts).every((f) => !f.suppressed)));
  // The same figures in English, every section.
  const en = renderHtml(report, null, 'en');
  for (const s of ['Results by industry', 'Over the years', 'Domain by domain (2023 → 2024)', 'Verdict transitions', 'If unknowns were best / worst']) assert.ok(en.includes(s), s);
});

test('an empty last period still shows its trend', async () => {
  const { report: r } = await writeReport(t.db, { period: yearPeriod(2025), source: null, survey: SURVEY, trend: parseTrend('2023..2025') }, { out: path.join(artifacts, 'report-breakdowns-empty'), formats: ['json', 'html'], lang: 'ja' });
  assert.equal(r.domains, 0);
  assert.deepEqual(r.trend!.periods.map((p) => p.domains), [60, 55, 0]);
  assert.equal(r.trend!.series[0]!.points[2]!.change, null);
  const html = readFileSync(path.join(artifacts, 'report-breakdowns-empty', 'report.html'), 'utf8');
  assert.match(html, /経年推移/);
  assert.match(html, /<svg/);
});

test('the HTML with every new section renders in headless Chromium', async () => {
  const html = readFileSync(path.join(out, 'report.html'), 'utf8');
  const errors: string[] = [];
  const facts = await withChromiumPage(async (page) => {
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.setViewportSize({ width: 1000, height: 1400 });
    await page.setContent(html, { waitUntil: 'load' });
    await page.screenshot({ path: path.join(artifacts, 'report-breakdowns.png'), fullPage: true });
    return page.evaluate(() => ({ svgs: document.querySelectorAll('figure svg').length, text: document.body.innerText }));
  });
  assert.deepEqual(errors, []);
  assert.ok(facts.svgs >= 6, `charts incl. cohorts and trend (${facts.svgs})`);
  for (const s of ['業種別の結果', '経年推移', 'ドメインごとの変化', '判定の遷移', '改善したドメイン', 'McNemar']) assert.ok(facts.text.includes(s), s);
  assert.ok(existsSync(path.join(artifacts, 'report-breakdowns.png')));
});
