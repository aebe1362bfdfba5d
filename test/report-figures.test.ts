// The report's figures over real Postgres: the seed's 2021 numbers, the latest-diagnosis rule, the previous
// period, Wilson intervals, empty periods and survey coverage.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { addScanSurvey, addTestMailDiagnosis, addYear, YEAR_2020, YEAR_2021 } from './report-fixtures.ts';
import { buildReport, wilson, type Report } from '../reports/aggregate.ts';
import { domainRows } from '../reports/queries.ts';
import { computeReport } from '../reports/write.ts';
import { fiscalYearPeriod, periodFromOptions, previousPeriod, rangePeriod, yearPeriod } from '../reports/period.ts';
import { InputError } from '../lib/errors.ts';
import { openDatabase } from '../lib/db.ts';
import { REPORTED_FINDINGS } from '../lib/checks/registry.ts';

let t: TestDatabase;
let r2021: Report;

before(async () => {
  t = await createTestDatabase();
  const d2021 = await addYear(t.db, 2021, YEAR_2021, 'c');
  await addYear(t.db, 2020, YEAR_2020, 'p');
  // Traps for "each domain once, its latest diagnosis in the period": the last three (safe) domains were an
  // open relay in January; one domain has a danger diagnosis at 2022-01-01 01:00 Tokyo time (still 2021 in UTC).
  for (const d of d2021.slice(-3)) await addTestMailDiagnosis(t.db, d, '2021-01-02T00:00:00Z', { open_relay: 'ng' });
  await addTestMailDiagnosis(t.db, d2021[100], '2021-12-31T16:00:00Z', { open_relay: 'ng' });
  await addScanSurvey(t.db, 'jp-2021', '2021-07-01T00:00:00Z', [
    ['scan-a.jp', {}],
    ['scan-b.jp', { dnsbl: ['unknown', 'timeout'] }],
  ]);
  r2021 = await computeReport(t.db, { period: yearPeriod(2021), source: 'test-mail', survey: null });
});
after(async () => {
  await t.drop();
});

test("the 2021 test-mail report reproduces the seed release's figures", () => {
  assert.equal(r2021.schema_version, 2);
  assert.deepEqual(r2021.source, { kind: 'test-mail', survey: null, source: 'test-mail' });
  assert.deepEqual({ from: r2021.period.from, to: r2021.period.to }, { from: '2021-01-01', to: '2021-12-31' });
  assert.equal(r2021.domains, 202);
  const v = r2021.verdicts;
  assert.deepEqual(
    Object.fromEntries(Object.entries(v).map(([k, f]) => [k, [f.n, f.total, f.pct]])),
    { danger: [1, 202, 0], needs_improvement: [87, 202, 43], review: [102, 202, 50], safe: [12, 202, 6], incomplete: [0, 202, 0] },
  );
  assert.deepEqual([r2021.spf_dkim.both_ng.n, r2021.spf_dkim.both_ng.pct], [32, 16]);
  assert.deepEqual([r2021.criteria.reverse_dns.ok.n, r2021.criteria.reverse_dns.ok.pct, r2021.criteria.reverse_dns.ng.n], [194, 96, 8]);
  assert.deepEqual([r2021.tls_send_or_receive_ng.n, r2021.tls_send_or_receive_ng.pct], [50, 25]);
  // Findings beyond MSchecker: a domain counts under every value it has; `any` and `no_tls` once.
  const cert = r2021.findings.cert_problems;
  assert.deepEqual([cert.self_signed.n, cert.expired.n, cert.wrong_name.n, cert.untrusted.n, cert.any.n], [24, 3, 3, 0, 27]);
  const tls = r2021.findings.tls_versions;
  assert.deepEqual([tls['TLSv1.3'].n, tls['TLSv1.2'].n, tls.no_tls.n], [164 + 12, 12, 26]);
  assert.deepEqual([r2021.findings.dmarc_policy.reject.n, r2021.findings.dmarc_policy.absent.n], [102, 32]);
  // Shares of one breakdown always add up to the denominator; the rounded percentages need not add up to 100.
  for (const c of Object.values(r2021.criteria)) assert.equal(c.ok.n + c.ng.n + c.unknown.n + c.na.n, 202);
  assert.equal(Object.values(r2021.spf_dkim).reduce((s, f) => s + f.n, 0), 202);
  assert.equal(Object.values(v).reduce((s, f) => s + (f.pct ?? 0), 0), 99);
});

