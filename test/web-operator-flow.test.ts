// The operator's flow in a real headless Chromium, on the lab: refused before logging in; logs in; uploads a
// CSV with bad lines and sees them with their line numbers (a hostile cell as text); starts a run and watches
// it finish on its live page (a real worker scans the lab); generates the report and downloads the PDF, views
// the HTML and reads the JSON; a domain's history; a schedule; Bull Board; logs out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { screenshot } from './helpers/browser.ts';
import { webStackWithBrowserForFile, OPERATOR_PASSWORD } from './helpers/web.ts';

const ui = webStackWithBrowserForFile();

const CSV = [
  'domain,organization',
  'safe.test,Safe Inc',
  'listed.test,Listed KK',
  'nostarttls-mx.test,No TLS',
  'open-mx.test,Open Relay Co',
  'insecure.test,Insecure',
  'not a domain,Bad',
  '192.0.2.1,An IP',
  '<img/src=x/onerror=window.__pwned=1>,Hostile',
  'Safe.Test.,Duplicate',
  '',
].join('\r\n');

test('an operator logs in, uploads a CSV, runs the survey, watches it finish and downloads the report', async () => {
  const { page } = ui.browser;
  const base = ui.stack.baseUrl;

  // Not logged in: the overview is refused (401) and only the login form is shown.
  const refused = await page.goto(`${base}/ops/surveys`);
  assert.equal(refused?.status(), 401);
  assert.equal(await page.locator('#survey').count(), 0, 'no survey form before login');
  await page.fill('#password', 'not the password');
  await page.click('button[type=submit]');
  assert.match((await page.textContent('.error')) ?? '', /Wrong password/);
  await screenshot(page, 'ops-1-login');
  await page.fill('#password', OPERATOR_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/ops/surveys`);
  const cookies = await ui.browser.context.cookies(base);
  const session = cookies.find((c) => c.name === 'mc_session');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');

  // Upload: the summary and every rejected or duplicate line with its line number.
  await page.fill('#survey', 'lab-ops');
  await page.setInputFiles('#file', { name: 'domains.csv', mimeType: 'text/csv', buffer: Buffer.from(CSV) });
  await page.click('form[enctype="multipart/form-data"] button[type=submit]');
  await page.waitForSelector('.ingest-result');
  assert.equal(await page.textContent('[data-field=accepted]'), '5');
  assert.equal(await page.textContent('[data-field=rejected]'), '3');
  assert.equal(await page.textContent('[data-field=duplicates]'), '1');
  assert.equal(await page.textContent('[data-field=added]'), '5');
  const rows = await page.locator('table.rejects tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  assert.deepEqual(rows.map((r) => r[0]), ['7', '8', '9', '10'], 'the rejects with their line numbers (header = line 1)');
  const hostile = rows.find((r) => r[0] === '9')!;
  assert.equal(hostile[3], '<img/src=x/onerror=window.__pwned=1>', 'the hostile cell shows as text');
  assert.equal(await page.locator('table.rejects img').count(), 0);
  assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned ?? null), null);
  await screenshot(page, 'ops-2-upload-rejects');

  // Start a run from the survey list and watch it: the page updates itself and reloads when it is done.
  await page.click('form[action="/ops/runs"] button');
  await page.waitForURL(/\/ops\/runs\/\d+$/);
  const runId = Number(/\/ops\/runs\/(\d+)$/.exec(page.url())![1]);
  assert.equal(await page.textContent('[data-field=total]'), '5');
  await screenshot(page, 'ops-3-run-progress');
  await page.waitForFunction(() => document.querySelector('[data-field=state]')?.textContent === 'done', undefined, { timeout: 180_000, polling: 500 });
  assert.equal(await page.textContent('[data-field=done]'), '5');
  assert.equal(await page.textContent('[data-field=eta]'), '0s');
  const verdictCells = await page.locator('table.verdicts .verdict').evaluateAll((els) => els.map((e) => e.getAttribute('data-verdict')));
  assert.ok(verdictCells.includes('danger'), 'open-mx.test relays: danger');
  await screenshot(page, 'ops-4-run-done');
  const stored = await ui.stack.tdb.db.selectFrom('diagnoses').select(['domain', 'verdict']).where('run_id', '=', runId).execute();
  assert.equal(stored.length, 5);
  assert.equal(stored.find((d) => d.domain === 'open-mx.test')?.verdict, 'danger');

  // The run's diagnoses, and a domain's history with every criterion.
  await page.goto(`${base}/ops/domains?domain=open-mx.test`);
  assert.equal(await page.locator('table.history tbody tr').count(), 1);
  assert.equal(await page.getAttribute('table.history .verdict', 'data-verdict'), 'danger');
  await screenshot(page, 'ops-5-domain-history');
  await page.click('table.history tbody tr a');
  await page.waitForSelector('#diagnosis');
  assert.equal(await page.textContent('tr[data-criterion=open_relay] .st'), 'NG');
  assert.match((await page.textContent('ol.fixes li')) ?? '', /Open relay/);

  // A report of the lab year (the lab clock is 2021-06-30): every file it wrote, the PDF downloaded.
  await page.goto(`${base}/ops/reports`);
  await page.selectOption('#r-survey', 'lab-ops');
  await page.fill('#r-period', '2021');
  await page.selectOption('#r-lang', 'en');
  await page.click('form[action="/ops/reports"] button');
  await page.waitForURL(/\/ops\/reports\/\d{13}-[0-9a-f]{8}$/, { timeout: 120_000 });
  const files = await page.locator('table.files tbody a').allTextContents();
  for (const f of ['report.html', 'report.json', 'report.pdf', 'domains.csv']) assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
  await screenshot(page, 'ops-6-report-files');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('table.files a:text-is("report.pdf")')]);
  const pdf = await readFile((await download.path())!);
  assert.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-');
  assert.ok(pdf.length > 10_000, `a real PDF (${pdf.length} bytes)`);
  const jsonHref = await page.getAttribute('table.files a:text-is("report.json")', 'href');
  const report = await (await page.request.get(base + jsonHref!)).json();
  assert.equal(report.domains, 5);
  assert.equal(report.verdicts.danger.n, 1);
  assert.equal(report.verdicts.danger.total, 5, 'the denominator is stated');
  const view = await page.request.get(`${page.url()}/files/report.html`);
  assert.match(view.headers()['content-security-policy'] ?? '', /sandbox/, 'the report is shown sandboxed, without scripts');
  await page.goto(`${page.url()}/files/report.html`);
  await screenshot(page, 'ops-7-report-html', { fullPage: false });

  // Schedules: add, see it with its next firing, remove.
  await page.goto(`${base}/ops/schedules`);
  await page.selectOption('#s-survey', 'lab-ops');
  await page.fill('#s-cron', '0 3 1 4 *');
  await page.fill('#s-tz', 'Asia/Tokyo');
  await page.click('form[action="/ops/schedules"] button');
  await page.waitForSelector('form[action="/ops/schedules/remove"]');
  assert.match((await page.textContent('table tbody tr')) ?? '', /lab-ops.*0 3 1 4 \*.*Asia\/Tokyo/s);
  await screenshot(page, 'ops-8-schedules');
  await page.click('form[action="/ops/schedules/remove"] button');
  await page.waitForURL(`${base}/ops/schedules`);
  assert.equal(await page.locator('form[action="/ops/schedules/remove"]').count(), 0);

  // Bull Board, mounted under the operator's pages, served by the app.
  await page.goto(`${base}/ops/queues/`);
  await page.waitForFunction(() => /domains/.test(document.body.innerText), undefined, { timeout: 30_000 });
  await screenshot(page, 'ops-9-bull-board');

  // Log out: the session is gone on the server too.
  await page.goto(`${base}/ops`);
  await page.click('form[action="/ops/logout"] button');
  await page.waitForURL(`${base}/ops/login`);
  const after = await page.request.get(`${base}/ops`, { headers: { cookie: `mc_session=${session.value}` } });
  assert.equal(after.status(), 401, 'the old session cookie no longer works');
});
