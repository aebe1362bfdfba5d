// The report's files: report.json, CSV with BOM, the HTML opened in headless Chromium (charts, no console
// errors, no requests, a screenshot in test-artifacts/), the PDF's Japanese text, a missing Chromium, and
// the command's exit codes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { addYear, YEAR_2020, YEAR_2021 } from './report-fixtures.ts';
import { writeReport } from '../reports/write.ts';
import { yearPeriod } from '../reports/period.ts';
import { withChromiumPage } from '../lib/browser.ts';
import { renderHtml } from '../reports/html.ts';
import type { Report } from '../reports/aggregate.ts';
import { findingLabel, findingValueLabel } from '../reports/labels.ts';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = path.join(root, 'test-artifacts');
const out = path.join(artifacts, 'report-2021');

let t: TestDatabase;
let files: string[];

before(async () => {
  t = await createTestDatabase();
  await addYear(t.db, 2021, YEAR_2021, 'c');
  await addYear(t.db, 2020, YEAR_2020, 'p');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  ({ files } = await writeReport(
    t.db,
    { period: yearPeriod(2021), source: 'test-mail', survey: null },
    { out, formats: ['html', 'pdf', 'json', 'csv'], lang: 'ja' },
  ));
});
after(async () => {
  await t.drop();
});

test('report.json follows the documented contract', () => {
  const r = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
  assert.equal(r.schema_version, 2);
  assert.deepEqual([r.cohorts, r.trend, r.changes], [null, null, null], "schema-2 sections only when asked for");
  assert.ok(r.verdicts.safe.bounds, "every verdict share has its bounds");
  assert.deepEqual(Object.keys(r.verdicts).sort(), ['danger', 'incomplete', 'needs_improvement', 'review', 'safe']);
  assert.deepEqual(Object.keys(r.criteria), ['open_relay', 'spf', 'dkim', 'tls_receive', 'tls_send', 'reverse_dns', 'dnssec', 'dnsbl']);
  assert.deepEqual(Object.keys(r.criteria.spf), ['ok', 'ng', 'unknown', 'na']);
  assert.deepEqual(Object.keys(r.spf_dkim), ['both_ok', 'spf_only', 'dkim_only', 'both_ng', 'unknown']);
  assert.equal(r.verdicts.needs_improvement.pct, 43);
  assert.equal(r.previous?.verdicts.needs_improvement.pct, 53);
  assert.ok(files.includes(path.join(out, 'report.pdf')));
});

test('CSVs are UTF-8 with a BOM and CRLF, and parse back to the figures', () => {
  for (const name of ['domains.csv', 'verdicts.csv', 'criteria.csv', 'spf_dkim.csv', 'findings.csv']) {
    const buf = readFileSync(path.join(out, name));
    assert.deepEqual([...buf.subarray(0, 3)], [0xef, 0xbb, 0xbf], `${name} starts with a UTF-8 BOM`);
    assert.ok(buf.toString('utf8').includes('\r\n'), `${name} uses CRLF`);
  }
  const verdicts = parse(readFileSync(path.join(out, 'verdicts.csv')), { bom: true, columns: true }) as Record<string, string>[];
  const ni = verdicts.find((r) => r.verdict === 'needs_improvement')!;
  assert.deepEqual([ni.label, ni.n, ni.total, ni.pct, ni.previous_pct, ni.delta_points], ['改善が必要', '87', '202', '43', '53', '-10']);
  const domains = parse(readFileSync(path.join(out, 'domains.csv')), { bom: true, columns: true }) as Record<string, string>[];
  assert.equal(domains.length, 202);
  assert.equal(domains.filter((d) => d.spf_dkim === 'both_ng').length, 32);
  // The per-domain CSV lists exactly the diagnoses the figures counted (it reads the same snapshot).
  const r = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
  for (const [v, f] of Object.entries(r.verdicts)) assert.equal(domains.filter((d) => d.verdict === v).length, f.n, v);
});