test('each domain counts once, by its latest diagnosis inside the period in the report time zone', async () => {
  // 202 domains + 3 January diagnoses; the 2022-01-01 01:00 JST one is outside.
  assert.equal(r2021.diagnoses, 205);
  assert.equal(r2021.verdicts.danger.n, 1);
  // In UTC the late diagnosis falls in 2021 and is that domain's latest: danger becomes 2.
  const utc = await buildReport(t.db, { period: yearPeriod(2021), timezone: 'UTC', source: 'test-mail', survey: null });
  assert.equal(utc.verdicts.danger.n, 2);
  assert.equal(utc.domains, 202);
});

test('the previous period of the same length is compared: needs improvement fell 10 points from 53%', () => {
  const p = r2021.previous!;
  assert.ok(p, 'previous period present');
  assert.equal(p.domains, 190);
  assert.deepEqual({ from: p.period.from, to: p.period.to }, { from: '2020-01-01', to: '2020-12-31' });
  const ni = r2021.verdicts.needs_improvement;
  assert.deepEqual([ni.previous_n, ni.previous_pct, ni.delta], [101, 53, -10]);
  assert.deepEqual([r2021.verdicts.safe.previous_pct, r2021.verdicts.safe.delta], [6, 0]);
  assert.deepEqual([r2021.criteria.reverse_dns.ok.previous_pct, r2021.criteria.reverse_dns.ok.delta], [93, 3]);
  assert.equal((p as { previous?: unknown }).previous, undefined, 'the previous period does not nest another one');
  const ja = r2021.summary!.ja.join('');
  assert.match(ja, /「安全」と判定されたのは6%（12ドメイン）/);
  assert.match(ja, /前年の53%から10ポイント減少しましたが、未だ43%（87ドメイン）/);
  assert.match(ja, /両方NG）のドメインは16%（32ドメイン）で、前年（16%）から改善が進んでいません/);
  assert.match(ja, /送信元DNS逆引きは96%.*前年比 \+3ポイント/);
  assert.match(r2021.summary!.en.join(' '), /43% \(87\) still need to improve.*down 10 points from 53%/);
});

test('Wilson 95% intervals match known values', () => {
  // Reference values: Wilson score interval, z = 1.959964 (e.g. statsmodels proportion_confint(method="wilson")).
  assert.deepEqual(wilson(12, 202), { low: 3.4, high: 10.1 });
  assert.deepEqual(wilson(87, 202), { low: 36.4, high: 50 });
  assert.deepEqual(wilson(0, 10), { low: 0, high: 27.8 });
  assert.deepEqual(wilson(10, 10), { low: 72.2, high: 100 });
  assert.equal(wilson(0, 0), null);
  assert.deepEqual(r2021.verdicts.safe.wilson, { low: 3.4, high: 10.1 });
});

test('an empty period reports n = 0 with null percentages instead of dividing by zero', async () => {
  const r = await computeReport(t.db, { period: yearPeriod(2015), source: 'test-mail', survey: null });
  assert.equal(r.domains, 0);
  assert.equal(r.previous, null);
  assert.deepEqual(r.verdicts.safe, { n: 0, total: 0, pct: null, wilson: null, delta: null, bounds: null });
  assert.match(r.summary!.ja[0], /n=0/);
  assert.match(r.summary!.en[0], /n = 0/);
});

test('a period without a previous period with data has previous = null and no deltas', async () => {
  const r = await buildReport(t.db, { period: yearPeriod(2020), source: 'test-mail', survey: null });
  assert.equal(r.domains, 190);
  assert.equal(r.previous, null);
  assert.equal(r.verdicts.needs_improvement.delta, null);
});

