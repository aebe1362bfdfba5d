// Report speed: 1,000,000 scan diagnoses generated in SQL (a survey of 400,000 listed domains diagnosed in
// 2020, again in 2021 and 200,000 of them a third time late in 2021), then `report --survey bench --year 2021`
// computed (latest diagnosis per domain among 600,000, the 2020 comparison, the survey list's coverage) and
// written as report.json + report.html. Target (issue 9): < 5 s for the aggregation.
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { openDatabase, migrateSchema } from '../lib/db.ts';
import { computeReport, writeFromReport } from '../reports/write.ts';
import { yearPeriod } from '../reports/period.ts';
import { machine, updateSection } from './_report.ts';

const DOMAINS = Number(process.env.BENCH_REPORT_DOMAINS || 400_000);
const RUNS = 3;
const SERVER_URL = process.env.TEST_DATABASE_SERVER_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const CRITERIA = ['open_relay', 'spf', 'dkim', 'tls_receive', 'tls_send', 'reverse_dns', 'dnssec', 'dnsbl'];

/** A status drawn from (i, salt): mostly ok, some ng, a few unknown; tls_send is unknown (a scan cannot see it). */
function statusExpr(c: string, salt: number): string {
  if (c === 'tls_send') return `'unknown'::criterion_status`;
  const ng = { open_relay: 1, spf: 20, dkim: 25, tls_receive: 12, reverse_dns: 5, dnssec: 55, dnsbl: 6 }[c] ?? 10;
  const h = `(abs(hashint4(i * 31 + ${salt})) % 1000)`;
  return `(CASE WHEN ${h} < ${ng * 10} THEN 'ng' WHEN ${h} < ${ng * 10 + 15} THEN 'unknown' ELSE 'ok' END)::criterion_status`;
}