test('the HTML opens in headless Chromium with its charts, no console errors and no network requests', async () => {
  const html = readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'self-contained: no scripts, no remote URLs');
  const errors: string[] = [];
  const requests: string[] = [];
  const shot = path.join(artifacts, 'report-2021.png');
  const facts = await withChromiumPage(async (page) => {
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => requests.push(r.url()));
    await page.setViewportSize({ width: 1000, height: 1400 });
    await page.setContent(html, { waitUntil: 'load' });
    await page.screenshot({ path: shot, fullPage: true });
    return page.evaluate(() => ({
      svgs: document.querySelectorAll('figure svg').length,
      marks: document.querySelectorAll('figure svg path').length,
      // The chart right after each finding's heading: its accessible name and the texts it draws.
      findingCharts: [...document.querySelectorAll('h3 + figure svg')].map((svg) => ({ name: svg.getAttribute('aria-label'), text: svg.textContent })),
      text: document.body.innerText,
    }));
  });
  const r = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
  const findings = Object.keys(r.findings);
  assert.ok(findings.length >= 10, findings.join());
  assert.equal(facts.svgs, 4 + findings.length, 'donut, criteria, SPF×DKIM and year-over-year charts, one chart per finding');
  assert.deepEqual(facts.findingCharts.map((c) => c.name), findings.map((k) => findingLabel(k, 'ja')));
  for (const [i, k] of findings.entries()) {
    const first = Object.values(r.findings[k])[0];
    // Every chart names its denominator and shows every value of the table, unknown included.
    assert.ok(facts.findingCharts[i].text?.includes(`分母: ${first.total}`), `${k}: ${facts.findingCharts[i].text}`);
    for (const v of Object.keys(r.findings[k])) assert.ok(facts.findingCharts[i].text?.includes(findingValueLabel(k, v, 'ja')), `${k}: ${v}`);
  }
  assert.ok(facts.marks > 20, 'charts have drawn marks');
  assert.match(facts.text, /未だ43%（87ドメイン）/);
  assert.match(facts.text, /小数点以下を四捨五入/);
  assert.deepEqual(errors, []);
  assert.deepEqual(requests, []);
  assert.ok(existsSync(shot));
});

test('the PDF carries the Japanese text', async () => {
  const { stdout } = await run('pdftotext', ['-enc', 'UTF-8', path.join(out, 'report.pdf'), '-']);
  const text = stdout.replace(/\s+/g, '');
  for (const s of ['メールサーバセキュリティ診断統計レポート', '総合評価', '改善が必要', '見直しを推奨', '送信元DNS逆引き', '43%']) {
    assert.ok(text.includes(s), `PDF contains ${s}`);
  }
});

test('the English report is generated from the same saved figures', () => {
  const r = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
  const html = renderHtml(r, null, 'en');
  assert.match(html, /<html lang="en">/);
  assert.match(html, /43% \(87\) still need to improve their mail security/);
  assert.match(html, /Percentages are rounded/);
});

test('a Chromium path that is not there fails naming it, after the other formats are written', async () => {
  const dir = path.join(artifacts, 'report-no-chromium');
  rmSync(dir, { recursive: true, force: true });
  await assert.rejects(
    writeReport(t.db, { period: yearPeriod(2021), source: 'test-mail', survey: null }, { out: dir, formats: ['json', 'html', 'pdf'], lang: 'ja', chromium: '/nonexistent/chromium' }),
    /--chromium \/nonexistent\/chromium: no executable there \(use auto, system, bundled or a path\)/,
  );
  assert.ok(existsSync(path.join(dir, 'report.json')));
  assert.ok(existsSync(path.join(dir, 'report.html')));
  assert.ok(!existsSync(path.join(dir, 'report.pdf')));
});

test('the command writes the report, and exits 2 naming bad input', async () => {
  const env = { ...process.env, DATABASE_URL: t.url };
  const bin = path.join(root, 'bin', 'mailcensus.mjs');
  const dir = path.join(artifacts, 'report-cli');
  const ok = await run(process.execPath, [bin, 'report', '--source', 'test-mail', '--year', '2021', '--out', dir, '--format', 'json,csv', '--lang', 'en'], { env, timeout: 120_000 });
  assert.match(ok.stdout, /Needs improvement\s+87\/202\s+43%/);
  assert.match(ok.stdout, /wrote .*report\.json/);
  const fail = async (args: string[]) => {
    const e = await run(process.execPath, [bin, 'report', ...args], { env, timeout: 120_000 }).then(() => null, (err) => err as { code: number; stderr: string });
    assert.ok(e, `${args.join(' ')} fails`);
    return e;
  };
  const badDate = await fail(['--source', 'test-mail', '--from', '2021-13-01', '--to', '2021-12-31', '--out', dir]);
  assert.equal(badDate.code, 2);
  assert.match(badDate.stderr, /--from must be a date YYYY-MM-DD, got "2021-13-01"/);
  const badOut = await fail(['--source', 'test-mail', '--year', '2021', '--out', '/proc/mailcensus-report', '--format', 'json']);
  assert.equal(badOut.code, 2);
  assert.match(badOut.stderr, /--out \/proc\/mailcensus-report: cannot write there/);
  const badSurvey = await fail(['--survey', 'nope', '--year', '2021', '--out', dir, '--format', 'json']);
  assert.equal(badSurvey.code, 2);
  assert.match(badSurvey.stderr, /no survey named "nope"/);
});