test('a survey report counts its scan diagnoses and shows incomplete reasons, unknowns and run configurations', async () => {
  const r = await computeReport(t.db, { period: fiscalYearPeriod(2021), source: null, survey: 'jp-2021' });
  assert.deepEqual(r.source, { kind: 'survey', survey: 'jp-2021', source: null });
  assert.equal(r.domains, 2);
  assert.equal(r.coverage.sources.scan.n, 2);
  assert.equal(r.verdicts.incomplete.n, 1);
  assert.deepEqual(r.coverage.incomplete.reasons, [{ criterion: 'dnsbl', reason: 'timeout', n: 1 }]);
  // Send TLS of a scan is unknown (not measurable), shown rather than hidden.
  assert.equal(r.criteria.tls_send.unknown.n, 2);
  assert.ok(r.coverage.unknown_reasons.some((u) => u.criterion === 'tls_send' && u.reason === 'not_measured' && u.n === 2));
  assert.equal(r.coverage.runs.length, 1);
  assert.deepEqual((r.coverage.runs[0].config as { dnsTimeoutMs: number }).dnsTimeoutMs, 2000);
  assert.deepEqual([r.coverage.survey_domains?.n, r.coverage.survey_domains?.total], [2, 3]);
  assert.match(r.summary!.ja.join(''), /判定不能）ドメインは1ドメイン/);
});

test('an unknown survey and an unknown time zone are input errors naming the option', async () => {
  await assert.rejects(buildReport(t.db, { period: yearPeriod(2021), source: null, survey: 'nope' }), (e: Error) => e instanceof InputError && /--survey: no survey named "nope"/.test(e.message));
  await assert.rejects(buildReport(t.db, { period: yearPeriod(2021), timezone: 'Mars/Olympus', source: 'scan', survey: null }), /--timezone/);
});