export async function generate(sql: postgres.Sql, runId: number, surveyId: number, from: number, count: number, observed: string, salt: number) {
  const cols = CRITERIA.map((c) => `${c}, ${c}_reason`).join(', ');
  const exprs = CRITERIA.map((c, k) => `${statusExpr(c, salt + k)} AS ${c}`).join(', ');
  const reasons = CRITERIA.map((c) => `(CASE ${c} WHEN 'ng' THEN 'failed' WHEN 'unknown' THEN 'timeout' ELSE 'passed' END)`).join(', ');
  // Verdict by the rules of lib/verdict.ts (scan: tls_send ignored), in SQL for speed.
  await sql.unsafe(`
    INSERT INTO diagnoses (source, domain, survey_id, run_id, observed_at, ${cols}, verdict, verdict_reasons,
                           dmarc_policy, mta_sts, tls_rpt, tls_versions, cert_problems, observations, rules_version)
    SELECT 'scan', 'd' || i || '.bench.jp', ${surveyId}, ${runId}, timestamptz '${observed}' + (i % 86400) * interval '1 second',
           ${CRITERIA.map((c) => `${c}, ${reasons.split(', ')[CRITERIA.indexOf(c)]}`).join(', ')},
           (CASE WHEN open_relay = 'ng' THEN 'danger'
                 WHEN open_relay = 'unknown' THEN 'incomplete'
                 WHEN (spf = 'ng' AND dkim = 'ng') OR tls_receive = 'ng' OR reverse_dns = 'ng' THEN 'needs_improvement'
                 WHEN (spf = 'unknown' AND dkim <> 'ok') OR (dkim = 'unknown' AND spf <> 'ok') OR tls_receive = 'unknown' OR reverse_dns = 'unknown' THEN 'incomplete'
                 WHEN dnssec = 'ng' OR dnsbl = 'ng' THEN 'review'
                 WHEN dnssec = 'unknown' OR dnsbl = 'unknown' THEN 'incomplete'
                 ELSE 'safe' END)::verdict,
           jsonb_build_object('reasons', '[]'::jsonb),
           (ARRAY['reject','quarantine','none','absent'])[1 + i % 4], 'absent', 'absent',
           CASE WHEN tls_receive = 'ok' THEN ARRAY['TLSv1.3'] ELSE '{}'::text[] END,
           CASE WHEN i % 50 = 0 THEN ARRAY['self_signed'] ELSE '{}'::text[] END,
           '{}'::jsonb, 1
      FROM (SELECT i, ${exprs} FROM generate_series(${from}, ${from + count - 1}) AS i) g`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** utime + stime of these Postgres backends, in ms (null when Postgres is not on this machine). */
function backendCpuMs(pids: number[]): number | null {
  try {
    let ticks = 0;
    for (const pid of pids) {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    }
    return pids.length ? ticks * 10 : null; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/**
 * What was changed to meet the target and what it gained (issue 9 asks for it next to the figures): measured
 * once, by running the previous and the current reports code alternately, three times each, in one process on
 * one database of this benchmark (2026-11-29, load average 2.5–3.1).
 */
const CHANGES = `Before → after (issue 9: what limited the report and what fixing it gained; the two versions alternating 3× in one process on one 1,000,000-diagnosis database, medians; load average 2.5–3.1):

| | figures, wall | Postgres CPU (both connections) |
|---|---:|---:|
| before: a copy of the whole report set per period (\`SELECT *\`), then one scan of it per figure (≈40 scans of 400,000 rows), one after the other | 8.01 s | 7.79 s |
| after: one narrow snapshot + a grouped tally per period, each figure read from the tally; the previous period on a second connection | 2.02 s | 2.71 s |

- The latest-per-domain sort (DISTINCT ON over 600,000 rows) compares domains under \`COLLATE "C"\`: byte order sorts with abbreviated keys, the database's collation goes through strcoll (EXPLAIN ANALYZE: 2.4 s → 1.0 s; the set is the same).
- The snapshot names the columns it keeps instead of \`r.*\`: the planner drops the rest before the sort (width 303 → 233 bytes) and the surveys join altogether.
- Each figure reads the tally (the set grouped by every column a figure reads: 3,700 rows for 400,000 domains) instead of scanning the 400,000-row copy: ≈40 scans of 100–250 ms became queries of 1–20 ms. The previous period is tallied straight from \`report_diagnoses()\`, without a copy.
- Diagnoses in the period: an index-only count over (survey_id, observed_at) instead of a scan of the view; domains with both sources: an EXISTS per test-mail diagnosis instead of a sort of the period by domain.
- The previous period is computed on a second connection at the same time, in a transaction that imports the report's snapshot (\`pg_export_snapshot\` / \`SET TRANSACTION SNAPSHOT\`, as pg_dump's parallel jobs do): the same data, the other core (sequentially: 2.9 s wall, 2.8 s CPU). A pool of one connection falls back to computing it in the same transaction.
- JIT is off in the report's transaction (it compiled each large statement for 25–40 ms and gained nothing).
- The benchmark itself now lists the survey's 400,000 domains (the coverage figure joins them) and runs VACUUM ANALYZE after generating, as autovacuum soon would (BRIN summary, visibility map); the run before these changes (12.59 s at load 6.9) had neither. Both rows of the table above were measured with both.
- Not done: ANALYZE of the temporary tables (the plans were the same without it, and it cost 0.4–0.8 s); Postgres' own parallel query (it does not parallelise this DISTINCT ON, and temporary tables are not read by parallel workers).`;

export async function run(): Promise<{ name: string; lines: string[] }> {
  const name = `mailcensus_bench_${randomBytes(4).toString('hex')}`;
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  const out = await mkdtemp(path.join(tmpdir(), 'mailcensus-bench-report-'));
  let handle: ReturnType<typeof openDatabase> | null = null;
  const lines: string[] = [];
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
    handle = openDatabase(url.toString(), { max: 2 });
    await migrateSchema(handle.db);
    const sql = handle.sql;
    const [survey] = await sql`INSERT INTO surveys (name) VALUES ('bench') RETURNING id`;
    const runs = await sql`INSERT INTO runs (survey_id, state, config) SELECT ${survey.id}, 'done', '{"bench":true}'::jsonb FROM generate_series(1, 3) RETURNING id`;
    const t0 = Date.now();
    await generate(sql, runs[0].id, survey.id, 1, DOMAINS, '2020-06-01T00:00:00Z', 11);
    await generate(sql, runs[1].id, survey.id, 1, DOMAINS, '2021-05-01T00:00:00Z', 23);
    await generate(sql, runs[2].id, survey.id, 1, DOMAINS / 2, '2021-11-01T00:00:00Z', 37);
    // The survey's list: the report's coverage figure joins it, and the CSV would read organization from it.
    await sql`INSERT INTO survey_domains (survey_id, domain, organization)
              SELECT ${survey.id}, 'd' || i || '.bench.jp', '株式会社ベンチ' || i FROM generate_series(1, ${DOMAINS}::int) AS i`;
    // What autovacuum does on a live database soon after such inserts (autovacuum_vacuum_insert_threshold):
    // statistics, the BRIN summary of observed_at and the visibility map (index-only counts).
    await sql`VACUUM ANALYZE diagnoses, survey_domains`;
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM diagnoses`;
    lines.push(`generated ${n.toLocaleString('en')} diagnoses in SQL in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    console.log(lines.at(-1));

    // Both pool connections open before timing, so that their backends' CPU time can be read.
    await Promise.all([sql`SELECT pg_sleep(0.05)`, sql`SELECT pg_sleep(0.05)`]);
    const backends = (await sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`).map((r) => r.pid);
    const load = loadavg()[0].toFixed(1);
    // The machine is shared: the report is computed RUNS times and the median is the figure (the spread and
    // the backend CPU time say how much the other load weighed).
    const walls: number[] = [];
    const cpus: number[] = [];
    let report: Awaited<ReturnType<typeof computeReport>> | null = null;
    for (let i = 0; i < RUNS; i++) {
      const cpu0 = backendCpuMs(backends);
      const t = Date.now();
      report = await computeReport(handle.db, { period: yearPeriod(2021), source: null, survey: 'bench' });
      walls.push(Date.now() - t);
      const cpu1 = backendCpuMs(backends);
      if (cpu0 !== null && cpu1 !== null) cpus.push(cpu1 - cpu0);
    }
    const t2 = Date.now();
    await writeFromReport(report!, { out, formats: ['json', 'html'], lang: 'ja' });
    const render = Date.now() - t2;
    // What printing adds: the same report as PDF through headless Chromium (start-up included), when it is there.
    const t3 = Date.now();
    const pdf = await writeFromReport(report!, { out, formats: ['pdf'], lang: 'ja' }).then(
      () => `${((Date.now() - t3) / 1000).toFixed(2)} s`,
      (err: Error) => `not measured (${err.message.split('\n')[0]})`,
    );
    if (report!.domains !== DOMAINS || !report!.previous || report!.coverage.survey_domains?.n !== DOMAINS) {
      throw new Error(`expected ${DOMAINS} domains, all of them listed, and a previous period; got ${report!.domains}`);
    }
    const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const figures = median(walls);
    lines.push(
      `report --survey bench --year 2021 over ${n.toLocaleString('en')} diagnoses (${report!.domains.toLocaleString('en')} domains counted, ${report!.diagnoses.toLocaleString('en')} diagnoses in the period, 2020 compared, ${DOMAINS.toLocaleString('en')} listed survey domains): ` +
        `**figures ${secs(figures)}** (median of ${RUNS}: ${walls.map(secs).join(', ')}${cpus.length ? `; Postgres CPU time of the report's two connections ${secs(median(cpus))}` : ''}) + JSON/HTML with charts ${secs(render)} = ${secs(figures + render)}`,
    );
    lines.push(`PDF of the same report (charts, HTML and headless Chromium with its start-up): ${pdf}`);
    console.log(lines.slice(-2).join('\n'));
    lines.push(`target < 5 s for the aggregation: ${figures < 5000 ? 'met' : 'NOT met in this run'} (${secs(figures)})`);
    lines.push(`machine: ${machine()}; load average before: ${load} (the figures time is wall-clock on a shared machine: the Postgres CPU time is the part that does not depend on the other load)`);
    console.log(lines.slice(-2).join('\n'));
    await updateSection(
      'report',
      `## Report\n\n\`npm run bench -- report\` (bench/report.ts): ${lines.map((l) => `\n- ${l}`).join('')}\n\n${CHANGES}\n`,
    );
    return { name: 'report', lines };
  } finally {
    await handle?.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
    await rm(out, { recursive: true, force: true });
  }
}