test('every verdict figure is reproduced by the documented psql query over report_diagnoses()', async () => {
  const { rows } = await sql<{ verdict: string; n: number; total: number; pct: string }>`
    SELECT verdict, count(*)::int AS n, (sum(count(*)) OVER ())::int AS total,
           round(100.0 * count(*) / sum(count(*)) OVER ()) AS pct
      FROM report_diagnoses('2021-01-01 00:00+09', '2022-01-01 00:00+09', 'test-mail')
     GROUP BY verdict`.execute(t.db);
  for (const row of rows) {
    const f = r2021.verdicts[row.verdict as keyof Report['verdicts']];
    assert.deepEqual([row.n, row.total, Number(row.pct)], [f.n, f.total, f.pct], row.verdict);
  }
  const { rows: both } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM report_diagnoses('2021-01-01 00:00+09', '2022-01-01 00:00+09', 'test-mail') WHERE spf_dkim = 'both_ng'`.execute(t.db);
  assert.equal(both[0].n, 32);
});

test('every figure the report reads from its grouped tally equals a count(*) over report_diagnoses()', async () => {
  const set = sql`report_diagnoses('2021-01-01 00:00+09', '2022-01-01 00:00+09', 'test-mail')`;
  // Every criterion and status, as docs/reports.md counts them.
  const { rows: crit } = await sql<{ criterion: string; status: string; n: number }>`
    SELECT c.criterion, c.status::text AS status, count(*)::int AS n
      FROM ${set} r,
           LATERAL (VALUES ('open_relay', r.open_relay), ('spf', r.spf), ('dkim', r.dkim), ('tls_receive', r.tls_receive),
                           ('tls_send', r.tls_send), ('reverse_dns', r.reverse_dns), ('dnssec', r.dnssec), ('dnsbl', r.dnsbl)) AS c(criterion, status)
     GROUP BY 1, 2`.execute(t.db);
  const fromReport = Object.entries(r2021.criteria).flatMap(([c, m]) => Object.entries(m).filter(([, f]) => f.n > 0).map(([s, f]) => `${c}:${s}:${f.n}`));
  assert.deepEqual(crit.map((r) => `${r.criterion}:${r.status}:${r.n}`).sort(), fromReport.sort());
  const count = async (q: ReturnType<typeof sql>) => Object.fromEntries((await q.execute(t.db)).rows.map((r: any) => [r.k, Number(r.n)]));
  const nonZero = (m: Record<string, { n: number }>) => Object.fromEntries(Object.entries(m).filter(([, f]) => f.n > 0).map(([k, f]) => [k, f.n]));
  assert.deepEqual(await count(sql`SELECT spf_dkim AS k, count(*) AS n FROM ${set} r GROUP BY 1`), nonZero(r2021.spf_dkim));
  assert.deepEqual(await count(sql`SELECT coalesce(dmarc_policy, 'not_recorded') AS k, count(*) AS n FROM ${set} r GROUP BY 1`), nonZero(r2021.findings.dmarc_policy));
  assert.deepEqual(await count(sql`SELECT v AS k, count(*) AS n FROM ${set} r, unnest(r.tls_versions) v GROUP BY 1`), nonZero({ ...r2021.findings.tls_versions, no_tls: { n: 0 } }));
  assert.deepEqual(await count(sql`SELECT 'n' AS k, count(*) AS n FROM ${set} r WHERE tls_send_or_receive_ng`), { n: r2021.tls_send_or_receive_ng.n });
  // The survey report's unknown reasons (from the tally's per-criterion reason columns) and runs.
  const s = await computeReport(t.db, { period: fiscalYearPeriod(2021), source: null, survey: 'jp-2021' });
  const { rows: unknown } = await sql<{ criterion: string; reason: string; n: number }>`
    SELECT c.criterion, c.reason, count(*)::int AS n
      FROM report_diagnoses('2021-04-01 00:00+09', '2022-04-01 00:00+09', NULL, 'jp-2021') r,
           LATERAL (VALUES ('open_relay', r.open_relay, r.open_relay_reason), ('spf', r.spf, r.spf_reason), ('dkim', r.dkim, r.dkim_reason),
                           ('tls_receive', r.tls_receive, r.tls_receive_reason), ('tls_send', r.tls_send, r.tls_send_reason),
                           ('reverse_dns', r.reverse_dns, r.reverse_dns_reason), ('dnssec', r.dnssec, r.dnssec_reason), ('dnsbl', r.dnsbl, r.dnsbl_reason)) AS c(criterion, status, reason)
     WHERE c.status = 'unknown' GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2`.execute(t.db);
  assert.deepEqual(s.coverage.unknown_reasons, unknown);
  assert.deepEqual(s.coverage.runs.map((r) => r.domains), [2]);
});

test('a multi-valued finding of the registry counts each of its values once per domain, from the JSON value the snapshot keeps', async () => {
  // The snapshot keeps findings.<id>.value as stored (jsonb) and the tally turns it into text[] per group:
  // an array counts under each value, an empty array, a non-array or a missing key under none (issue 18).
  const f = REPORTED_FINDINGS.find((x) => x.multi && !x.column)!;
  assert.ok(f, 'the registry has a multi-valued finding without a legacy column');
  const [v0, v1] = f.values;
  const cases: [string, unknown][] = [
    ['multi-a.jp', [v0, v1]],
    ['multi-b.jp', [v1]],
    ['multi-c.jp', []],
    ['multi-d.jp', 'not-an-array'],
    ['multi-e.jp', undefined],
  ];
  for (const [domain, value] of cases) {
    const id = await addTestMailDiagnosis(t.db, domain, '2018-06-01T00:00:00Z', {});
    if (value !== undefined) {
      await sql`UPDATE diagnoses SET findings = findings || jsonb_build_object(${f.id}::text, jsonb_build_object('status', 'ok', 'reason', 'fixture', 'value', ${JSON.stringify(value)}::text::jsonb))
                 WHERE id = ${id}`.execute(t.db);
    }
  }
  let listed: Record<string, unknown>[] = [];
  const r = await buildReport(t.db, { period: yearPeriod(2018), source: 'test-mail', survey: null }, { onSnapshot: async (trx, set) => void (listed = await domainRows(trx, set)) });
  const counts = r.findings[f.id]!;
  assert.equal(counts[v0!]!.n, 1);
  assert.equal(counts[v1!]!.n, 2);
  if (f.multi!.empty !== null) assert.equal(counts[f.multi!.empty]!.n, 3);
  if (f.multi!.any !== null) assert.equal(counts[f.multi!.any]!.n, 2);
  const csv = Object.fromEntries(listed.map((d) => [d.domain, d[f.id]]));
  assert.deepEqual(csv, { 'multi-a.jp': `${v0} ${v1}`, 'multi-b.jp': v1, 'multi-c.jp': '', 'multi-d.jp': '', 'multi-e.jp': '' });
});

test('the per-domain rows come from the snapshot the figures were computed from, even if a diagnosis arrives meanwhile', async () => {
  const domain = 'c002.example.jp'; // needs improvement in 2021 (SPF and DKIM NG)
  let late: string | null = null;
  let listed: Record<string, unknown>[] = [];
  try {
    const r = await buildReport(
      t.db,
      { period: yearPeriod(2021), source: 'test-mail', survey: null },
      {
        onSnapshot: async (trx, set) => {
          // Committed on another connection after the snapshot was taken: a newer, all-OK diagnosis.
          late = await addTestMailDiagnosis(t.db, domain, '2021-12-20T00:00:00Z', {});
          listed = await domainRows(trx, set);
        },
      },
    );
    assert.ok(late, 'the late diagnosis was stored');
    assert.equal(listed.length, r.domains);
    assert.equal(listed.find((d) => d.domain === domain)?.verdict, 'needs_improvement');
    for (const [v, f] of Object.entries(r.verdicts)) assert.equal(listed.filter((d) => d.verdict === v).length, f.n, v);
    // A report started now sees it: the snapshot, not the data, kept it out.
    const now = await buildReport(t.db, { period: yearPeriod(2021), source: 'test-mail', survey: null });
    assert.equal(now.verdicts.needs_improvement.n, r.verdicts.needs_improvement.n - 1);
  } finally {
    if (late) await sql`DELETE FROM diagnoses WHERE id = ${late}`.execute(t.db);
  }
});

test('with a pool of one connection the previous period is computed in the same transaction, with the same figures', async () => {
  // The previous period normally runs on a second connection that imports the report's snapshot; a pool of
  // one has no second connection, and the report must neither wait for one forever nor change a number.
  const one = openDatabase(t.url, { max: 1 });
  try {
    const r = await computeReport(one.db, { period: yearPeriod(2021), source: 'test-mail', survey: null });
    const strip = (x: Report) => ({ ...x, generated_at: null });
    assert.deepEqual(strip(r), strip(r2021));
  } finally {
    await one.close();
  }
});

test('periods: fiscal years run April to March, previous periods have the same length, bad dates are named', () => {
  assert.deepEqual(fiscalYearPeriod(2026), { kind: 'fiscal-year', from: '2026-04-01', to: '2027-03-31', year: 2026 });
  assert.deepEqual(previousPeriod(fiscalYearPeriod(2026)), fiscalYearPeriod(2025));
  const half = rangePeriod('2026-01-01', '2026-06-30');
  assert.deepEqual([previousPeriod(half).from, previousPeriod(half).to], ['2025-07-01', '2025-12-31']);
  const days = rangePeriod('2026-03-10', '2026-03-19');
  assert.deepEqual([previousPeriod(days).from, previousPeriod(days).to], ['2026-02-28', '2026-03-09']);
  assert.throws(() => rangePeriod('2021-02-30', '2021-03-01'), /--from must be a date YYYY-MM-DD, got "2021-02-30"/);
  assert.throws(() => rangePeriod('2021-03-01', '2021-02-01'), /--to \(2021-02-01\) is before --from/);
  assert.throws(() => periodFromOptions({ year: '21' }), /--year must be a year YYYY/);
  assert.throws(() => periodFromOptions({ year: '2021', from: '2021-01-01' }), /exactly one period/);
  assert.throws(() => periodFromOptions({ from: '2021-01-01' }), /--from and --to must be given together/);
});
